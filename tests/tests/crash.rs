//! A server killed with SIGKILL in the middle of a stream of ledger writes
//! restarts with every acknowledged write present and every chain valid.

use kernel::idnumber::{synthesize, Sex};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use tests::Deployment;

fn id(seq: u32) -> String {
    synthesize(350602, chrono_date(), seq, Sex::Male)
}

fn chrono_date() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(1960, 5, 17).unwrap()
}

async fn token(client: &reqwest::Client, url: &str) -> String {
    let v: Value = client
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({ "login": "admin", "password": "correct-horse-battery" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["token"].as_str().expect("token").to_string()
}

async fn kill_mid_stream(dep: Deployment) {
    let out = dep
        .command()
        .args([
            "admin",
            "bootstrap",
            "--login",
            "admin",
            "--name",
            "管理员",
            "--id-number",
            &id(1),
        ])
        .env("LIFELONG_ADMIN_PASSWORD", "correct-horse-battery")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut child, url) = dep.serve();
    let client = reqwest::Client::new();
    let tok = token(&client, &url).await;
    let person: Value = client
        .post(format!("{url}/api/v1/persons"))
        .bearer_auth(&tok)
        .json(&json!({ "name": "学员", "id_number": id(3), "home_site": "CITY" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pid = person["id"].as_i64().unwrap();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1000);
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, url, tok, acked, tx) = (
            client.clone(),
            url.clone(),
            tok.clone(),
            acked.clone(),
            tx.clone(),
        );
        writers.push(tokio::spawn(async move {
            for i in 0..10_000 {
                let key = format!("w{w}-{i}");
                let res = client
                    .post(format!("{url}/api/v1/ledger/entries"))
                    .bearer_auth(&tok)
                    .json(&json!({
                        "person_id": pid, "kind": "non_formal_learning", "title": "课程", "quantity": 2,
                        "occurred_on": "2026-03-01", "source_site": "CITY", "idempotency_key": key
                    }))
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 201 => {
                        acked.lock().unwrap().insert(key);
                        let _ = tx.send(()).await;
                    }
                    _ => return,
                }
            }
        }));
    }
    // Kill once a good number of writes were acknowledged, while writers keep going.
    for _ in 0..60 {
        rx.recv().await.unwrap();
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 60);

    let (mut child, url) = dep.serve();
    let tok = token(&client, &url).await;
    let mut present = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = format!("{url}/api/v1/persons/{pid}/account/statement?limit=500");
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let st: Value = client
            .get(q)
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for e in st["entries"].as_array().unwrap() {
            present.insert(e["idempotency_key"].as_str().unwrap().to_string());
        }
        match st["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let missing: Vec<_> = acked.difference(&present).collect();
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    let out = dep.command().args(["ledger", "verify"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("ok: "), "{stdout}");
    assert!(
        stdout.contains(&format!("{} entries", present.len())),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_no_acknowledged_write_sqlite() {
    kill_mid_stream(Deployment::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_no_acknowledged_write_postgres() {
    kill_mid_stream(Deployment::postgres()).await;
}
