//! Storage-level behaviour that the HTTP tests cannot show.

use kernel::storage::{migrate, Db, ScratchDb};

/// Several nodes starting at once against one fresh PostgreSQL database:
/// every migration is applied exactly once and every node comes up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_postgres_migrations_apply_once() {
    let scratch = ScratchDb::create().await.unwrap();
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(Db::connect(&scratch.url()).await.unwrap());
    }
    let runs = futures_util::future::join_all(nodes.iter().map(migrate)).await;
    let mut applied = 0;
    for r in runs {
        let r = r.expect("every node migrates without error");
        applied += r.applied.len();
    }
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM schema_migrations")
        .fetch_one(nodes[0].reader())
        .await
        .unwrap();
    assert_eq!(n, 2, "every migration is recorded once");
    assert_eq!(applied, 2, "each migration is applied by exactly one node");
    for db in &nodes {
        db.close().await;
    }
    scratch.drop_database().await;
}
