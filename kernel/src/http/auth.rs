//! Sign-in and sign-out, and `GET /me`.

use super::error::ApiResult;
use super::extract::{Auth, Json};
use super::AppState;
use crate::identity;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/me", get(me))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    login: String,
    password: String,
}

async fn login(
    State(s): State<AppState>,
    Json(b): Json<Login>,
) -> ApiResult<axum::Json<identity::IssuedToken>> {
    Ok(axum::Json(
        identity::login(&s.kernel, &b.login, &b.password).await?,
    ))
}

async fn logout(State(s): State<AppState>, Auth(_, token): Auth) -> ApiResult<StatusCode> {
    identity::logout(&s.kernel, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(State(s): State<AppState>, Auth(actor, _): Auth) -> ApiResult<axum::Json<Value>> {
    let id = actor.person_id().unwrap_or_default();
    let person = identity::get(&s.kernel, &actor, id).await?;
    let roles = identity::roles(&s.kernel, &actor, id).await?;
    Ok(axum::Json(json!({ "person": person, "roles": roles })))
}
