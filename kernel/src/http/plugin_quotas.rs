//! `/api/v1/plugin-publishers/{publisher}/quotas`: the city's quotas for
//! one publisher's plugins (city admins). `GET` shows the override and the
//! city defaults; `PUT` replaces the override (values left out take the
//! city defaults; `{}` removes it). Audited; every node applies it with its
//! next registry reload (at once on the node that set it).

use super::error::ApiError;
use super::extract::{Auth, Json};
use super::AppState;
use crate::plugins::quota::{self, QuotaValues};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new().route("/plugin-publishers/{publisher}/quotas", get(show).put(set))
}

fn registry(state: &AppState) -> Result<&crate::plugins::registry::Registry, ApiError> {
    state.registry().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            "this kernel runs no plugin runtime",
        )
    })
}

async fn show(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
    Path(publisher): Path<String>,
) -> Result<Response, ApiError> {
    actor.require_city_admin("reading a publisher's plugin quotas")?;
    let r = registry(&state)?;
    let over = quota::publisher_override(r.kernel(), &publisher).await?;
    Ok(axum::Json(serde_json::json!({
        "publisher": publisher,
        "override": over,
        "defaults": r.runtime().quotas().defaults(),
    }))
    .into_response())
}

async fn set(
    State(state): State<AppState>,
    Auth(actor, _): Auth,
    Path(publisher): Path<String>,
    Json(values): Json<QuotaValues>,
) -> Result<Response, ApiError> {
    let r = registry(&state)?;
    quota::set_override(r.kernel(), &actor, &publisher, &values).await?;
    r.refresh().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
