//! Errors a handler returns; each becomes an RFC 9457 problem+json response.

use crate::bindings::lifelong::plugin::types::Error as HostError;

/// A handler error: an HTTP status and a problem description.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// HTTP status.
    pub status: u16,
    /// Short, stable problem slug (`urn:lifelong:problem:<slug>`).
    pub slug: String,
    /// Human title.
    pub title: String,
    /// What happened, for the caller.
    pub detail: String,
}

/// Result of a handler or an SDK call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with any status.
    pub fn new(status: u16, slug: &str, title: &str, detail: impl Into<String>) -> Error {
        Error {
            status,
            slug: slug.into(),
            title: title.into(),
            detail: detail.into(),
        }
    }

    /// 400: the request is wrong.
    pub fn bad_request(detail: impl Into<String>) -> Error {
        Error::new(400, "invalid", "Invalid request", detail)
    }

    /// 403: the caller may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Error {
        Error::new(403, "forbidden", "Forbidden", detail)
    }

    /// 404: no such thing.
    pub fn not_found(detail: impl Into<String>) -> Error {
        Error::new(404, "not-found", "Not found", detail)
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(detail: impl Into<String>) -> Error {
        Error::new(409, "conflict", "Conflict", detail)
    }

    /// 500: something failed inside the plugin.
    pub fn internal(detail: impl Into<String>) -> Error {
        Error::new(500, "plugin-error", "Plugin error", detail)
    }

    /// The problem+json body.
    pub fn body(&self) -> Vec<u8> {
        serde_json::json!({
            "type": format!("urn:lifelong:problem:{}", self.slug),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        })
        .to_string()
        .into_bytes()
    }
}

impl From<HostError> for Error {
    fn from(e: HostError) -> Error {
        match e {
            HostError::Denied(m) => Error::new(403, "capability-denied", "Capability denied", m),
            HostError::NotFound(m) => Error::not_found(m),
            HostError::Invalid(m) => Error::bad_request(m),
            HostError::Conflict(m) => Error::conflict(m),
            HostError::MissingIndex(m) => {
                Error::new(500, "missing-index", "Query needs an index", m)
            }
            HostError::ReadOnly(m) => Error::new(405, "read-only", "Read-only call", m),
            HostError::Internal(m) => Error::internal(m),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::bad_request(format!("the body is not valid JSON for this route: {e}"))
    }
}
