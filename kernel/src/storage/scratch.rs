//! Throw-away PostgreSQL databases for tests and the plugin harness: one
//! fresh database per test on the server at `LIFELONG_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432`), dropped afterwards. `scripts/test`
//! removes leftovers of interrupted runs by their `lifelong_t_` prefix.

use super::{Db, StorageError};

/// A fresh, empty database that [`ScratchDb::drop_database`] removes.
#[derive(Debug, Clone)]
pub struct ScratchDb {
    base: String,
    name: String,
}

impl ScratchDb {
    /// Create one on the test server.
    pub async fn create() -> Result<ScratchDb, StorageError> {
        let base = std::env::var("LIFELONG_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let name = format!(
            "lifelong_t_{}_{}",
            std::process::id(),
            rand::random::<u32>()
        );
        let admin = Db::connect(&format!("{base}/postgres")).await?;
        let created = sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(admin.reader())
            .await;
        admin.close().await;
        created?;
        Ok(ScratchDb { base, name })
    }

    /// Its connection URL.
    pub fn url(&self) -> String {
        format!("{}/{}", self.base, self.name)
    }

    /// Drop it (forcing out any connection still open); errors are ignored,
    /// as the next test run removes leftovers.
    pub async fn drop_database(&self) {
        if let Ok(admin) = Db::connect(&format!("{}/postgres", self.base)).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(admin.reader())
            .await;
            admin.close().await;
        }
    }
}
