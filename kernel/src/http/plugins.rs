//! `/api/v1/plugins/{plugin}/…`: requests handed to a plugin.
//!
//! The kernel authenticates the caller (anonymous if no token is sent),
//! resolves the site in context (`?site=CODE`, else the caller's home site),
//! runs the plugin on a fresh instance, and caps what comes back. A failed
//! call becomes problem+json naming the plugin, version and failure kind —
//! 503 for a deadline, 500 otherwise.

use super::error::ApiError;
use super::extract::Auth;
use super::AppState;
use crate::authz::Actor;
use crate::plugins::registry::Refusal;
use crate::plugins::runtime::{Caller, Request as PluginRequest};
use crate::plugins::{CallError, FailureKind};
use crate::sites;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

/// Largest response body a plugin may return.
const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// Response headers a plugin may set.
const PASSED_HEADERS: &[&str] = &[
    "content-type",
    "cache-control",
    "etag",
    "location",
    "content-language",
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/plugins/{plugin}", any(dispatch_root))
        .route("/plugins/{plugin}/{*rest}", any(dispatch))
        .route("/plugin-deliveries/parked", axum::routing::get(parked))
        .route(
            "/plugin-settings/{plugin}/{site}",
            axum::routing::get(settings_at),
        )
        .route(
            "/plugin-settings/{plugin}/{site}/{name}",
            axum::routing::put(set_setting),
        )
        .route(
            "/plugin-deliveries/{event}/{subscriber}/replay",
            axum::routing::post(replay),
        )
}

/// Body of a setting change.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingValue {
    value: serde_json::Value,
}

/// The active manifest of an installed plugin, or 404.
pub(super) fn manifest_of(
    state: &AppState,
    plugin: &str,
) -> Result<std::sync::Arc<crate::plugins::Manifest>, ApiError> {
    state
        .registry()
        .and_then(|r| r.manifest(plugin))
        .ok_or_else(|| not_installed(plugin))
}

fn not_installed(plugin: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        format!("no plugin {plugin:?} is installed"),
    )
}

/// Set a plugin's setting at a site (admins over that site).
async fn set_setting(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
    Path((plugin, site, name)): Path<(String, String, String)>,
    super::extract::Json(body): super::extract::Json<SettingValue>,
) -> Result<Response, ApiError> {
    let manifest = manifest_of(&state, &plugin)?;
    crate::plugins::settings::set(&state.kernel, &actor, &manifest, &site, &name, body.value)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Every declared setting of a plugin as it applies at a site.
async fn settings_at(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
    Path((plugin, site)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let manifest = manifest_of(&state, &plugin)?;
    let site = sites::get(&state.kernel.db, &actor, &site).await?;
    let mut out = serde_json::Map::new();
    for def in &manifest.settings {
        let v = crate::plugins::settings::effective(
            &state.kernel,
            &manifest,
            Some(&site.path),
            &def.name,
        )
        .await?;
        out.insert(def.name.clone(), v.unwrap_or(serde_json::Value::Null));
    }
    Ok(axum::Json(serde_json::json!({ "site": site.code, "settings": out })).into_response())
}

fn city_admin(actor: &Actor) -> Result<(), ApiError> {
    if actor.is_city_admin() {
        Ok(())
    } else {
        Err(crate::error::Error::forbidden(
            "only a city admin may read or replay parked event deliveries",
        )
        .into())
    }
}

/// Event deliveries that failed too often, newest first.
async fn parked(State(state): State<AppState>, Auth(actor, _): Auth) -> Result<Response, ApiError> {
    city_admin(&actor)?;
    let items = crate::plugins::events::parked(&state.kernel, 500)
        .await
        .map_err(crate::error::Error::from)?;
    Ok(axum::Json(serde_json::json!({ "items": items })).into_response())
}

/// Put a parked delivery back in line.
async fn replay(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
    Path((event, subscriber)): Path<(i64, String)>,
) -> Result<Response, ApiError> {
    city_admin(&actor)?;
    let done = crate::plugins::events::replay(&state.kernel, event, &subscriber)
        .await
        .map_err(crate::error::Error::from)?;
    if !done {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("no parked delivery of event {event} to {subscriber}"),
        ));
    }
    let mut tx = state
        .kernel
        .db
        .begin()
        .await
        .map_err(crate::error::Error::from)?;
    crate::audit::record(
        &mut tx,
        &actor,
        crate::audit::Change {
            action: "plugin.delivery.replay",
            site: None,
            object_type: "plugin_delivery",
            object_id: format!("{event}/{subscriber}"),
            before: None,
            after: None,
        },
    )
    .await?;
    tx.commit().await.map_err(crate::error::Error::from)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn dispatch_root(
    state: State<AppState>,
    Path(plugin): Path<String>,
    req: Request,
) -> Response {
    run(state, plugin, String::new(), req).await
}

async fn dispatch(
    state: State<AppState>,
    Path((plugin, rest)): Path<(String, String)>,
    req: Request,
) -> Response {
    run(state, plugin, rest, req).await
}

async fn run(
    State(state): State<AppState>,
    plugin: String,
    rest: String,
    req: Request,
) -> Response {
    match call(&state, plugin, rest, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn call(
    state: &AppState,
    plugin: String,
    rest: String,
    req: Request,
) -> Result<Response, ApiError> {
    let Some(registry) = state.registry() else {
        return Err(not_installed(&plugin));
    };
    let (mut parts, body) = req.into_parts();
    let actor = if parts.headers.contains_key(header::AUTHORIZATION) {
        Some(Auth::from_request_parts(&mut parts, state).await?.0)
    } else {
        None
    };
    let query = parts.uri.query().unwrap_or("").to_string();
    let site_code = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("site="))
        .map(str::to_string);
    let site = match (&site_code, &actor) {
        (Some(code), _) => Some(code.clone()),
        (None, Some(Actor::Person(c))) => {
            sites::code_of_path(&state.kernel.db, &c.home_path).await?
        }
        _ => None,
    };
    let (site, path) = match site {
        Some(code) => match state.site_path(&code) {
            Some(path) => (code, Some(path)),
            None => match sites::fetch_by_code(state.kernel.db.reader(), &code).await? {
                Some(s) => {
                    state.remember_site(&s.code, &s.path);
                    (s.code, Some(s.path))
                }
                None => {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "not-found",
                        "Not found",
                        format!("no site has code {code:?}"),
                    ))
                }
            },
        },
        None => (String::new(), None),
    };
    let loaded = match registry.route(&plugin, path.as_deref()) {
        Ok(l) => l,
        Err(Refusal::NotInstalled) => return Err(not_installed(&plugin)),
        Err(Refusal::NotEnabled) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                if site.is_empty() {
                    format!("plugin {plugin} is not enabled at the city level; name a site with ?site=CODE")
                } else {
                    format!("plugin {plugin} is not enabled at site {site}")
                },
            ))
        }
        Err(Refusal::NotGranted(missing)) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "plugin-not-granted",
                "Plugin capabilities not granted",
                format!(
                    "plugin {plugin} needs {} granted at site {site} before it can serve there",
                    missing.join(", ")
                ),
            ))
        }
    };
    let caller = match &actor {
        Some(Actor::Person(c)) => Caller {
            person_id: Some(c.person_id),
            roles: c
                .grants
                .iter()
                .map(|g| (g.role.as_str().to_string(), g.site_code.clone()))
                .collect(),
        },
        _ => Caller {
            person_id: None,
            roles: vec![],
        },
    };
    // The body cap: the kernel's, or the lower one the plugin asked for. A
    // declared length past it is refused before reading anything; a body
    // streamed without one is read up to the cap and no further.
    let cap = loaded
        .manifest
        .limits
        .max_body_bytes
        .map_or(state.max_body, |b| {
            usize::try_from(b).unwrap_or(usize::MAX).min(state.max_body)
        });
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap as u64) {
        return Err(body_too_large(&plugin, cap));
    }
    let body: Bytes = axum::body::to_bytes(body, cap)
        .await
        .map_err(|_| body_too_large(&plugin, cap))?;
    let request = PluginRequest {
        method: parts.method.as_str().to_string(),
        path: format!("/{rest}"),
        query,
        headers: parts
            .headers
            .iter()
            .filter(|(n, _)| *n != header::AUTHORIZATION && *n != header::COOKIE)
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: body.to_vec(),
        caller,
        site: site.clone(),
        request_id: format!("{:016x}", rand::random::<u64>()),
    };
    let request_id = request.request_id.clone();
    let request_site = site;
    let resp = match loaded.request(&state.kernel, request).await {
        Ok(r) => r,
        Err(e) => {
            return Ok(PluginFailure {
                error: e,
                request_id,
                site: request_site,
                obs: registry.runtime().observatory().clone(),
            }
            .into_response())
        }
    };
    if resp.body.len() > MAX_RESPONSE_BYTES {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "plugin-response-too-large",
            "Plugin response too large",
            format!("plugin {plugin} returned more than {MAX_RESPONSE_BYTES} bytes"),
        ));
    }
    if !(200..=599).contains(&resp.status) {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "plugin-bad-response",
            "Plugin response invalid",
            format!(
                "plugin {plugin} answered with status {}, which is not a final HTTP status",
                resp.status
            ),
        ));
    }
    let mut out = Response::new(Body::from(resp.body));
    *out.status_mut() =
        StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (n, v) in resp.headers {
        let n = n.to_ascii_lowercase();
        if !PASSED_HEADERS.contains(&n.as_str()) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(n), HeaderValue::try_from(v)) {
            out.headers_mut().insert(n, v);
        }
    }
    Ok(out)
}

/// 413 for a body past the plugin route's cap.
fn body_too_large(plugin: &str, cap: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
        "Payload too large",
        format!("plugin {plugin} accepts request bodies of at most {cap} bytes"),
    )
}

/// A failed plugin call as problem+json: the plugin, version, failure kind
/// and request id as extension members. The message and the wasm backtrace
/// (the plugin's own function names) are for admins: they go to the kernel
/// log and the plugin's log (`GET /api/v1/plugin-registry/{id}/logs`) under
/// the same request id, never to the caller.
struct PluginFailure {
    error: CallError,
    request_id: String,
    site: String,
    obs: crate::plugins::metrics::Observatory,
}

impl IntoResponse for PluginFailure {
    fn into_response(self) -> Response {
        let e = self.error;
        let status = if let FailureKind::Quota(_) = e.kind {
            StatusCode::TOO_MANY_REQUESTS
        } else if e.kind.is_transient() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        let backtrace = e.backtrace.join(" <- ");
        tracing::warn!(plugin = %e.plugin, version = %e.version, kind = e.kind.as_str(), request_id = %self.request_id, "plugin call failed: {}; wasm backtrace: {backtrace}", e.message);
        self.obs.log(crate::plugins::metrics::LogLine {
            at: crate::storage::now_micros(),
            plugin: e.plugin.clone(),
            version: e.version.clone(),
            level: "error",
            site: self.site.clone(),
            request_id: self.request_id.clone(),
            message: if backtrace.is_empty() {
                format!("call failed ({}): {}", e.kind.as_str(), e.message)
            } else {
                format!(
                    "call failed ({}): {}; wasm backtrace: {backtrace}",
                    e.kind.as_str(),
                    e.message
                )
            },
        });
        let detail = match e.kind {
            FailureKind::Deadline => "the plugin call ran past its deadline",
            FailureKind::Memory => "the plugin call asked for more memory than its cap",
            FailureKind::Stack => "the plugin call overflowed its stack",
            FailureKind::Panic | FailureKind::Trap => "the plugin call failed",
            FailureKind::Kernel => "the kernel could not complete the plugin call",
            FailureKind::Conflict => {
                "the plugin call kept losing write races with other calls; nothing was written"
            }
            FailureKind::Busy => "the plugin is running as many calls as it may; try again shortly",
            FailureKind::Quota(q) => match q {
                crate::plugins::quota::CALLS_PER_MINUTE => "the plugin has used its quota calls_per_minute at this site; nothing was written; try again next minute",
                crate::plugins::quota::EVENTS_PER_MINUTE => "the plugin has used its quota events_per_minute; nothing was written; try again next minute",
                crate::plugins::quota::LOG_LINES_PER_MINUTE => "the plugin has used its quota log_lines_per_minute; nothing was written; try again next minute",
                crate::plugins::quota::ROWS => "the plugin has used its quota rows (stored rows); nothing was written",
                crate::plugins::quota::BYTES => "the plugin has used its quota bytes (stored bytes); nothing was written",
                crate::plugins::quota::SITE_ROWS => "the plugin has used its quota site_rows (stored rows written at this site); nothing was written",
                _ => "the plugin has used its quota site_bytes (stored bytes written at this site); nothing was written",
            },
        };
        let mut body = serde_json::json!({
            "type": format!("urn:lifelong:problem:plugin-{}", e.kind.as_str()),
            "title": "Plugin call failed",
            "status": status.as_u16(),
            "detail": format!(
                "{detail} (plugin {} {}, request {}; admins find the details in the plugin's log)",
                e.plugin, e.version, self.request_id
            ),
            "plugin": e.plugin,
            "version": e.version,
            "kind": e.kind.as_str(),
            "request_id": self.request_id,
        });
        if let FailureKind::Quota(q) = e.kind {
            body["quota"] = q.into();
        }
        let mut r = (status, body.to_string()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let FailureKind::Quota(
            crate::plugins::quota::CALLS_PER_MINUTE
            | crate::plugins::quota::EVENTS_PER_MINUTE
            | crate::plugins::quota::LOG_LINES_PER_MINUTE,
        ) = e.kind
        {
            // A rate window is a minute long: this one ends within 60 s.
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        }
        r
    }
}
