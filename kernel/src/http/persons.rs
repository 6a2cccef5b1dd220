//! Identity routes: persons, roles, full ID-number reads, CSV import.

use super::error::ApiResult;
use super::extract::{Auth, Json, Query};
use super::page::{self, Page};
use super::AppState;
use crate::identity::{self, NewPerson, Person, RoleGrant};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/persons", get(list).post(create))
        .route("/persons/import", post(import))
        .route("/persons/lookup", post(lookup))
        .route("/persons/{id}", get(one))
        .route("/persons/{id}/id-number", get(id_number))
        .route("/persons/{id}/roles", get(roles).post(grant))
        .route("/persons/{id}/roles/{grant}", delete(revoke))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    site: String,
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn list(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Query(p): Query<ListParams>,
) -> ApiResult<axum::Json<Page<Person>>> {
    let limit = page::limit(p.limit)?;
    let items = identity::list(
        &s.kernel,
        &actor,
        &p.site,
        page::decode_id(&p.cursor)?,
        limit,
    )
    .await?;
    Ok(axum::Json(page::page(items, limit, |p| p.id.to_string())))
}

async fn create(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Json(n): Json<NewPerson>,
) -> ApiResult<(StatusCode, axum::Json<Person>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(identity::create(&s.kernel, &actor, n).await?),
    ))
}

async fn import(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    body: String,
) -> ApiResult<axum::Json<Value>> {
    let created = identity::csv::import(&s.kernel, &actor, &body, &|_, _| {}).await?;
    Ok(axum::Json(json!({ "created": created })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Lookup {
    id_number: String,
}

/// Look-up by ID number is a POST so the number never appears in a URL or an access log.
async fn lookup(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Json(b): Json<Lookup>,
) -> ApiResult<axum::Json<Person>> {
    Ok(axum::Json(
        identity::find_by_id_number(&s.kernel, &actor, &b.id_number).await?,
    ))
}

async fn one(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<Person>> {
    Ok(axum::Json(identity::get(&s.kernel, &actor, id).await?))
}

async fn id_number(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<Value>> {
    let plain = identity::reveal_id_number(&s.kernel, &actor, id).await?;
    Ok(axum::Json(json!({ "person_id": id, "id_number": plain })))
}

async fn roles(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<Vec<RoleGrant>>> {
    Ok(axum::Json(identity::roles(&s.kernel, &actor, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    role: String,
    site: String,
}

async fn grant(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Path(id): Path<i64>,
    Json(b): Json<GrantBody>,
) -> ApiResult<(StatusCode, axum::Json<RoleGrant>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(identity::grant(&s.kernel, &actor, id, &b.role, &b.site).await?),
    ))
}

async fn revoke(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Path((id, grant)): Path<(i64, i64)>,
) -> ApiResult<StatusCode> {
    identity::revoke(&s.kernel, &actor, id, grant).await?;
    Ok(StatusCode::NO_CONTENT)
}
