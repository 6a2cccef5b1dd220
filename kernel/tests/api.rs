//! In-process HTTP tests of the kernel API. Every test that touches data runs
//! twice, on a temporary SQLite file and on a fresh PostgreSQL database (see
//! `api/support.rs`).

#[path = "api/support.rs"]
mod support;

#[path = "api/accounts.rs"]
mod accounts;
#[path = "api/conversions.rs"]
mod conversions;
#[path = "api/limits.rs"]
mod limits;
#[path = "api/persons.rs"]
mod persons;
#[path = "api/sites.rs"]
mod sites;
#[path = "api/storage.rs"]
mod storage;
