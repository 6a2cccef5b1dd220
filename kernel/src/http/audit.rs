//! Audit log route: `GET /audit?site=&from=&until=&order=&limit=&cursor=`.

use super::error::ApiResult;
use super::extract::{Auth, Query};
use super::page::{self, Page};
use super::AppState;
use crate::audit::{self, Entry};
use crate::sites;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    site: Option<String>,
    /// µs since the epoch, inclusive.
    from: Option<i64>,
    /// µs since the epoch, exclusive.
    until: Option<i64>,
    limit: Option<i64>,
    cursor: Option<String>,
    /// `newest` for newest first; `oldest` (the default) for oldest first.
    order: Option<String>,
}

async fn list(
    State(s): State<AppState>,
    Auth(actor, _): Auth,
    Query(p): Query<Params>,
) -> ApiResult<axum::Json<Page<Entry>>> {
    let limit = page::limit(p.limit)?;
    let newest_first = match p.order.as_deref() {
        None | Some("oldest") => false,
        Some("newest") => true,
        Some(_) => {
            return Err(crate::error::Error::invalid("order", "must be newest or oldest").into())
        }
    };
    let within_path = match &p.site {
        Some(site) => Some(sites::get(&s.kernel.db, &actor, site).await?.path),
        None => None,
    };
    let items = audit::list(
        &s.kernel.db,
        &actor,
        audit::Query {
            within_path,
            from: p.from,
            until: p.until,
            after_id: page::decode_id(&p.cursor)?,
            limit,
            newest_first,
        },
    )
    .await?;
    Ok(axum::Json(page::page(items, limit, |e| e.id.to_string())))
}
