//! SQLite backend: the embedded single-node default.
//!
//! Settings chosen for "no acknowledged write is ever lost": WAL journal with
//! `synchronous=FULL` (a commit is fsynced before it returns), foreign keys
//! on, and a single writer connection so writers queue in-process instead of
//! failing with `SQLITE_BUSY`.

use super::{Backend, Db, StorageError};
use sqlx::any::AnyPoolOptions;
use sqlx::Executor;
use std::time::Duration;

pub(super) async fn connect(url: &str) -> Result<Db, StorageError> {
    let url = with_create_mode(url);
    if let Some(path) = file_path(&url) {
        if let Some(dir) = std::path::Path::new(&path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|source| StorageError::DataDir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
        }
    }
    let write = options(1).connect(&url).await?;
    // WAL must be switched on before the readers open, or they may each try.
    // More readers than plugin calls may hold read snapshots at once (the
    // runtime's 8 transaction slots), so the kernel reads such a call makes
    // beside its snapshot (identity, sites, settings) always find a
    // connection: with 4, four calls holding snapshots waited on each
    // other for one until their deadlines. Each connection's page cache
    // fills only with the pages it reads.
    let read = options(12).connect(&url).await?;
    Ok(Db {
        backend: Backend::Sqlite,
        read,
        write,
        sqlite_file: file_path(&url),
    })
}

fn options(max: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .idle_timeout(None)
        .max_lifetime(None)
        // A connection to a local file cannot go stale: no ping (a round
        // trip through the connection's worker thread) on every acquire.
        .test_before_acquire(false)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(PRAGMAS).await?;
                Ok(())
            })
        })
}

/// Every connection's settings, pooled or direct.
const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
     PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;";

/// A direct (non-pooled) connection to the SQLite file at `path`, with the
/// same settings as the pool's, for bulk work on a blocking thread.
pub fn open_native(path: &str) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch(PRAGMAS)?;
    Ok(conn)
}

/// `sqlite://path` opens read-write-create unless the URL says otherwise.
fn with_create_mode(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

fn file_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" {
        None
    } else {
        Some(path.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_mode_is_added_once() {
        assert_eq!(with_create_mode("sqlite://a.db"), "sqlite://a.db?mode=rwc");
        assert_eq!(
            with_create_mode("sqlite://a.db?x=1"),
            "sqlite://a.db?x=1&mode=rwc"
        );
        assert_eq!(
            with_create_mode("sqlite://a.db?mode=ro"),
            "sqlite://a.db?mode=ro"
        );
        assert_eq!(
            file_path("sqlite://data/a.db?mode=rwc").as_deref(),
            Some("data/a.db")
        );
    }
}
