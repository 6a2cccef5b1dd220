//! The template's own tests: `cargo test` builds the plugin to a component
//! and runs it on a real in-process kernel with a temporary SQLite database.

use lifelong_harness::TestKernel;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greets_and_counts() {
    let k = TestKernel::sqlite().await;
    let hello = k.load(env!("CARGO_MANIFEST_DIR")).await;
    let anyone = k.anonymous();
    assert_eq!(
        hello.get("/greetings/ann", &anyone).await.unwrap(),
        (200, json!({ "name": "ann", "count": 0 }))
    );
    for _ in 0..3 {
        let (status, body) = hello.post("/greetings/ann", None, &anyone).await.unwrap();
        assert_eq!((status, body), (200, json!({ "hello": "ann" })));
    }
    assert_eq!(
        hello.get("/greetings/ann", &anyone).await.unwrap(),
        (200, json!({ "name": "ann", "count": 3 }))
    );
    let (status, body) = hello
        .post(&format!("/greetings/{}", "x".repeat(41)), None, &anyone)
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert_eq!(body["detail"], "name must be at most 40 characters");
    let (status, _) = hello.get("/nowhere", &anyone).await.unwrap();
    assert_eq!(status, 404);
    k.cleanup().await;
}
