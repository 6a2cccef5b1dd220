//! The credit-bank ledger: append-only, idempotent, hash-chained entries.
//!
//! **Invariants:**
//! - entries are never updated or deleted (database triggers refuse it);
//!   a correction is a reversal entry, at most one per original;
//! - `(origin, idempotency_key)` is unique: the same key with the same
//!   content returns the first entry; with different content it is an error;
//! - each account's entries form a hash chain (`prev_hash` → `entry_hash`,
//!   tip in `accounts.head_hash`), so any edit, insertion or deletion is found
//!   by [`verify`];
//! - an append locks its account row first, so concurrent appends to one
//!   account are ordered and each sees the previous tip.

use super::rules;
use crate::audit::{self, Change};
use crate::authz::Actor;
use crate::error::{Error, Result};

use crate::kernel::Kernel;
use crate::sites::{self, parse_date};
use crate::storage::{col, is_unique_violation, now_micros, Db, Tx};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;

pub use super::verify::{verify, Break, VerifyReport};

/// Outcome kinds the credit bank recognises.
pub const KINDS: &[&str] = &[
    "academic_credit",
    "vocational_qualification",
    "skill_certificate",
    "continuing_education",
    "non_formal_learning",
    "volunteer_service",
];

/// The unit each kind is measured in.
pub fn unit_for(kind: &str) -> &'static str {
    match kind {
        "academic_credit" => "credit",
        "vocational_qualification" | "skill_certificate" => "certificate",
        _ => "hour",
    }
}

/// Convert a decimal with at most three places to thousandths.
pub fn to_milli(field: &str, v: f64) -> Result<i64> {
    let m = v * 1000.0;
    if !m.is_finite() || (m - m.round()).abs() > 1e-6 || m.abs() > 1e15 {
        return Err(Error::invalid(
            field,
            "must be a number with at most 3 decimal places",
        ));
    }
    Ok(m.round() as i64)
}

fn from_milli(m: i64) -> f64 {
    m as f64 / 1000.0
}

/// A learning outcome to record.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEntry {
    /// Whose account.
    pub person_id: i64,
    /// One of [`KINDS`].
    pub kind: String,
    /// What was learned, e.g. "Calligraphy, spring term 2026".
    pub title: String,
    /// How much, in the kind's unit.
    pub quantity: f64,
    /// The unit; must be the kind's unit when given.
    #[serde(default)]
    pub unit: Option<String>,
    /// When it was achieved (YYYY-MM-DD).
    pub occurred_on: String,
    /// The site that recognises it (code or id).
    pub source_site: String,
    /// Issuing body, e.g. a certificate authority.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The issuer's reference (certificate number, course id…).
    #[serde(default)]
    pub reference: Option<String>,
    /// Where the evidence is.
    #[serde(default)]
    pub evidence: Option<String>,
    /// Recognition rule code to convert with.
    #[serde(default)]
    pub rule: Option<String>,
    /// Unique per origin; retries with the same key record once.
    pub idempotency_key: String,
}

/// A recorded entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entry {
    /// Entry id.
    pub id: i64,
    /// Account.
    pub account_id: i64,
    /// Position in the account's chain, from 1.
    pub seq: i64,
    /// Outcome kind.
    pub kind: String,
    /// What was learned.
    pub title: String,
    /// Quantity in `unit` (negative for reversals).
    pub quantity: f64,
    /// Unit.
    pub unit: String,
    /// Credits granted.
    pub credits: f64,
    /// Rule code used.
    pub rule_code: Option<String>,
    /// Rule version used.
    pub rule_version: Option<i64>,
    /// Date achieved.
    pub occurred_on: String,
    /// Recognising site.
    pub source_site_id: Option<i64>,
    /// Issuer.
    pub issuer: Option<String>,
    /// `kernel` or `plugin:<id>`.
    pub origin: String,
    /// Issuer reference.
    pub reference: Option<String>,
    /// Evidence.
    pub evidence: Option<String>,
    /// Idempotency key.
    pub idempotency_key: String,
    /// The entry this reverses.
    pub reverses_entry_id: Option<i64>,
    /// Recording time, µs.
    pub recorded_at: i64,
    /// Chain hash, hex.
    pub entry_hash: String,
}

/// Raw stored fields, the input of the chain hash.
pub(super) struct Stored {
    pub(super) id: i64,
    pub(super) account_id: i64,
    pub(super) seq: i64,
    pub(super) kind: String,
    pub(super) title: String,
    pub(super) quantity_milli: i64,
    pub(super) unit: String,
    pub(super) credits_milli: i64,
    pub(super) rule_code: Option<String>,
    pub(super) rule_version: Option<i64>,
    pub(super) occurred_on: String,
    pub(super) source_site_id: Option<i64>,
    pub(super) issuer: Option<String>,
    pub(super) origin: String,
    pub(super) reference: Option<String>,
    pub(super) evidence: Option<String>,
    pub(super) idempotency_key: String,
    pub(super) content_hash: Vec<u8>,
    pub(super) reverses_entry_id: Option<i64>,
    pub(super) recorded_at: i64,
    pub(super) prev_hash: Vec<u8>,
    pub(super) entry_hash: Vec<u8>,
}

pub(super) const COLUMNS: &str = "id, account_id, seq, kind, title, quantity_milli, unit, credits_milli, rule_code, \
    rule_version, occurred_on, source_site_id, issuer, origin, reference, evidence, idempotency_key, \
    content_hash, reverses_entry_id, recorded_at, prev_hash, entry_hash";

pub(super) fn stored(r: &AnyRow) -> Result<Stored, sqlx::Error> {
    Ok(Stored {
        id: col(r, "id")?,
        account_id: col(r, "account_id")?,
        seq: col(r, "seq")?,
        kind: col(r, "kind")?,
        title: col(r, "title")?,
        quantity_milli: col(r, "quantity_milli")?,
        unit: col(r, "unit")?,
        credits_milli: col(r, "credits_milli")?,
        rule_code: col(r, "rule_code")?,
        rule_version: col(r, "rule_version")?,
        occurred_on: col(r, "occurred_on")?,
        source_site_id: col(r, "source_site_id")?,
        issuer: col(r, "issuer")?,
        origin: col(r, "origin")?,
        reference: col(r, "reference")?,
        evidence: col(r, "evidence")?,
        idempotency_key: col(r, "idempotency_key")?,
        content_hash: col(r, "content_hash")?,
        reverses_entry_id: col(r, "reverses_entry_id")?,
        recorded_at: col(r, "recorded_at")?,
        prev_hash: col(r, "prev_hash")?,
        entry_hash: col(r, "entry_hash")?,
    })
}

impl Stored {
    pub(super) fn public(&self) -> Entry {
        Entry {
            id: self.id,
            account_id: self.account_id,
            seq: self.seq,
            kind: self.kind.clone(),
            title: self.title.clone(),
            quantity: from_milli(self.quantity_milli),
            unit: self.unit.clone(),
            credits: from_milli(self.credits_milli),
            rule_code: self.rule_code.clone(),
            rule_version: self.rule_version,
            occurred_on: self.occurred_on.clone(),
            source_site_id: self.source_site_id,
            issuer: self.issuer.clone(),
            origin: self.origin.clone(),
            reference: self.reference.clone(),
            evidence: self.evidence.clone(),
            idempotency_key: self.idempotency_key.clone(),
            reverses_entry_id: self.reverses_entry_id,
            recorded_at: self.recorded_at,
            entry_hash: hex::encode(&self.entry_hash),
        }
    }

    /// The chain hash of this entry given its predecessor's hash.
    pub(super) fn chain_hash(&self, prev: &[u8]) -> Vec<u8> {
        self.hashed().chain_hash(prev).to_vec()
    }

    fn hashed(&self) -> Hashed<'_> {
        Hashed {
            account_id: self.account_id,
            seq: self.seq,
            kind: &self.kind,
            title: &self.title,
            quantity_milli: self.quantity_milli,
            unit: &self.unit,
            credits_milli: self.credits_milli,
            rule_code: self.rule_code.as_deref(),
            rule_version: self.rule_version,
            occurred_on: &self.occurred_on,
            source_site_id: self.source_site_id,
            issuer: self.issuer.as_deref(),
            origin: &self.origin,
            reference: self.reference.as_deref(),
            evidence: self.evidence.as_deref(),
            idempotency_key: &self.idempotency_key,
            content_hash: &self.content_hash,
            reverses_entry_id: self.reverses_entry_id,
            recorded_at: self.recorded_at,
        }
    }
}

/// The fields an entry's chain hash covers, borrowed, so that `verify` can
/// hash straight from the row it reads without copying.
pub(super) struct Hashed<'a> {
    pub account_id: i64,
    pub seq: i64,
    pub kind: &'a str,
    pub title: &'a str,
    pub quantity_milli: i64,
    pub unit: &'a str,
    pub credits_milli: i64,
    pub rule_code: Option<&'a str>,
    pub rule_version: Option<i64>,
    pub occurred_on: &'a str,
    pub source_site_id: Option<i64>,
    pub issuer: Option<&'a str>,
    pub origin: &'a str,
    pub reference: Option<&'a str>,
    pub evidence: Option<&'a str>,
    pub idempotency_key: &'a str,
    pub content_hash: &'a [u8],
    pub reverses_entry_id: Option<i64>,
    pub recorded_at: i64,
}

impl Hashed<'_> {
    /// SHA-256 over a domain tag, the predecessor's hash and every field,
    /// each length-prefixed; integers in decimal, absent values empty.
    pub fn chain_hash(&self, prev: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"lifelong-ledger-v1");
        h.update(prev);
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        let mut num = itoa::Buffer::new();
        let mut int = |field: &mut dyn FnMut(&[u8]), v: Option<i64>| match v {
            Some(x) => field(num.format(x).as_bytes()),
            None => field(b""),
        };
        int(&mut field, Some(self.account_id));
        int(&mut field, Some(self.seq));
        field(self.kind.as_bytes());
        field(self.title.as_bytes());
        int(&mut field, Some(self.quantity_milli));
        field(self.unit.as_bytes());
        int(&mut field, Some(self.credits_milli));
        field(self.rule_code.unwrap_or("").as_bytes());
        int(&mut field, self.rule_version);
        field(self.occurred_on.as_bytes());
        int(&mut field, self.source_site_id);
        field(self.issuer.unwrap_or("").as_bytes());
        field(self.origin.as_bytes());
        field(self.reference.unwrap_or("").as_bytes());
        field(self.evidence.unwrap_or("").as_bytes());
        field(self.idempotency_key.as_bytes());
        field(self.content_hash);
        int(&mut field, self.reverses_entry_id);
        int(&mut field, Some(self.recorded_at));
        h.finalize().into()
    }
}

/// A validated request, independent of the current state.
pub(super) struct Request {
    pub(super) account_person: i64,
    pub(super) kind: String,
    pub(super) title: String,
    pub(super) quantity_milli: i64,
    pub(super) unit: String,
    pub(super) occurred_on: String,
    pub(super) source_site_id: Option<i64>,
    pub(super) issuer: Option<String>,
    pub(super) reference: Option<String>,
    pub(super) evidence: Option<String>,
    pub(super) rule: Option<String>,
    pub(super) idempotency_key: String,
    pub(super) reverses: Option<i64>,
    /// Credits fixed by the caller instead of a rule (a reversal negates the original's).
    pub(super) credits: Option<i64>,
    /// The standard (code, version) behind fixed credits: a conversion's.
    pub(super) standard: Option<(String, i64)>,
}

impl Request {
    pub(super) fn content_hash(&self) -> Vec<u8> {
        let v = serde_json::json!([
            self.account_person,
            self.kind,
            self.title,
            self.quantity_milli,
            self.unit,
            self.occurred_on,
            self.source_site_id,
            self.issuer,
            self.reference,
            self.evidence,
            self.rule,
            self.reverses
        ]);
        Sha256::digest(v.to_string().as_bytes()).to_vec()
    }
}

fn check_text(field: &str, v: &Option<String>, max: usize) -> Result<()> {
    match v {
        Some(s) if s.chars().count() > max => Err(Error::invalid(
            field,
            format!("must be at most {max} characters"),
        )),
        _ => Ok(()),
    }
}

/// Whether a record call wrote a new entry or found the earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A new entry was appended.
    Created,
    /// The idempotency key was seen before with the same content.
    Replayed,
}

/// Record a learning outcome from `origin` (`kernel` for the API, `plugin:<id>`).
pub async fn record(
    k: &Kernel,
    actor: &Actor,
    origin: &str,
    n: NewEntry,
) -> Result<(Entry, Recorded)> {
    let (req, site_path) = validate(k, actor, n).await?;
    append(k, actor, origin, req, Some(&site_path)).await
}

/// Record a learning outcome inside the caller's transaction `tx` (a plugin
/// call's): it commits or rolls back with everything else the call did.
/// Losing a race on the idempotency key to another transaction is reported
/// as a write conflict, so the whole call is re-run.
pub async fn record_in(
    tx: &mut Tx,
    k: &Kernel,
    actor: &Actor,
    origin: &str,
    n: NewEntry,
) -> Result<(Entry, Recorded)> {
    let (req, site_path) = validate(k, actor, n).await?;
    let content_hash = req.content_hash();
    match append_in(tx, actor, origin, &req, &content_hash, Some(&site_path)).await {
        Ok(v) => Ok(v),
        Err(AppendError::KeyTaken) => Err(Error::Internal(anyhow::anyhow!(
            "write conflict: idempotency key {:?} was taken by a concurrent call",
            req.idempotency_key
        ))),
        Err(AppendError::Other(e)) => Err(e),
    }
}

/// Check a new outcome; returns the request and the source site's path.
async fn validate(k: &Kernel, actor: &Actor, n: NewEntry) -> Result<(Request, String)> {
    if !KINDS.contains(&n.kind.as_str()) {
        return Err(Error::invalid(
            "kind",
            format!(
                "unknown kind {:?}; expected one of {}",
                n.kind,
                KINDS.join(", ")
            ),
        ));
    }
    let unit = unit_for(&n.kind);
    if let Some(u) = &n.unit {
        if u != unit {
            return Err(Error::invalid(
                "unit",
                format!("a {} is measured in {unit}, not {u}", n.kind),
            ));
        }
    }
    let quantity_milli = to_milli("quantity", n.quantity)?;
    if quantity_milli <= 0 {
        return Err(Error::invalid("quantity", "must be greater than zero"));
    }
    if n.title.trim().is_empty() || n.title.chars().count() > 200 {
        return Err(Error::invalid("title", "must be 1-200 characters"));
    }
    if n.idempotency_key.is_empty() || n.idempotency_key.len() > 200 {
        return Err(Error::invalid(
            "idempotency_key",
            "must be 1-200 characters",
        ));
    }
    check_text("issuer", &n.issuer, 200)?;
    check_text("reference", &n.reference, 200)?;
    check_text("evidence", &n.evidence, 2000)?;
    let occurred_on = parse_date("occurred_on", &n.occurred_on)?;
    let site = sites::resolve(&k.db, &n.source_site)
        .await
        .map_err(|_| Error::invalid("source_site", format!("no site {:?}", n.source_site)))?;
    actor.require_admin(&site.path, "recording a learning outcome for this site")?;
    let req = Request {
        account_person: n.person_id,
        kind: n.kind,
        title: n.title.trim().to_string(),
        quantity_milli,
        unit: unit.to_string(),
        occurred_on,
        source_site_id: Some(site.id),
        issuer: n.issuer,
        reference: n.reference,
        evidence: n.evidence,
        rule: n.rule,
        idempotency_key: n.idempotency_key,
        reverses: None,
        credits: None,
        standard: None,
    };
    Ok((req, site.path))
}

/// Reverse an entry (the only correction there is).
pub async fn reverse(
    k: &Kernel,
    actor: &Actor,
    entry_id: i64,
    reason: &str,
    idempotency_key: &str,
) -> Result<(Entry, Recorded)> {
    if reason.trim().is_empty() || reason.chars().count() > 500 {
        return Err(Error::invalid("reason", "must be 1-500 characters"));
    }
    if idempotency_key.is_empty() || idempotency_key.len() > 200 {
        return Err(Error::invalid(
            "idempotency_key",
            "must be 1-200 characters",
        ));
    }
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM ledger_entries WHERE id = $1"
    ))
    .bind(entry_id)
    .fetch_optional(k.db.reader())
    .await?;
    let original = row
        .map(|r| stored(&r))
        .transpose()?
        .ok_or_else(|| Error::NotFound(format!("ledger entry {entry_id}")))?;
    if original.reverses_entry_id.is_some() {
        return Err(Error::invalid(
            "entry",
            "a reversal cannot itself be reversed",
        ));
    }
    let site = match original.source_site_id {
        Some(id) => sites::fetch(k.db.reader(), id).await?,
        None => None,
    };
    let path = site
        .as_ref()
        .map(|s| s.path.clone())
        .unwrap_or_else(|| "/".into());
    actor.require_admin(&path, "reversing a ledger entry")?;
    let (person_id,): (i64,) = sqlx::query_as("SELECT person_id FROM accounts WHERE id = $1")
        .bind(original.account_id)
        .fetch_one(k.db.reader())
        .await?;
    let req = Request {
        account_person: person_id,
        kind: original.kind.clone(),
        title: format!("Reversal of entry {}: {}", original.id, reason.trim()),
        quantity_milli: -original.quantity_milli,
        unit: original.unit.clone(),
        occurred_on: sites::today(),
        source_site_id: original.source_site_id,
        issuer: original.issuer.clone(),
        reference: original.reference.clone(),
        evidence: None,
        rule: None,
        idempotency_key: idempotency_key.to_string(),
        reverses: Some(original.id),
        credits: Some(-original.credits_milli),
        standard: None,
    };
    append(
        k,
        actor,
        "kernel",
        req,
        site.as_ref().map(|s| s.path.as_str()),
    )
    .await
}

/// Reverse, inside the caller's transaction `tx` (a plugin call's), the
/// entry that `origin` recorded under `idempotency_key`: only an origin's
/// own entries, only with a reason, once (a second call finds the first
/// reversal and writes nothing).
pub async fn reverse_in(
    tx: &mut Tx,
    actor: &Actor,
    origin: &str,
    idempotency_key: &str,
    reason: &str,
) -> Result<(Entry, Recorded)> {
    if reason.trim().is_empty() || reason.chars().count() > 500 {
        return Err(Error::invalid("reason", "must be 1-500 characters"));
    }
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM ledger_entries WHERE origin = $1 AND idempotency_key = $2"
    ))
    .bind(origin)
    .bind(idempotency_key)
    .fetch_optional(&mut **tx)
    .await?;
    let original = row.map(|r| stored(&r)).transpose()?.ok_or_else(|| {
        Error::NotFound(format!(
            "no ledger entry recorded by {origin} under {idempotency_key:?}"
        ))
    })?;
    if original.reverses_entry_id.is_some() {
        return Err(Error::invalid(
            "entry",
            "a reversal cannot itself be reversed",
        ));
    }
    let earlier = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM ledger_entries WHERE reverses_entry_id = $1"
    ))
    .bind(original.id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(r) = earlier {
        return Ok((stored(&r)?.public(), Recorded::Replayed));
    }
    let (person_id, site_path): (i64, Option<String>) = sqlx::query_as(
        "SELECT a.person_id, (SELECT path FROM sites WHERE id = $2) FROM accounts a WHERE a.id = $1",
    )
    .bind(original.account_id)
    .bind(original.source_site_id)
    .fetch_one(&mut **tx)
    .await?;
    let req = Request {
        account_person: person_id,
        kind: original.kind.clone(),
        title: format!("Reversal of entry {}: {}", original.id, reason.trim()),
        quantity_milli: -original.quantity_milli,
        unit: original.unit.clone(),
        occurred_on: sites::today(),
        source_site_id: original.source_site_id,
        issuer: original.issuer.clone(),
        reference: original.reference.clone(),
        evidence: None,
        rule: None,
        idempotency_key: format!("{idempotency_key}/reversal"),
        reverses: Some(original.id),
        credits: Some(-original.credits_milli),
        standard: None,
    };
    let content_hash = req.content_hash();
    match append_in(tx, actor, origin, &req, &content_hash, site_path.as_deref()).await {
        Ok(v) => Ok(v),
        Err(AppendError::KeyTaken) => Err(Error::Internal(anyhow::anyhow!(
            "write conflict: the reversal of {idempotency_key:?} was taken by a concurrent call"
        ))),
        Err(AppendError::Other(e)) => Err(e),
    }
}

/// Append `req`, resolving a lost race on its idempotency key.
/// `site_path` is the source site's path, for the audit record.
async fn append(
    k: &Kernel,
    actor: &Actor,
    origin: &str,
    req: Request,
    site_path: Option<&str>,
) -> Result<(Entry, Recorded)> {
    let content_hash = req.content_hash();
    match append_once(k, actor, origin, &req, &content_hash, site_path).await {
        // Lost a race on the idempotency key (another account or another
        // node got there first): the winner's entry decides.
        Err(AppendError::KeyTaken) => {
            match existing(
                Some(&k.db),
                origin,
                &req.idempotency_key,
                &content_hash,
                None,
            )
            .await?
            {
                Some(found) => Ok((found, Recorded::Replayed)),
                None => Err(Error::Internal(anyhow::anyhow!("idempotency key vanished"))),
            }
        }
        Err(AppendError::Other(e)) => Err(e),
        Ok(v) => Ok(v),
    }
}

pub(super) enum AppendError {
    KeyTaken,
    Other(Error),
}

impl<E: Into<Error>> From<E> for AppendError {
    fn from(e: E) -> Self {
        AppendError::Other(e.into())
    }
}

pub(super) async fn existing(
    db: Option<&Db>,
    origin: &str,
    key: &str,
    content_hash: &[u8],
    tx: Option<&mut Tx>,
) -> Result<Option<Entry>> {
    let sql =
        format!("SELECT {COLUMNS} FROM ledger_entries WHERE origin = $1 AND idempotency_key = $2");
    let q = sqlx::query(&sql).bind(origin).bind(key);
    let row = match (tx, db) {
        (Some(tx), _) => q.fetch_optional(&mut **tx).await?,
        (None, Some(db)) => q.fetch_optional(db.reader()).await?,
        (None, None) => None,
    };
    match row.map(|r| stored(&r)).transpose()? {
        Some(s) if s.content_hash == content_hash => Ok(Some(s.public())),
        Some(_) => Err(Error::conflict(
            "idempotency_key",
            format!("idempotency key {key:?} was already used for a different outcome"),
        )),
        None => Ok(None),
    }
}

async fn append_once(
    k: &Kernel,
    actor: &Actor,
    origin: &str,
    req: &Request,
    content_hash: &[u8],
    site_path: Option<&str>,
) -> Result<(Entry, Recorded), AppendError> {
    let mut tx = k.db.begin().await?;
    let done = append_in(&mut tx, actor, origin, req, content_hash, site_path).await?;
    tx.commit().await?;
    Ok(done)
}

/// Append in `tx` (which the caller commits).
pub(super) async fn append_in(
    tx: &mut Tx,
    actor: &Actor,
    origin: &str,
    req: &Request,
    content_hash: &[u8],
    site_path: Option<&str>,
) -> Result<(Entry, Recorded), AppendError> {
    // Lock the account row: orders concurrent appends on PostgreSQL (the
    // no-op UPDATE takes the row lock); SQLite has one writer anyway.
    let row: Option<(i64, String, i64, Vec<u8>)> = sqlx::query_as(
        "UPDATE accounts SET entry_count = entry_count WHERE person_id = $1 \
         RETURNING id, status, entry_count, head_hash",
    )
    .bind(req.account_person)
    .fetch_optional(&mut **tx)
    .await?;
    let (account_id, status, count, head) = row.ok_or_else(|| {
        Error::invalid(
            "person_id",
            format!("person {} has no account", req.account_person),
        )
    })?;
    if let Some(found) = existing(
        None,
        origin,
        &req.idempotency_key,
        content_hash,
        Some(&mut *tx),
    )
    .await?
    {
        return Ok((found, Recorded::Replayed));
    }
    if status == "frozen" {
        return Err(Error::Conflict {
            field: Some("person_id".into()),
            message: "the account is frozen".into(),
        }
        .into());
    }
    let (credits_milli, rule_code, rule_version) = match (req.credits, &req.rule) {
        (Some(c), _) => match &req.standard {
            Some((code, version)) => (c, Some(code.clone()), Some(*version)),
            None => (c, None, None),
        },
        (None, Some(code)) => {
            let rule = rules::effective(tx, code, &req.occurred_on).await?;
            if rule.outcome_kind != req.kind {
                return Err(Error::invalid(
                    "rule",
                    format!(
                        "rule {code} applies to {}, not {}",
                        rule.outcome_kind, req.kind
                    ),
                )
                .into());
            }
            (
                rule.credits_for(req.quantity_milli),
                Some(rule.code),
                Some(rule.version),
            )
        }
        (None, None) if req.kind == "academic_credit" => (req.quantity_milli, None, None),
        (None, None) => (0, None, None),
    };
    if let Some(original) = req.reverses {
        super::conversion::refuse_if_consumed(tx, original).await?;
    }
    let mut entry = Stored {
        id: 0,
        account_id,
        seq: count + 1,
        kind: req.kind.clone(),
        title: req.title.clone(),
        quantity_milli: req.quantity_milli,
        unit: req.unit.clone(),
        credits_milli,
        rule_code,
        rule_version,
        occurred_on: req.occurred_on.clone(),
        source_site_id: req.source_site_id,
        issuer: req.issuer.clone(),
        origin: origin.to_string(),
        reference: req.reference.clone(),
        evidence: req.evidence.clone(),
        idempotency_key: req.idempotency_key.clone(),
        content_hash: content_hash.to_vec(),
        reverses_entry_id: req.reverses,
        recorded_at: now_micros(),
        prev_hash: head.clone(),
        entry_hash: Vec::new(),
    };
    entry.entry_hash = entry.chain_hash(&head);
    let inserted = insert(tx, &entry, actor.person_id()).await;
    entry.id = match inserted {
        Ok(id) => id,
        Err(e) if is_unique_violation(&e) => {
            let msg = e.to_string();
            if msg.contains("reverses_entry_id") || msg.contains("ledger_one_reversal") {
                return Err(Error::Conflict {
                    field: Some("entry".into()),
                    message: "this entry was already reversed".into(),
                }
                .into());
            }
            return Err(AppendError::KeyTaken);
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(original) = req.reverses {
        super::conversion::release(tx, original, entry.id).await?;
    }
    sqlx::query("UPDATE accounts SET entry_count = $1, head_hash = $2 WHERE id = $3")
        .bind(entry.seq)
        .bind(entry.entry_hash.clone())
        .bind(account_id)
        .execute(&mut **tx)
        .await?;
    let public = entry.public();
    audit::record(
        tx,
        actor,
        Change {
            action: if req.reverses.is_some() {
                "ledger.reverse"
            } else {
                "ledger.record"
            },
            site: req.source_site_id.zip(site_path),
            object_type: "ledger_entry",
            object_id: entry.id.to_string(),
            before: None,
            after: Some(serde_json::to_value(&public).unwrap_or_default()),
        },
    )
    .await?;
    Ok((public, Recorded::Created))
}

async fn insert(tx: &mut Tx, e: &Stored, recorded_by: Option<i64>) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(
        "INSERT INTO ledger_entries (account_id, seq, kind, title, quantity_milli, unit, credits_milli, \
         rule_code, rule_version, occurred_on, source_site_id, issuer, origin, reference, evidence, \
         idempotency_key, content_hash, reverses_entry_id, recorded_by, recorded_at, prev_hash, entry_hash) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22) RETURNING id",
    )
    .bind(e.account_id)
    .bind(e.seq)
    .bind(&e.kind)
    .bind(&e.title)
    .bind(e.quantity_milli)
    .bind(&e.unit)
    .bind(e.credits_milli)
    .bind(&e.rule_code)
    .bind(e.rule_version)
    .bind(&e.occurred_on)
    .bind(e.source_site_id)
    .bind(&e.issuer)
    .bind(&e.origin)
    .bind(&e.reference)
    .bind(&e.evidence)
    .bind(&e.idempotency_key)
    .bind(e.content_hash.clone())
    .bind(e.reverses_entry_id)
    .bind(recorded_by)
    .bind(e.recorded_at)
    .bind(e.prev_hash.clone())
    .bind(e.entry_hash.clone())
    .fetch_one(&mut **tx)
    .await?;
    col(&row, "id")
}

/// Totals of one kind and unit.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Total {
    /// Outcome kind.
    pub kind: String,
    /// Unit.
    pub unit: String,
    /// Net quantity (reversals subtracted).
    pub quantity: f64,
    /// Net credits.
    pub credits: f64,
    /// Number of entries.
    pub entries: i64,
}

/// An account statement: totals by kind and unit, and a page of entries.
#[derive(Debug, Clone, Serialize)]
pub struct Statement {
    /// The account.
    pub account: super::Account,
    /// Totals by kind and unit.
    pub totals: Vec<Total>,
    /// Net credits over all kinds.
    pub total_credits: f64,
    /// Entries after the cursor, oldest first.
    pub entries: Vec<Entry>,
}

/// Build the statement of a person's account.
pub async fn statement(
    k: &Kernel,
    actor: &Actor,
    person_id: i64,
    after_seq: i64,
    limit: i64,
) -> Result<Statement> {
    let (account, _) = super::get(k, actor, person_id).await?;
    let mut tx = k.db.begin_read().await?;
    let totals: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT kind, unit, CAST(SUM(quantity_milli) AS BIGINT), CAST(SUM(credits_milli) AS BIGINT), \
         CAST(COUNT(*) AS BIGINT) FROM ledger_entries WHERE account_id = $1 GROUP BY kind, unit ORDER BY kind, unit",
    )
    .bind(account.id)
    .fetch_all(&mut *tx)
    .await?;
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM ledger_entries WHERE account_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    ))
    .bind(account.id)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let entries = rows
        .iter()
        .map(|r| stored(r).map(|s| s.public()))
        .collect::<Result<Vec<_>, _>>()?;
    let total_credits = from_milli(totals.iter().map(|t| t.3).sum());
    Ok(Statement {
        account,
        totals: totals
            .into_iter()
            .map(|(kind, unit, q, c, n)| Total {
                kind,
                unit,
                quantity: from_milli(q),
                credits: from_milli(c),
                entries: n,
            })
            .collect(),
        total_credits,
        entries,
    })
}

/// One pre-validated outcome for [`bulk_append`].
#[derive(Debug, Clone)]
pub struct BulkEntry {
    /// The account to append to.
    pub account_id: i64,
    /// One of [`KINDS`].
    pub kind: &'static str,
    /// Title.
    pub title: String,
    /// Quantity in thousandths of the kind's unit.
    pub quantity_milli: i64,
    /// Credits in thousandths.
    pub credits_milli: i64,
    /// Idempotency key, unique for `origin`.
    pub key: String,
}

/// Append pre-validated outcomes in bulk (the scale benchmark's loader):
/// the same chain and hashes as [`record`], in one transaction, over a
/// direct connection to the SQLite file. Not offered on PostgreSQL.
pub async fn bulk_append(db: &Db, origin: &str, site_id: i64, items: Vec<BulkEntry>) -> Result<()> {
    let Some(path) = db.sqlite_file().map(str::to_string) else {
        return Err(Error::Internal(anyhow::anyhow!(
            "bulk loading is offered on a SQLite file only"
        )));
    };
    let origin = origin.to_string();
    tokio::task::spawn_blocking(move || bulk_append_sqlite(&path, &origin, site_id, &items))
        .await
        .map_err(|e| Error::Internal(e.into()))?
        .map_err(|e| Error::Internal(e.into()))
}

fn bulk_append_sqlite(
    path: &str,
    origin: &str,
    site_id: i64,
    items: &[BulkEntry],
) -> rusqlite::Result<()> {
    let mut conn = crate::storage::open_native(path)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut tip_of = tx.prepare("SELECT entry_count, head_hash FROM accounts WHERE id = ?1")?;
        let mut insert = tx.prepare(
            "INSERT INTO ledger_entries (account_id, seq, kind, title, quantity_milli, unit, credits_milli, \
             occurred_on, source_site_id, origin, idempotency_key, content_hash, recorded_at, prev_hash, entry_hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?;
        let mut tips: std::collections::HashMap<i64, (i64, [u8; 32])> =
            std::collections::HashMap::new();
        let now = now_micros();
        for it in items {
            let tip = match tips.entry(it.account_id) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let (count, head): (i64, Vec<u8>) =
                        tip_of.query_row([it.account_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
                    v.insert((count, head.try_into().unwrap_or([0xff; 32])))
                }
            };
            let content_hash: [u8; 32] = Sha256::digest(it.key.as_bytes()).into();
            let h = Hashed {
                account_id: it.account_id,
                seq: tip.0 + 1,
                kind: it.kind,
                title: &it.title,
                quantity_milli: it.quantity_milli,
                unit: unit_for(it.kind),
                credits_milli: it.credits_milli,
                rule_code: None,
                rule_version: None,
                occurred_on: "2026-01-15",
                source_site_id: Some(site_id),
                issuer: None,
                origin,
                reference: None,
                evidence: None,
                idempotency_key: &it.key,
                content_hash: &content_hash,
                reverses_entry_id: None,
                recorded_at: now,
            };
            let hash = h.chain_hash(&tip.1);
            insert.execute(rusqlite::params![
                h.account_id,
                h.seq,
                h.kind,
                h.title,
                h.quantity_milli,
                h.unit,
                h.credits_milli,
                h.occurred_on,
                site_id,
                origin,
                h.idempotency_key,
                &content_hash[..],
                now,
                &tip.1[..],
                &hash[..],
            ])?;
            *tip = (h.seq, hash);
        }
        let mut update =
            tx.prepare("UPDATE accounts SET entry_count = ?1, head_hash = ?2 WHERE id = ?3")?;
        for (account_id, (count, head)) in tips {
            update.execute(rusqlite::params![count, &head[..], account_id])?;
        }
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::Hashed;

    /// The chain hash is a stored, long-lived format: this pins it to a value
    /// computed independently (SHA-256 over the documented byte layout), so a
    /// refactor cannot silently break every existing chain.
    #[test]
    fn chain_hash_format_is_pinned() {
        let content = [1u8; 32];
        let h = Hashed {
            account_id: 12,
            seq: 3,
            kind: "skill_certificate",
            title: "电工证",
            quantity_milli: 1000,
            unit: "certificate",
            credits_milli: 4500,
            rule_code: Some("SKILL-ELEC"),
            rule_version: Some(2),
            occurred_on: "2026-03-01",
            source_site_id: Some(5),
            issuer: Some("市人社局"),
            origin: "kernel",
            reference: None,
            evidence: None,
            idempotency_key: "k-1",
            content_hash: &content,
            reverses_entry_id: None,
            recorded_at: 1_767_225_600_000_000,
        };
        assert_eq!(
            hex::encode(h.chain_hash(&[7u8; 32])),
            "15fbff8d91ef7e89b1bf38be720a134a445a8148a2810915e7e11c71525d638f"
        );
    }
}
