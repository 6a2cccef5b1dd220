//! The web admin console: a page at `/` and its assets under `/console/…`,
//! embedded in the binary (no CDN, no build step; works offline). The
//! console is plain HTML, CSS and JavaScript that talks only to the public
//! `/api/v1` with the bearer token from `/api/v1/auth/login`; nothing here
//! reads the database or decides access. See ARCHITECTURE.md, "Console".

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::ApiError;
use super::AppState;

/// Every asset: (file name under `/console/`, content type, bytes).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../console/style.css"),
    ),
    (
        "i18n.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/i18n.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/api.js"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/ui.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/charts.js"),
    ),
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/dashboard.js"),
    ),
    (
        "sites.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/sites.js"),
    ),
    (
        "persons.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/persons.js"),
    ),
    (
        "modules.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/modules.js"),
    ),
    (
        "health.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/health.js"),
    ),
    (
        "audit.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/audit.js"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/app.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../console/favicon.svg"),
    ),
];

const INDEX: &str = include_str!("../../console/index.html");

/// Only this origin's scripts, styles and API; no inline script, no frames.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/console/{file}", get(asset))
}

fn secured(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

async fn index() -> Response {
    secured(
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            INDEX,
        )
            .into_response(),
    )
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, ty, body)) => secured(
            (
                [
                    (header::CONTENT_TYPE, *ty),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                *body,
            )
                .into_response(),
        ),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("the console has no asset {file:?}"),
        )
        .into_response(),
    }
}
