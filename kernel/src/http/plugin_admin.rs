//! `/api/v1/plugin-registry`, `/api/v1/plugin-publishers`,
//! `/api/v1/plugin-approvals` and `/metrics`: installing, upgrading,
//! rolling back and removing plugins (city admins; for a publisher the city
//! bound to a site, that site's `plugin_publisher` holders and admins too),
//! enabling them and granting their capabilities per site (site admins),
//! the publisher trust store and revocation, the approval queue (an enable
//! or upgrade waiting for approval answers 202 with the request), plugin
//! logs, and Prometheus metrics.
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
        .route("/plugin-registry/{plugin}/metrics", get(plugin_metrics))
        .route("/sites/{site}/plugins", get(at_site))
        .route(
            "/plugin-registry/{plugin}/sites/{site}/enabled",
            put(set_enabled),
        )
        .route("/plugin-registry/{plugin}/sites/{site}/grants", put(grant))
        .route("/plugin-publishers", get(publishers))
        .route("/plugin-publishers/{publisher}", put(trust))
        .route("/plugin-publishers/{publisher}/revoke", post(revoke))
        .route("/plugin-approvals", get(approvals))
        .route("/plugin-approvals/{id}", get(approval))
        .route("/plugin-approvals/{id}/approve", post(approve))
        .route("/plugin-approvals/{id}/refuse", post(refuse))
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
    Auth(actor, _): Auth,
    Path(plugin): Path<String>,
) -> Result<Response, ApiError> {
    let r = registry(&state)?;
    let mut entry =
        serde_json::to_value(r.info(&plugin).await?).map_err(|e| Error::Internal(e.into()))?;
    // Usage against the plugin's quotas (`plugins/quota.rs`).
    if let Some(m) = r.manifest(&plugin) {
        let usage = crate::plugins::quota::usage(r.kernel(), r.runtime().quotas(), &m).await?;
        entry["quota"] = serde_json::to_value(usage).map_err(|e| Error::Internal(e.into()))?;
        // Which sites use it, and how much, is the city's to see: every
        // signed-in person reads the entry, so others get the totals only.
        if !actor.is_city_admin() {
            entry["quota"]["top_sites"] = serde_json::json!([]);
            entry["quota"]["this_minute"]["calls"] = serde_json::json!([]);
        }
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
    Ok(pending_or(
        registry(&state)?.upgrade_or_request(&actor, &body).await?,
        |info| axum::Json(info).into_response(),
    ))
}

/// 202 with the approval request (and its address), or the done answer.
fn pending_or<T>(
    outcome: crate::plugins::registry::Outcome<T>,
    done: impl FnOnce(T) -> Response,
) -> Response {
    match outcome {
        crate::plugins::registry::Outcome::Done(v) => done(v),
        crate::plugins::registry::Outcome::Pending(a) => (
            StatusCode::ACCEPTED,
            [(
                header::LOCATION,
                format!("/api/v1/plugin-approvals/{}", a.id),
            )],
            axum::Json(serde_json::json!({
                "status": "pending",
                "detail": format!("waiting for a city admin's approval as request {}", a.id),
                "request": a,
            })),
        )
            .into_response(),
    }
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
    let outcome = registry(&state)?
        .enable_or_request(&actor, &plugin, &site, body.enabled)
        .await?;
    Ok(pending_or(outcome, |()| {
        StatusCode::NO_CONTENT.into_response()
    }))
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

/// A plugin's call counters on this node, per loaded version (city admins,
/// like its logs): calls, errors by kind, latency, peak memory, deliveries.
async fn plugin_metrics(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
    Path(plugin): Path<String>,
) -> Result<Response, ApiError> {
    actor.require_city_admin("reading a plugin's metrics")?;
    let r = registry(&state)?;
    r.info(&plugin).await?;
    let items = r.runtime().observatory().snapshot(&plugin);
    Ok(axum::Json(serde_json::json!({ "plugin": plugin, "items": items })).into_response())
}

/// Every installed plugin at a site: enabled here, inherited from above or
/// off, and each capability it asks for, granted where (anyone who may see
/// the site).
async fn at_site(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
    Path(site): Path<String>,
) -> Result<Response, ApiError> {
    let items = registry(&state)?.at_site(&actor, &site).await?;
    Ok(axum::Json(serde_json::json!({ "site": site, "items": items })).into_response())
}

async fn publishers(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
) -> Result<Response, ApiError> {
    actor.require_city_admin("reading the plugin trust store")?;
    let items = registry(&state)?.publisher_entries().await?;
    Ok(axum::Json(serde_json::json!({ "items": items })).into_response())
}

/// A publisher's trust-store entry: its key, and optionally the site it is
/// bound to, its capability ceiling and whether approval is required (a
/// field left out keeps the entry's current value).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PublisherKey {
    public_key: String,
    /// Bind to this site (code); `null`: make it city-wide; absent: keep.
    #[serde(default, deserialize_with = "crate::plugins::registry::present")]
    site: Option<Option<String>>,
    /// The capability ceiling.
    capabilities: Option<Vec<String>>,
    /// The roles identity.grant may name.
    roles: Option<Vec<String>>,
    /// Require approval (default: yes for a bound publisher).
    approval: Option<bool>,
}

async fn trust(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
    Path(publisher): Path<String>,
    Json(body): Json<PublisherKey>,
) -> Result<Response, ApiError> {
    let entry = registry(&state)?
        .trust_publisher(
            &actor,
            &publisher,
            &body.public_key,
            &crate::plugins::registry::Binding {
                site: body.site,
                capabilities: body.capabilities,
                roles: body.roles,
                approval: body.approval,
            },
        )
        .await?;
    Ok(axum::Json(entry).into_response())
}

/// Revoke a publisher: its packages refused, its plugins disabled everywhere.
async fn revoke(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
    Path(publisher): Path<String>,
) -> Result<Response, ApiError> {
    let disabled = registry(&state)?
        .revoke_publisher(&actor, &publisher)
        .await?;
    let disabled: Vec<_> = disabled
        .into_iter()
        .map(|(plugin, site)| serde_json::json!({"plugin": plugin, "site": site}))
        .collect();
    Ok(axum::Json(
        serde_json::json!({"publisher": publisher, "status": "revoked", "disabled": disabled}),
    )
    .into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalQuery {
    /// pending (default), approved, refused or all.
    status: Option<String>,
}

/// The approval queue (city admins), oldest first.
async fn approvals(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
    Query(q): Query<ApprovalQuery>,
) -> Result<Response, ApiError> {
    let status = match q.status.as_deref() {
        None => Some("pending"),
        Some("all") => None,
        Some(s) => Some(s),
    };
    let items = registry(&state)?.approvals(&actor, status).await?;
    Ok(axum::Json(serde_json::json!({ "items": items })).into_response())
}

fn request_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| Error::NotFound(format!("approval request {id}")).into())
}

async fn approval(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let a = registry(&state)?.approval(&actor, request_id(&id)?).await?;
    Ok(axum::Json(a).into_response())
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Decision {
    #[serde(default)]
    reason: Option<String>,
}

async fn approve(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // The body is optional: `{"reason": "…"}` or nothing.
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<Decision>(&body)
            .map_err(|e| Error::invalid("body", e))?
            .reason
    };
    let a = registry(&state)?
        .approve(&actor, request_id(&id)?, reason.as_deref())
        .await?;
    Ok(axum::Json(a).into_response())
}

async fn refuse(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
    Path(id): Path<String>,
    Json(d): Json<Decision>,
) -> Result<Response, ApiError> {
    let a = registry(&state)?
        .refuse(&actor, request_id(&id)?, d.reason.as_deref().unwrap_or(""))
        .await?;
    Ok(axum::Json(a).into_response())
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
