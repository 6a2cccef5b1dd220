//! Request extractors whose rejections are problem+json: JSON bodies, query
//! strings and the bearer-token caller.

use super::error::ApiError;
use super::AppState;
use crate::authz::Actor;
use crate::identity;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// A JSON body; malformed, mistyped or oversized bodies become problems.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "send the body as application/json",
            )),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(too_large())
            }
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::bad_request(format!(
                "the body is not valid JSON: {}",
                source_text(&e)
            ))),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-input",
                "Invalid input",
                format!(
                    "the body does not have the expected shape: {}",
                    source_text(&e)
                ),
            )),
            Err(other) => {
                if other.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Err(too_large())
                } else {
                    Err(ApiError::bad_request(other.body_text()))
                }
            }
        }
    }
}

/// The 413 problem.
pub fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        "Request body too large",
        "the request body exceeds the server's limit",
    )
}

fn source_text(e: &dyn std::error::Error) -> String {
    let mut inner: &dyn std::error::Error = e;
    while let Some(s) = inner.source() {
        inner = s;
    }
    inner.to_string()
}

/// A query string; bad values become problems.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-input",
                "Invalid input",
                format!("bad query string: {}", source_text(&e)),
            )),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// The authenticated caller, from `Authorization: Bearer <token>`.
pub struct Auth(pub Actor, pub String);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::from(crate::error::Error::Unauthenticated(
                    "send Authorization: Bearer <token>".into(),
                ))
            })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::from(crate::error::Error::Unauthenticated(
                    "the Authorization header must be Bearer <token>".into(),
                ))
            })?;
        let caller = identity::authenticate(&state.kernel, token).await?;
        Ok(Auth(Actor::Person(caller), token.to_string()))
    }
}
