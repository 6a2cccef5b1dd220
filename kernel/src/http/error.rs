//! The one HTTP error type: every failure leaves as RFC 9457
//! `application/problem+json` with a stable `type`, a clear `title`, the
//! `detail`, and for validation the fields at fault.
//!
//! **Boundary:** internal errors are logged here with their cause and leave
//! as a bare "internal error"; no SQL, path or secret crosses this line.

use crate::error::{Error, FieldError};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error on its way to becoming a problem+json response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    errors: Vec<FieldError>,
    retry_after: Option<u32>,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

impl ApiError {
    /// A problem with a status, a type slug, a title and a detail.
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            slug,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// Attach field errors.
    pub fn with_errors(mut self, errors: Vec<FieldError>) -> ApiError {
        self.errors = errors;
        self
    }

    /// Replace the detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> ApiError {
        self.detail = detail.into();
        self
    }

    /// Ask the client to retry after some seconds.
    pub fn retry_after(mut self, secs: u32) -> ApiError {
        self.retry_after = Some(secs);
        self
    }

    /// 400 for a body or query that could not be read.
    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            "Malformed request",
            detail,
        )
    }

    /// 404 for a path no route serves.
    pub fn no_route(path: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no-such-route",
            "No such route",
            format!("no route serves {path}"),
        )
    }

    /// 503 when the server is at its concurrency limit.
    pub fn overloaded() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "Server busy",
            "too many requests are in progress; retry shortly",
        )
        .retry_after(1)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::Invalid(errors) => {
                let detail = match errors.as_slice() {
                    [one] => format!("{}: {}", one.field, one.message),
                    many => format!("{} fields are invalid", many.len()),
                };
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid-input",
                    "Invalid input",
                    detail,
                )
                .with_errors(errors)
            }
            Error::NotFound(what) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                format!("{what} not found"),
            ),
            Error::Conflict { field, message } => {
                let errors = field
                    .map(|f| {
                        vec![FieldError {
                            field: f,
                            message: message.clone(),
                        }]
                    })
                    .unwrap_or_default();
                ApiError::new(StatusCode::CONFLICT, "conflict", "Conflict", message)
                    .with_errors(errors)
            }
            Error::Forbidden(m) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", m)
            }
            Error::Unauthenticated(m) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
                m,
            ),
            Error::Internal(cause) => {
                tracing::error!(error = %format!("{cause:#}"), "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "internal error",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: format!("urn:lifelong:problem:{}", self.slug),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            errors: &self.errors,
        };
        let mut res = (
            self.status,
            serde_json::to_string(&body).unwrap_or_default(),
        )
            .into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        res
    }
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
