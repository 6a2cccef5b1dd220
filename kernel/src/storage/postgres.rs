//! PostgreSQL backend: the multi-node deployment.
//!
//! One pool serves reads and writes; concurrent writers are ordered by row
//! locks taken in the queries themselves (e.g. the ledger locks the account
//! row before appending), under PostgreSQL's default READ COMMITTED.

use super::{Backend, Db, StorageError};
use sqlx::any::AnyPoolOptions;
use std::time::Duration;

pub(super) async fn connect(url: &str) -> Result<Db, StorageError> {
    let pool = AnyPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(30))
        .connect(url)
        .await?;
    Ok(Db {
        backend: Backend::Postgres,
        read: pool.clone(),
        write: pool,
        sqlite_file: None,
    })
}
