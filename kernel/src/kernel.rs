//! The kernel handle: the database and the keys, shared by every registry
//! operation, the HTTP layer and the CLI.

use crate::crypto::PiiKeys;
use crate::storage::Db;

/// Everything a registry operation needs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// The database.
    pub db: Db,
    /// Keys protecting personal data.
    pub pii: PiiKeys,
    /// Lifetime of a bearer token, in seconds.
    pub token_ttl_secs: i64,
    /// The largest quantity of one learning outcome a plugin may record.
    pub outcome_maxima: crate::config::OutcomeMaxima,
}
