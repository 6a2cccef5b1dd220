//! Indicator, snapshot and 15-minute circle routes (`indicators.rs`).

use super::error::{ApiError, ApiResult};
use super::extract::{Auth, Json, Query};
use super::AppState;
use crate::indicators::{self, snapshots, Ctx};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::Router;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/indicators", get(report))
        .route("/indicators/snapshots", get(list).post(take))
        .route("/indicators/snapshots/{snapshot}/recompute", get(recompute))
        .route("/indicators/snapshots/{snapshot}/adjust", post(adjust))
        .route("/indicators/{id}/series", get(series))
        .route("/indicators/{id}/targets", put(targets))
        .route("/circles", get(circles))
}

fn ctx(s: &AppState) -> Ctx {
    Ctx::new(s.kernel.clone(), s.registry().cloned(), s.circles)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReportParams {
    site: Option<String>,
    as_of: Option<String>,
}

async fn report(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Query(p): Query<ReportParams>,
) -> ApiResult<axum::Json<indicators::Report>> {
    Ok(axum::Json(
        indicators::report(&ctx(&s), &actor, p.site.as_deref(), p.as_of.as_deref()).await?,
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SeriesParams {
    site: Option<String>,
    interval: Option<String>,
}

async fn series(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Path(id): Path<String>,
    Query(p): Query<SeriesParams>,
) -> ApiResult<axum::Json<indicators::Series>> {
    Ok(axum::Json(
        indicators::series(
            &ctx(&s),
            &actor,
            &id,
            p.site.as_deref(),
            p.interval.as_deref(),
        )
        .await?,
    ))
}

async fn targets(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Path(id): Path<String>,
    Json(body): Json<indicators::TargetsInput>,
) -> ApiResult<axum::Json<indicators::TargetsSet>> {
    Ok(axum::Json(
        indicators::set_targets(&ctx(&s), &actor, &id, body).await?,
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TakeBody {
    site: Option<String>,
    as_of: Option<String>,
}

async fn take(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, axum::Json<Vec<snapshots::Snapshot>>)> {
    let b = if body.iter().all(u8::is_ascii_whitespace) {
        TakeBody::default()
    } else {
        serde_json::from_slice::<TakeBody>(&body).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-input",
                "Invalid input",
                format!("the body does not have the expected shape: {e}"),
            )
        })?
    };
    let snaps = snapshots::take(&ctx(&s), &actor, b.site.as_deref(), b.as_of.as_deref()).await?;
    Ok((StatusCode::CREATED, axum::Json(snaps)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListParams {
    site: Option<String>,
    id: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn list(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Query(p): Query<ListParams>,
) -> ApiResult<axum::Json<Vec<snapshots::Snapshot>>> {
    Ok(axum::Json(
        snapshots::list(
            &ctx(&s),
            &actor,
            snapshots::ListFilter {
                site: p.site,
                key: p.id,
                from: p.from,
                to: p.to,
            },
        )
        .await?,
    ))
}

async fn recompute(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<snapshots::Recomputed>> {
    Ok(axum::Json(
        snapshots::recompute(&ctx(&s), &actor, &id).await?,
    ))
}

async fn adjust(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Path(id): Path<String>,
    Json(body): Json<snapshots::Adjustment>,
) -> ApiResult<axum::Json<snapshots::Snapshot>> {
    Ok(axum::Json(
        snapshots::adjust(&ctx(&s), &actor, &id, body).await?,
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CirclesParams {
    site: Option<String>,
    as_of: Option<String>,
    distance_m: Option<f64>,
    share: Option<f64>,
}

async fn circles(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Query(p): Query<CirclesParams>,
) -> ApiResult<axum::Json<indicators::CirclesReport>> {
    Ok(axum::Json(
        indicators::circles_report(
            &ctx(&s),
            &actor,
            p.site.as_deref(),
            p.as_of.as_deref(),
            p.distance_m,
            p.share,
        )
        .await?,
    ))
}
