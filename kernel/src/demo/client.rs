//! How the demo fills a plugin: calls through the registry's routing, as a
//! served request would be, in the name of a person at a site.

use crate::plugins::registry::Registry;
use crate::plugins::runtime::{Caller, Request};
use anyhow::{Context, Result};
use serde_json::Value;

/// Call `plugin` at `site` as `person`; the JSON answer, or an error naming
/// the route, status and problem detail for anything but 2xx.
pub(super) async fn call(
    registry: &Registry,
    plugin: &str,
    site: &str,
    person: i64,
    method: &str,
    path: &str,
    body: Value,
) -> Result<Value> {
    let k = registry.kernel();
    let s = crate::sites::fetch_by_code(k.db.reader(), site)
        .await?
        .with_context(|| format!("no site {site}"))?;
    let loaded = registry
        .route(plugin, Some(&s.path))
        .map_err(|r| anyhow::anyhow!("{plugin} cannot serve at {site}: {r:?}"))?;
    let resp = loaded
        .request(
            k,
            Request {
                method: method.into(),
                path: path.into(),
                query: String::new(),
                headers: vec![("content-type".into(), "application/json".into())],
                body: body.to_string().into_bytes(),
                caller: Caller {
                    person_id: Some(person),
                    roles: vec![],
                },
                site: site.into(),
                request_id: "demo".into(),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    anyhow::ensure!(
        resp.status < 300,
        "{method} {path} at {site}: {} {}",
        resp.status,
        v["detail"]
    );
    Ok(v)
}

/// The person signing in as `login`.
pub(super) async fn person_by_login(registry: &Registry, login: &str) -> Result<i64> {
    let (id,): (i64,) = sqlx::query_as("SELECT id FROM persons WHERE login = $1")
        .bind(login)
        .fetch_one(registry.kernel().db.reader())
        .await?;
    Ok(id)
}
