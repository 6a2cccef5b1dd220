//! Embedded, checksummed migrations, one tree per backend.
//!
//! **Invariant:** an applied migration is never edited: its SHA-256 is stored
//! and checked on every start, and a mismatch refuses to start.

use super::{now_micros, Backend, Db, StorageError};
use sha2::{Digest, Sha256};

struct Migration {
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// Every migration, in order. Add new ones at the end, in both trees.
const MIGRATIONS: &[Migration] = &[Migration {
    name: "0001_kernel",
    sqlite: include_str!("../../../migrations/sqlite/0001_kernel.sql"),
    postgres: include_str!("../../../migrations/postgres/0001_kernel.sql"),
}];

/// What `migrate` did.
#[derive(Debug, Default)]
pub struct MigrationReport {
    /// Names applied by this call.
    pub applied: Vec<String>,
    /// Names that were already present.
    pub already: usize,
}

/// Apply every pending migration, each in its own transaction.
pub async fn migrate(db: &Db) -> Result<MigrationReport, StorageError> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            name TEXT PRIMARY KEY, checksum TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;

    let applied: Vec<(String, String)> =
        sqlx::query_as("SELECT name, checksum FROM schema_migrations ORDER BY name")
            .fetch_all(&db.write)
            .await?;
    for (name, _) in &applied {
        if !MIGRATIONS.iter().any(|m| m.name == name) {
            return Err(StorageError::UnknownMigration { name: name.clone() });
        }
    }
    let mut report = MigrationReport::default();
    for m in MIGRATIONS {
        let sql = match db.backend {
            Backend::Sqlite => m.sqlite,
            Backend::Postgres => m.postgres,
        };
        let checksum = hex::encode(Sha256::digest(sql.as_bytes()));
        if let Some((_, stored)) = applied.iter().find(|(n, _)| n == m.name) {
            if *stored != checksum {
                return Err(StorageError::MigrationEdited {
                    name: m.name.to_string(),
                });
            }
            report.already += 1;
            continue;
        }
        let mut tx = db.begin().await?;
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO schema_migrations (name, checksum, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(m.name)
        .bind(&checksum)
        .bind(now_micros())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        report.applied.push(m.name.to_string());
    }
    Ok(report)
}
