//! `/api/v1/plugin-registry`, `/api/v1/plugin-publishers` and `/metrics`:
//! installing, upgrading, rolling back and removing plugins (city admins),
//! enabling them and granting their capabilities per site (site admins),
//! the publisher trust store, plugin logs, and Prometheus metrics.
//!
//! Packages are uploaded as the raw package file
//! (`application/octet-stream`), up to 64 MiB. Every change is audited by
//! the registry.

use super::error::ApiError;
use super::extract::{Auth, Json, Query};
use super::AppState;
use crate::error::Error;
use crate::plugins::registry::Registry;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;

/// Largest package upload.
const MAX_PACKAGE_BYTES: usize = 64 << 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/plugin-registry",
            get(list)
                .post(install)
                .layer(DefaultBodyLimit::max(MAX_PACKAGE_BYTES)),
        )
        .route("/plugin-registry/{plugin}", get(info).delete(remove))
        .route(
            "/plugin-registry/{plugin}/upgrade",
            post(upgrade).layer(DefaultBodyLimit::max(MAX_PACKAGE_BYTES)),
        )
        .route("/plugin-registry/{plugin}/rollback", post(rollback))
        .route("/plugin-registry/{plugin}/logs", get(logs))
        .route(
            "/plugin-registry/{plugin}/sites/{site}/enabled",
            put(set_enabled),
        )
        .route("/plugin-registry/{plugin}/sites/{site}/grants", put(grant))
        .route("/plugin-publishers", get(publishers))
        .route("/plugin-publishers/{publisher}", put(trust))
}

fn registry(state: &AppState) -> Result<&Registry, ApiError> {
    state.registry().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            "this kernel runs no plugin runtime",
        )
    })
}

async fn list(State(state): State<AppState>, Auth(_, _): Auth) -> Result<Response, ApiError> {
    let items = registry(&state)?.list().await?;
    Ok(axum::Json(serde_json::json!({ "items": items })).into_response())
}

async fn info(
    State(state): State<AppState>,
    Auth(_, _): Auth,
    Path(plugin): Path<String>,
) -> Result<Response, ApiError> {
    let r = registry(&state)?;
    let mut entry =
        serde_json::to_value(r.info(&plugin).await?).map_err(|e| Error::Internal(e.into()))?;
    // Usage against the plugin's quotas (`plugins/quota.rs`).
    if let Some(m) = r.manifest(&plugin) {
        let usage = crate::plugins::quota::usage(r.kernel(), r.runtime().quotas(), &m).await?;
        entry["quota"] = serde_json::to_value(usage).map_err(|e| Error::Internal(e.into()))?;
    }
    Ok(axum::Json(entry).into_response())
}

/// The uploaded package; an oversized one is a 413 problem.
fn package_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "Package too large",
            format!("a package may be at most {MAX_PACKAGE_BYTES} bytes"),
        )
    })
}

async fn install(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = package_body(body)?;
    let info = registry(&state)?.install(&actor, &body).await?;
    Ok((StatusCode::CREATED, axum::Json(info)).into_response())
}

async fn upgrade(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
    Path(plugin): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = package_body(body)?;
    let pkg = crate::plugins::package::Package::decode(&body)?;
    if pkg.manifest.id != plugin {
        return Err(Error::invalid(
            "package",
            format!("the package is plugin {}, not {plugin}", pkg.manifest.id),
        )
        .into());
    }
    Ok(axum::Json(registry(&state)?.upgrade(&actor, &body).await?).into_response())
}

async fn rollback(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
    Path(plugin): Path<String>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(registry(&state)?.rollback(&actor, &plugin).await?).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveQuery {
    #[serde(default)]
    purge: bool,
}

async fn remove(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
    Path(plugin): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> Result<Response, ApiError> {
    registry(&state)?.remove(&actor, &plugin, q.purge).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Enabled {
    enabled: bool,
}

async fn set_enabled(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
    Path((plugin, site)): Path<(String, String)>,
    Json(body): Json<Enabled>,
) -> Result<Response, ApiError> {
    registry(&state)?
        .set_enabled(&actor, &plugin, &site, body.enabled)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Grants {
    capabilities: Vec<String>,
    #[serde(default = "yes")]
    granted: bool,
}

fn yes() -> bool {
    true
}

async fn grant(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
    Path((plugin, site)): Path<(String, String)>,
    Json(body): Json<Grants>,
) -> Result<Response, ApiError> {
    registry(&state)?
        .grant(&actor, &plugin, &site, &body.capabilities, body.granted)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    limit: Option<usize>,
}

/// A plugin's recent log lines on this node (city admins).
async fn logs(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
    Path(plugin): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    actor.require_city_admin("reading a plugin's logs")?;
    let r = registry(&state)?;
    r.info(&plugin).await?;
    let items = r
        .runtime()
        .observatory()
        .recent_logs(&plugin, q.limit.unwrap_or(200).min(1000));
    Ok(axum::Json(serde_json::json!({ "items": items })).into_response())
}

async fn publishers(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
) -> Result<Response, ApiError> {
    actor.require_city_admin("reading the plugin trust store")?;
    let items: Vec<_> = registry(&state)?
        .publishers()
        .await?
        .into_iter()
        .map(|(publisher, public_key)| serde_json::json!({"publisher": publisher, "public_key": public_key}))
        .collect();
    Ok(axum::Json(serde_json::json!({ "items": items })).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PublisherKey {
    public_key: String,
}

async fn trust(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
    Path(publisher): Path<String>,
    Json(body): Json<PublisherKey>,
) -> Result<Response, ApiError> {
    registry(&state)?
        .trust(&actor, &publisher, &body.public_key)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Per-plugin counters in Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut body = state
        .registry()
        .map(|r| r.runtime().observatory().render())
        .unwrap_or_default();
    // Each plugin's quotas and usage (`plugins/quota.rs`).
    if let Some(r) = state.registry() {
        let manifests: Vec<_> = r
            .loaded()
            .into_iter()
            .filter_map(|(id, _)| r.manifest(&id))
            .collect();
        match crate::plugins::quota::render(r.kernel(), r.runtime().quotas(), &manifests).await {
            Ok(text) => body.push_str(&text),
            Err(e) => tracing::warn!("plugin quota metrics not read: {e}"),
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
