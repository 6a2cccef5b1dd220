//! The Lifelong kernel: the identity, account and site registries, the
//! credit bank, audit, storage and the HTTP API, plus the `lifelong` CLI.
//!
//! Layering, from the bottom: `storage` (the database, one portable SQL
//! dialect) → `authz`, `audit`, `crypto`, `idnumber` → the registries
//! (`sites`, `identity`, `accounts`) → `http` and `cli`. A lower layer never
//! names a higher one. See `ARCHITECTURE.md`.

// No unsafe code, with one audited exception: loading precompiled plugin
// code from the kernel's own cache (`plugins::runtime::load_cached`).
#![deny(unsafe_code)]

pub mod accounts;
pub mod audit;
pub mod authz;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod error;
pub mod http;
pub mod identity;
pub mod idnumber;
pub mod indicators;
pub mod kernel;
pub mod plugins;
pub mod sites;
pub mod storage;

pub use kernel::Kernel;
