//! Account, ledger, recognition-rule and conversion-standard routes.

use super::error::ApiResult;
use super::extract::{Auth, Json, Query};
use super::page;
use super::AppState;
use crate::accounts::conversion::{self, NewConversion, NewStandard, Standard};
use crate::accounts::ledger::{self, Entry, NewEntry, Recorded, Statement};
use crate::accounts::rules::{self, NewRule, Rule};
use crate::accounts::{self, Account};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/persons/{id}/account", get(account))
        .route("/persons/{id}/account/statement", get(statement))
        .route("/persons/{id}/account/{action}", post(transition))
        .route("/ledger/entries", post(record))
        .route("/ledger/entries/{id}/reverse", post(reverse))
        .route("/rules", get(list_rules).post(publish_rule))
        .route("/ledger/conversions", post(convert))
        .route(
            "/conversion-standards",
            get(list_standards).post(publish_standard),
        )
}

async fn account(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<Account>> {
    Ok(axum::Json(accounts::get(&s.kernel, &actor, id).await?.0))
}

async fn transition(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Path((id, action)): Path<(i64, String)>,
) -> ApiResult<axum::Json<Account>> {
    Ok(axum::Json(
        accounts::transition(&s.kernel, &actor, id, &action).await?,
    ))
}

async fn statement(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Path(id): Path<i64>,
    Query(p): Query<page::PageQuery>,
) -> ApiResult<axum::Json<StatementPage>> {
    let limit = page::limit(p.limit)?;
    let statement =
        ledger::statement(&s.kernel, &actor, id, page::decode_id(&p.cursor)?, limit).await?;
    let next_cursor = page::next_cursor(&statement.entries, limit, |e| e.seq.to_string());
    Ok(axum::Json(StatementPage {
        statement,
        next_cursor,
    }))
}

/// A statement with the cursor for its next page of entries.
#[derive(serde::Serialize)]
struct StatementPage {
    #[serde(flatten)]
    statement: Statement,
    next_cursor: Option<String>,
}

fn created((entry, how): (Entry, Recorded)) -> (StatusCode, axum::Json<Entry>) {
    let status = match how {
        Recorded::Created => StatusCode::CREATED,
        Recorded::Replayed => StatusCode::OK,
    };
    (status, axum::Json(entry))
}

async fn record(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Json(n): Json<NewEntry>,
) -> ApiResult<(StatusCode, axum::Json<Entry>)> {
    Ok(created(
        ledger::record(&s.kernel, &actor, "kernel", n).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReverseBody {
    reason: String,
    idempotency_key: String,
}

async fn reverse(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Path(id): Path<i64>,
    Json(b): Json<ReverseBody>,
) -> ApiResult<(StatusCode, axum::Json<Entry>)> {
    Ok(created(
        ledger::reverse(&s.kernel, &actor, id, &b.reason, &b.idempotency_key).await?,
    ))
}

async fn list_rules(
    State(s): State<AppState>,
    Auth(_, _): Auth,
) -> ApiResult<axum::Json<Vec<Rule>>> {
    Ok(axum::Json(rules::list(&s.kernel).await?))
}

async fn publish_rule(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Json(n): Json<NewRule>,
) -> ApiResult<(StatusCode, axum::Json<Rule>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(rules::publish(&s.kernel, &actor, n).await?),
    ))
}

async fn convert(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Json(n): Json<NewConversion>,
) -> ApiResult<(StatusCode, axum::Json<Entry>)> {
    Ok(created(
        conversion::convert(&s.kernel, &actor, "kernel", n).await?,
    ))
}

async fn list_standards(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
) -> ApiResult<axum::Json<Vec<Standard>>> {
    Ok(axum::Json(conversion::list(&s.kernel, &actor).await?))
}

async fn publish_standard(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Json(n): Json<NewStandard>,
) -> ApiResult<(StatusCode, axum::Json<Standard>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(conversion::publish(&s.kernel, &actor, n).await?),
    ))
}
