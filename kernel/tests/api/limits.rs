//! Request limits that must really hold: the concurrency cap answers 503
//! with Retry-After, health probes stay outside it, and the request timeout
//! fires and gives its permit back.

use crate::support::{Backend, Env};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use kernel::config::Limits;
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_cap_answers_503_with_retry_after() {
    let limits = Limits {
        max_concurrent_requests: 2,
        ..Limits::default()
    };
    let env = Env::with_limits(Backend::Sqlite, limits.clone()).await;
    // Two uploads that never finish hold both permits.
    let mut senders = Vec::new();
    let mut held = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(1);
        let body = Body::from_stream(tokio_stream_from(rx));
        let req = Request::post("/api/v1/sites")
            .header("authorization", format!("Bearer {}", env.admin))
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        let app = env.app.clone();
        held.push(tokio::spawn(async move {
            app.oneshot(req).await.unwrap().status()
        }));
        senders.push(tx);
    }
    while env.state.in_flight() < 2 {
        tokio::task::yield_now().await;
    }
    let (s, h, v) = env
        .raw(
            "GET",
            "/api/v1/sites/T1",
            Some(&env.admin),
            Body::empty(),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h["retry-after"], "1");
    assert_eq!(v["type"], "urn:lifelong:problem:overloaded");
    let (s, _, _) = env.raw("GET", "/healthz", None, Body::empty(), None).await;
    assert_eq!(s, StatusCode::OK, "probes are outside the cap");
    // Finish the uploads (malformed on purpose); the permits come back.
    for tx in senders {
        tx.send(Ok(axum::body::Bytes::from_static(b"{")))
            .await
            .unwrap();
    }
    for h in held {
        assert_eq!(h.await.unwrap(), StatusCode::BAD_REQUEST);
    }
    let (s, _) = env.get("/api/v1/sites/T1", Some(&env.admin)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, v) = env.raw("GET", "/readyz", None, Body::empty(), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "ready");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_answers_503_and_frees_the_permit() {
    let limits = Limits {
        request_timeout_ms: 200,
        max_concurrent_requests: 1,
        ..Limits::default()
    };
    let env = Env::with_limits(Backend::Sqlite, limits).await;
    // An upload whose body never arrives keeps the handler waiting past the deadline.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(1);
    let req = Request::post("/api/v1/sites")
        .header("authorization", format!("Bearer {}", env.admin))
        .header("content-type", "application/json")
        .body(Body::from_stream(tokio_stream_from(rx)))
        .unwrap();
    let res = env.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["type"], "urn:lifelong:problem:timeout");
    assert_eq!(v["title"], "Request timed out");
    drop(tx);
    // The one permit came back: the next request is served, and nothing was written.
    assert_eq!(env.state.in_flight(), 0);
    let (s, v) = env.get("/api/v1/sites?limit=50", Some(&env.admin)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["items"].as_array().unwrap().len(), 5);
    env.cleanup().await;
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<axum::body::Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<axum::body::Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
