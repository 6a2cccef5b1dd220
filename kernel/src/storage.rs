//! Storage: the one place that knows which database backend is in use.
//!
//! The backend is chosen once, at start-up, from the database URL
//! (`sqlite://…` or `postgres://…`). Everything above this module writes one
//! portable SQL dialect (`$1` parameters, `RETURNING`, `ON CONFLICT`, recursive
//! CTEs, no booleans, `CAST(SUM(..) AS BIGINT)`) against [`Db`]; the
//! backend-specific parts — connection settings, pool shape and the migration
//! tree — live in `storage/sqlite.rs` and `storage/postgres.rs`.
//!
//! This module must not know about sites, persons or ledgers.

mod migrate;
mod postgres;
mod scratch;
mod sqlite;

pub use scratch::ScratchDb;

pub use sqlite::open_native;

pub use migrate::{migrate, MigrationReport};

use sqlx::any::AnyRow;
use sqlx::AnyPool;
use sqlx::{Any, Transaction};

/// A write transaction. Dropping it without `commit` rolls it back.
pub type Tx = Transaction<'static, Any>;

/// Which database engine backs this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded single-node default.
    Sqlite,
    /// Multi-node backend.
    Postgres,
}

/// Errors from opening or migrating a database.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("unsupported database URL (expected sqlite://… or postgres://…): {0}")]
    UnsupportedUrl(String),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("migration {name} was changed after it was applied (checksum mismatch); migrations must never be edited")]
    MigrationEdited { name: String },
    #[error("the database has migration {name} which this binary does not know; it was written by a newer lifelong")]
    UnknownMigration { name: String },
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
}

/// A handle to the kernel database: cheap to clone.
///
/// **Invariant:** on SQLite all writes go through one connection (`write`),
/// so write transactions never fail with `SQLITE_BUSY`; reads use a separate
/// pool and see the last committed state (WAL). On PostgreSQL both pools are
/// the same pool and row locks order concurrent writers.
#[derive(Clone, Debug)]
pub struct Db {
    backend: Backend,
    read: AnyPool,
    write: AnyPool,
    sqlite_file: Option<String>,
}

impl Db {
    /// Open (and for SQLite, create) the database at `url`. Does not migrate.
    pub async fn connect(url: &str) -> Result<Db, StorageError> {
        sqlx::any::install_default_drivers();
        if url.starts_with("sqlite:") {
            sqlite::connect(url).await
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            postgres::connect(url).await
        } else {
            Err(StorageError::UnsupportedUrl(redact_url(url)))
        }
    }

    /// Open the database and bring its schema up to date.
    pub async fn open(url: &str) -> Result<Db, StorageError> {
        let db = Db::connect(url).await?;
        migrate(&db).await?;
        Ok(db)
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool for reads that need no transaction.
    pub fn reader(&self) -> &AnyPool {
        &self.read
    }

    /// Begin a write transaction.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        self.write.begin().await
    }

    /// Begin a read transaction: one consistent snapshot for multi-query
    /// reads (SQLite's deferred read transaction; PostgreSQL's REPEATABLE READ,
    /// as its default READ COMMITTED takes a new snapshot per statement).
    pub async fn begin_read(&self) -> Result<Tx, sqlx::Error> {
        let mut tx = self.read.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// The SQLite database file, when the kernel runs on one: bulk work
    /// (verify, bulk loads) opens direct connections to it instead of going
    /// through the pooled `Any` driver.
    pub fn sqlite_file(&self) -> Option<&str> {
        self.sqlite_file.as_deref()
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").fetch_one(&self.read).await.is_ok()
    }

    /// Close all connections (used at shutdown and by crash tests).
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// A URL with any password replaced, safe for errors and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Read a column, turning a decode failure into a `sqlx::Error`.
pub fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T, sqlx::Error>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    sqlx::Row::try_get(row, name)
}

/// True if `err` is a unique-constraint violation on either backend.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            matches!(db.kind(), sqlx::error::ErrorKind::UniqueViolation)
                || db.code().as_deref() == Some("23505")
                || db.code().as_deref() == Some("2067")
                || db.code().as_deref() == Some("1555")
        }
        _ => false,
    }
}

/// Microseconds since the Unix epoch, the kernel's timestamp unit.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
