//! The kernel's domain error: what the registries report to their callers.
//!
//! Each variant is a category the HTTP layer maps to a status (see
//! `http/error.rs`) and the CLI prints as one line. Messages are written for
//! the person at fault and never contain an unmasked ID number, a secret or
//! internal SQL: database errors keep their detail in `source` for the log
//! and show only "internal error" outward.

use std::fmt;

/// A field-level validation failure.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// The JSON field (or CSV column) at fault, e.g. `parent_code`.
    pub field: String,
    /// What is wrong with it, in one sentence.
    pub message: String,
}

/// Errors of the kernel registries.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input failed validation; the request changed nothing.
    #[error("{}", first_message(.0))]
    Invalid(Vec<FieldError>),
    /// The object does not exist, or the caller may not know it exists.
    #[error("{0} not found")]
    NotFound(String),
    /// The request contradicts the current state (duplicate code, cycle…).
    #[error("{message}")]
    Conflict {
        /// The field at fault, when there is one.
        field: Option<String>,
        /// What conflicts.
        message: String,
    },
    /// Authenticated, but not allowed to do this here.
    #[error("{0}")]
    Forbidden(String),
    /// Not authenticated (no token, bad token, expired token).
    #[error("{0}")]
    Unauthenticated(String),
    /// A database or other internal failure. Never shown in detail.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

fn first_message(errors: &[FieldError]) -> String {
    match errors.first() {
        Some(e) => format!("{}: {}", e.field, e.message),
        None => "invalid input".to_string(),
    }
}

impl Error {
    /// One invalid field.
    pub fn invalid(field: impl Into<String>, message: impl fmt::Display) -> Error {
        Error::Invalid(vec![FieldError {
            field: field.into(),
            message: message.to_string(),
        }])
    }

    /// A conflict on a field.
    pub fn conflict(field: impl Into<String>, message: impl fmt::Display) -> Error {
        Error::Conflict {
            field: Some(field.into()),
            message: message.to_string(),
        }
    }

    /// A forbidden action.
    pub fn forbidden(message: impl fmt::Display) -> Error {
        Error::Forbidden(message.to_string())
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Internal(e.into())
    }
}

impl From<crate::storage::StorageError> for Error {
    fn from(e: crate::storage::StorageError) -> Self {
        Error::Internal(e.into())
    }
}

/// Result with the kernel's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
