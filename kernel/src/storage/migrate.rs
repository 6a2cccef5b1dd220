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
const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "0001_kernel",
        sqlite: include_str!("../../../migrations/sqlite/0001_kernel.sql"),
        postgres: include_str!("../../../migrations/postgres/0001_kernel.sql"),
    },
    Migration {
        name: "0002_plugin_events",
        sqlite: include_str!("../../../migrations/sqlite/0002_plugin_events.sql"),
        postgres: include_str!("../../../migrations/postgres/0002_plugin_events.sql"),
    },
    Migration {
        name: "0003_plugin_registry",
        sqlite: include_str!("../../../migrations/sqlite/0003_plugin_registry.sql"),
        postgres: include_str!("../../../migrations/postgres/0003_plugin_registry.sql"),
    },
    Migration {
        name: "0004_plugin_callers",
        sqlite: include_str!("../../../migrations/sqlite/0004_plugin_callers.sql"),
        postgres: include_str!("../../../migrations/postgres/0004_plugin_callers.sql"),
    },
    Migration {
        name: "0005_conversions",
        sqlite: include_str!("../../../migrations/sqlite/0005_conversions.sql"),
        postgres: include_str!("../../../migrations/postgres/0005_conversions.sql"),
    },
    Migration {
        name: "0006_indicators",
        sqlite: include_str!("../../../migrations/sqlite/0006_indicators.sql"),
        postgres: include_str!("../../../migrations/postgres/0006_indicators.sql"),
    },
    Migration {
        name: "0007_plugin_publishers",
        sqlite: include_str!("../../../migrations/sqlite/0007_plugin_publishers.sql"),
        postgres: include_str!("../../../migrations/postgres/0007_plugin_publishers.sql"),
    },
    Migration {
        name: "0008_plugin_quotas",
        sqlite: include_str!("../../../migrations/sqlite/0008_plugin_quotas.sql"),
        postgres: include_str!("../../../migrations/postgres/0008_plugin_quotas.sql"),
    },
];

/// What `migrate` did.
#[derive(Debug, Default)]
pub struct MigrationReport {
    /// Names applied by this call.
    pub applied: Vec<String>,
    /// Names that were already present.
    pub already: usize,
}

/// Any fixed 64-bit key: the PostgreSQL advisory lock that serialises
/// `migrate` across nodes starting at once.
const PG_MIGRATE_LOCK: i64 = 0x4c49_4645_4c4f_4e47; // "LIFELONG"

/// Apply every pending migration, each in its own transaction.
///
/// On PostgreSQL every step first takes a transaction-scoped advisory lock,
/// so several nodes migrating the same database at once apply each migration
/// exactly once (the others wait, then find it applied). On SQLite the single
/// writer connection already serialises the steps.
pub async fn migrate(db: &Db) -> Result<MigrationReport, StorageError> {
    let mut tx = begin_locked(db).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            name TEXT PRIMARY KEY, checksum TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    let applied: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM schema_migrations ORDER BY name")
            .fetch_all(&mut *tx)
            .await?;
    tx.commit().await?;
    for (name,) in &applied {
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
        let mut tx = begin_locked(db).await?;
        let stored: Option<(String,)> =
            sqlx::query_as("SELECT checksum FROM schema_migrations WHERE name = $1")
                .bind(m.name)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some((stored,)) = stored {
            if stored != checksum {
                return Err(StorageError::MigrationEdited {
                    name: m.name.to_string(),
                });
            }
            report.already += 1;
            continue;
        }
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

/// A write transaction that, on PostgreSQL, holds the migration lock until it ends.
async fn begin_locked(db: &Db) -> Result<super::Tx, StorageError> {
    let mut tx = db.begin().await?;
    if db.backend == Backend::Postgres {
        sqlx::query("SELECT CAST(1 AS BIGINT) FROM (SELECT pg_advisory_xact_lock($1)) AS l")
            .bind(PG_MIGRATE_LOCK)
            .execute(&mut *tx)
            .await?;
    }
    Ok(tx)
}
