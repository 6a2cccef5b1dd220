//! The HTTP API: `app(state)` builds the router for in-process tests,
//! `serve(listener, …)` runs it with graceful shutdown.
//!
//! Routes live with their area (`http/sites.rs`, `http/persons.rs`, …), each
//! with a `router()`. Every API request passes the limits in `limits()`:
//! a concurrency cap (503 + Retry-After past it), a request timeout (503) and
//! a body-size cap (413). `/healthz` and `/readyz` sit outside the limits so
//! probes answer even when the API is saturated.
//!
//! **Boundary:** handlers parse, call one registry operation with the
//! caller's `Actor`, and shape the response; they make no access decisions.

mod accounts;
mod audit;
mod auth;
mod console;
pub mod error;
mod extract;
mod indicators;
pub mod openapi;
mod page;
mod persons;
mod plugin_admin;
mod plugin_quotas;
mod plugins;
mod sites;

use crate::config::Limits;
use crate::kernel::Kernel;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::Uri;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use error::ApiError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The kernel.
    pub kernel: Kernel,
    limiter: Arc<Semaphore>,
    max_concurrent: usize,
    timeout: Duration,
    /// The body cap (`Limits::max_body_bytes`), which plugin routes apply
    /// themselves: they read the body as a stream, past axum's extractors.
    max_body: usize,
    registry: Option<crate::plugins::registry::Registry>,
    /// Site code → path, for plugin calls. Codes never change and sites are
    /// never deleted (closing keeps them); a path changes only when a site
    /// moves, which bumps the plugin registry's generation, so the map is
    /// dropped whenever the generation it was filled under is no longer
    /// current. Bounded by the number of sites.
    known_sites: Arc<std::sync::RwLock<(i64, std::collections::HashMap<String, String>)>>,
    /// Walking distance and share for the 15-minute circles (`[circles]`).
    pub circles: crate::indicators::circles::Params,
}

impl AppState {
    /// State for `kernel` under `limits`.
    pub fn new(kernel: Kernel, limits: &Limits) -> AppState {
        let max_concurrent = limits.max_concurrent_requests.max(1);
        AppState {
            kernel,
            limiter: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            timeout: Duration::from_millis(limits.request_timeout_ms.max(1)),
            max_body: limits.max_body_bytes,
            registry: None,
            known_sites: Arc::default(),
            circles: Default::default(),
        }
    }

    /// Compute 15-minute circles with these parameters (`[circles]`).
    pub fn with_circles(mut self, circles: crate::indicators::circles::Params) -> AppState {
        self.circles = circles;
        self
    }

    /// Serve the plugins of `registry` under `/api/v1/plugins/<id>/…` and
    /// its administration under `/api/v1/plugin-registry`.
    pub fn with_registry(mut self, registry: crate::plugins::registry::Registry) -> AppState {
        self.registry = Some(registry);
        self
    }

    /// The plugin registry, if this kernel runs plugins.
    pub fn registry(&self) -> Option<&crate::plugins::registry::Registry> {
        self.registry.as_ref()
    }

    fn site_path(&self, code: &str) -> Option<String> {
        let generation = self.registry.as_ref().map_or(0, |r| r.generation());
        let map = self.known_sites.read().unwrap_or_else(|e| e.into_inner());
        (map.0 == generation)
            .then(|| map.1.get(code).cloned())
            .flatten()
    }

    fn remember_site(&self, code: &str, path: &str) {
        let generation = self.registry.as_ref().map_or(0, |r| r.generation());
        let mut map = self.known_sites.write().unwrap_or_else(|e| e.into_inner());
        if map.0 != generation {
            *map = (generation, Default::default());
        }
        map.1.insert(code.to_string(), path.to_string());
    }

    /// API requests in progress right now.
    pub fn in_flight(&self) -> usize {
        self.max_concurrent - self.limiter.available_permits()
    }
}

/// The whole application router.
pub fn app(state: AppState, limits: &Limits) -> Router {
    app_with(state, limits, Router::new())
}

/// The application router with `extra` routes mounted under `/api/v1`
/// beside the kernel's own, behind the same limits (benchmarks mount their
/// native baselines this way, so both sides pass the same middleware).
pub fn app_with(state: AppState, limits: &Limits, extra: Router<AppState>) -> Router {
    let api = Router::new()
        .merge(extra)
        .merge(auth::router())
        .merge(sites::router())
        .merge(persons::router())
        .merge(accounts::router())
        .merge(audit::router())
        .merge(plugins::router())
        .merge(plugin_admin::router())
        .merge(plugin_quotas::router())
        .merge(indicators::router())
        .route("/openapi.json", get(openapi::serve))
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), limit));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(plugin_admin::metrics))
        .nest("/api/v1", api)
        .merge(console::router())
        .fallback(no_route)
        .with_state(state)
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::no_route(uri.path())
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.kernel.db.ping().await {
        let mut body = serde_json::json!({ "status": "ready", "database": "ok" });
        if let Some(r) = &state.registry {
            body["plugins"] = serde_json::json!(r.loaded().len());
            // Said loudly: this kernel accepts unsigned plugin packages.
            body["dev_mode"] = serde_json::json!(r.dev_mode());
        }
        axum::Json(body).into_response()
    } else {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "Not ready",
            "the database does not answer",
        )
        .retry_after(5)
        .into_response()
    }
}

/// Concurrency cap and request timeout for API routes.
async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Ok(_permit) = state.limiter.clone().try_acquire_owned() else {
        return ApiError::overloaded().into_response();
    };
    match tokio::time::timeout(state.timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "Request timed out",
            "the request took longer than the server allows",
        )
        .retry_after(1)
        .into_response(),
    }
}

/// Serve `app` on `listener` until `shutdown` resolves, then finish the
/// requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
