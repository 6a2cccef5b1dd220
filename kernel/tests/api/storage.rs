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
    let files = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../migrations/postgres"
    ))
    .unwrap()
    .filter(|e| {
        e.as_ref()
            .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
    })
    .count() as i64;
    assert_eq!(n, files, "every migration is recorded once");
    assert_eq!(
        applied as i64, files,
        "each migration is applied by exactly one node"
    );
    for db in &nodes {
        db.close().await;
    }
    scratch.drop_database().await;
}
