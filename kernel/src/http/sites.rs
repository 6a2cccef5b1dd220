//! Site registry routes.

use super::error::{ApiError, ApiResult};
use super::extract::{Auth, Json, Query};
use super::page::{self, Page};
use super::AppState;
use crate::sites::{self, csv as sitecsv, NewSite, Site, SitePatch};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sites", get(list).post(create))
        .route("/sites/export", get(export))
        .route("/sites/import", post(import))
        .route("/sites/{site}", get(one).patch(update))
        .route("/sites/{site}/close", post(close))
        .route("/sites/{site}/children", get(children))
        .route("/sites/{site}/ancestors", get(ancestors))
        .route("/sites/{site}/subtree", get(subtree))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListParams {
    q: Option<String>,
    kind: Option<String>,
    status: Option<String>,
    within: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn list(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Query(p): Query<ListParams>,
) -> ApiResult<axum::Json<Page<Site>>> {
    let limit = page::limit(p.limit)?;
    let items = sites::list(
        &s.kernel.db,
        &actor,
        sites::ListQuery {
            within: p.within,
            q: p.q,
            kind: p.kind,
            status: p.status,
            after_path: page::decode(&p.cursor)?,
            limit,
        },
    )
    .await?;
    Ok(axum::Json(page::page(items, limit, |s| s.path.clone())))
}

async fn subtree(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Path(site): Path<String>,
    Query(p): Query<page::PageQuery>,
) -> ApiResult<axum::Json<Page<Site>>> {
    let limit = page::limit(p.limit)?;
    let items = sites::list(
        &s.kernel.db,
        &actor,
        sites::ListQuery {
            within: Some(site),
            after_path: page::decode(&p.cursor)?,
            limit,
            ..Default::default()
        },
    )
    .await?;
    Ok(axum::Json(page::page(items, limit, |s| s.path.clone())))
}

async fn create(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Json(n): Json<NewSite>,
) -> ApiResult<(StatusCode, axum::Json<Site>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(sites::create(&s.kernel.db, &actor, n).await?),
    ))
}

async fn one(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Path(site): Path<String>,
) -> ApiResult<axum::Json<Site>> {
    Ok(axum::Json(sites::get(&s.kernel.db, &actor, &site).await?))
}

async fn update(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Path(site): Path<String>,
    Json(p): Json<SitePatch>,
) -> ApiResult<axum::Json<Site>> {
    Ok(axum::Json(
        sites::update(&s.kernel.db, &actor, &site, p).await?,
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CloseBody {
    closed_on: Option<String>,
}

async fn close(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Path(site): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<axum::Json<Site>> {
    let on = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<CloseBody>(&body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?
            .closed_on
    };
    Ok(axum::Json(
        sites::close(&s.kernel.db, &actor, &site, on).await?,
    ))
}

async fn children(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Path(site): Path<String>,
) -> ApiResult<axum::Json<Vec<Site>>> {
    Ok(axum::Json(
        sites::children(&s.kernel.db, &actor, &site).await?,
    ))
}

async fn ancestors(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Path(site): Path<String>,
) -> ApiResult<axum::Json<Vec<Site>>> {
    Ok(axum::Json(
        sites::ancestors(&s.kernel.db, &actor, &site).await?,
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExportParams {
    within: Option<String>,
}

async fn export(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Query(p): Query<ExportParams>,
) -> ApiResult<impl IntoResponse> {
    let text = sitecsv::export(&s.kernel.db, &actor, p.within).await?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], text))
}

async fn import(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    body: String,
) -> ApiResult<axum::Json<sitecsv::ImportReport>> {
    Ok(axum::Json(
        sitecsv::import(&s.kernel.db, &actor, &body).await?,
    ))
}

/// A CSV import refusal: the per-row report as a 422 problem whose fields
/// read `line N: column`.
impl From<sitecsv::ImportError> for ApiError {
    fn from(e: sitecsv::ImportError) -> ApiError {
        let rows = match e {
            sitecsv::ImportError::Rows(rows) => rows,
            sitecsv::ImportError::Other(e) => return e.into(),
        };
        let n = rows.len();
        ApiError::from(crate::error::Error::Invalid(
            rows.into_iter()
                .map(|r| crate::error::FieldError {
                    field: format!("line {}: {}", r.line, r.field),
                    message: r.message,
                })
                .collect(),
        ))
        .with_detail(format!("{n} row error(s); nothing was imported"))
    }
}
