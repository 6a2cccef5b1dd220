//! Cursor pagination: `?limit=N&cursor=…` in, `{items, next_cursor}` out.
//! Cursors are opaque (base64url of the last item's sort key).

use super::error::ApiError;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Query parameters shared by listing endpoints.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items per page (1-500, default 50).
    pub limit: Option<i64>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// A page of items.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The page size requested, clamped.
pub fn limit(q: Option<i64>) -> Result<i64, ApiError> {
    match q {
        None => Ok(50),
        Some(n) if (1..=500).contains(&n) => Ok(n),
        Some(_) => Err(crate::error::Error::invalid("limit", "must be between 1 and 500").into()),
    }
}

/// Decode a cursor to its key.
pub fn decode(cursor: &Option<String>) -> Result<Option<String>, ApiError> {
    match cursor {
        None => Ok(None),
        Some(c) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map(Some)
            .ok_or_else(|| {
                crate::error::Error::invalid("cursor", "is not a cursor this server issued").into()
            }),
    }
}

/// Decode a numeric cursor (0 when absent).
pub fn decode_id(cursor: &Option<String>) -> Result<i64, ApiError> {
    match decode(cursor)? {
        None => Ok(0),
        Some(s) => s.parse().map_err(|_| {
            crate::error::Error::invalid("cursor", "is not a cursor this server issued").into()
        }),
    }
}

/// The cursor after `items`: only when the page is full.
pub fn next_cursor<T>(items: &[T], limit: i64, key: impl Fn(&T) -> String) -> Option<String> {
    if items.len() as i64 == limit {
        items
            .last()
            .map(|l| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key(l)))
    } else {
        None
    }
}

/// Build a page.
pub fn page<T>(items: Vec<T>, limit: i64, key: impl Fn(&T) -> String) -> Page<T> {
    let next_cursor = next_cursor(&items, limit, key);
    Page { items, next_cursor }
}
