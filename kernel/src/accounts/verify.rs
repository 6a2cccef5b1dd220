//! `ledger verify`: walk every account's hash chain and name the first broken
//! entry of each broken account.
//!
//! Two readers share one result shape. On a SQLite file the entries are
//! scanned in storage order (rowid ranges, one per worker thread) over direct
//! connections, hashing straight from the row; on PostgreSQL one snapshot is
//! streamed in id order through the pool.
//!
//! **Consistency under concurrent writes (SQLite):** the account tips and the
//! highest entry id are read in one snapshot first; only entries up to that id
//! are checked. Entry ids grow with every append (one writer, append-only
//! table), so exactly the entries of that snapshot are walked.

use super::ledger::{stored, COLUMNS};
use crate::error::{Error, Result};
use crate::storage::Db;
use serde::Serialize;
use std::collections::HashMap;

/// The first break found in one account's chain.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Break {
    /// Account.
    pub account_id: i64,
    /// The first entry that does not verify (none if the tip itself is wrong).
    pub entry_id: Option<i64>,
    /// Its position.
    pub seq: i64,
    /// What is wrong.
    pub reason: String,
}

/// The result of verifying every chain.
#[derive(Debug, Clone, Serialize, Default)]
pub struct VerifyReport {
    /// Accounts checked.
    pub accounts: u64,
    /// Entries checked.
    pub entries: u64,
    /// The first break of each broken account, by account id.
    pub broken: Vec<Break>,
}

/// Verify every account's chain (on a SQLite file, over `workers` threads).
pub async fn verify(db: &Db, workers: usize) -> Result<VerifyReport> {
    let workers = workers.max(1);
    if let Some(path) = db.sqlite_file() {
        let path = path.to_string();
        return tokio::task::spawn_blocking(move || sqlite::verify(&path, workers))
            .await
            .map_err(|e| Error::Internal(e.into()))?
            .map_err(|e| Error::Internal(e.into()));
    }
    verify_pooled(db).await
}

/// Per-account result of one worker's id range.
struct Part {
    first_id: i64,
    first_seq: i64,
    first_prev: [u8; 32],
    last_seq: i64,
    last_hash: [u8; 32],
    /// The first break inside this range (the link into the range is checked on merge).
    broken: Option<Break>,
}

/// Join the ranges' parts in id order and check each account's tip.
fn merge(heads: &HashMap<i64, (i64, [u8; 32])>, parts: Vec<HashMap<i64, Part>>) -> VerifyReport {
    let mut report = VerifyReport {
        accounts: heads.len() as u64,
        ..VerifyReport::default()
    };
    // Running (last seq, last hash) or None once broken.
    let mut tips: HashMap<i64, Option<(i64, [u8; 32])>> = HashMap::with_capacity(heads.len());
    for part in parts {
        for (acc, p) in part {
            let tip = tips.entry(acc).or_insert(Some((0, [0u8; 32])));
            let Some((seq, hash)) = *tip else { continue };
            let link = if p.first_seq != seq + 1 {
                Some(missing_or_inserted(seq + 1, p.first_seq))
            } else if p.first_prev != hash {
                Some(PREV_MISMATCH.to_string())
            } else {
                None
            };
            if let Some(reason) = link {
                report.broken.push(Break {
                    account_id: acc,
                    entry_id: Some(p.first_id),
                    seq: p.first_seq,
                    reason,
                });
                *tip = None;
            } else if let Some(b) = p.broken {
                report.broken.push(b);
                *tip = None;
            } else {
                *tip = Some((p.last_seq, p.last_hash));
            }
        }
    }
    for (acc, tip) in &tips {
        if let Some((seq, hash)) = tip {
            check_tip(*acc, *seq, hash, heads.get(acc), &mut report);
        }
    }
    for (acc, head) in heads {
        if !tips.contains_key(acc) {
            check_tip(*acc, 0, &[0u8; 32], Some(head), &mut report);
        }
    }
    report.broken.sort_by_key(|b| b.account_id);
    report
}

const PREV_MISMATCH: &str = "prev_hash does not match the previous entry";
const ALTERED: &str = "entry content does not match its hash (the entry was altered)";

fn missing_or_inserted(expected: i64, found: i64) -> String {
    format!("expected seq {expected} but found {found} (an entry is missing or was inserted)")
}

fn check_tip(
    acc: i64,
    last_seq: i64,
    hash: &[u8],
    head: Option<&(i64, [u8; 32])>,
    report: &mut VerifyReport,
) {
    match head {
        Some((count, head)) if *count == last_seq && head.as_slice() == hash => {}
        Some((count, _)) => report.broken.push(Break {
            account_id: acc,
            entry_id: None,
            seq: last_seq + 1,
            reason: format!("the account records {count} entries ending in a different hash; entries after seq {last_seq} are missing"),
        }),
        None => report.broken.push(Break { account_id: acc, entry_id: None, seq: 0, reason: "entries belong to no account".into() }),
    }
}

/// Fold one entry into its account's part of a range.
#[allow(clippy::too_many_arguments)]
fn step(
    parts: &mut HashMap<i64, Part>,
    id: i64,
    account_id: i64,
    seq: i64,
    prev: [u8; 32],
    hash: [u8; 32],
    content_ok: bool,
) {
    let brk = |seq: i64, reason: String| Break {
        account_id,
        entry_id: Some(id),
        seq,
        reason,
    };
    match parts.get_mut(&account_id) {
        None => {
            parts.insert(
                account_id,
                Part {
                    first_id: id,
                    first_seq: seq,
                    first_prev: prev,
                    last_seq: seq,
                    last_hash: hash,
                    broken: (!content_ok).then(|| brk(seq, ALTERED.into())),
                },
            );
        }
        Some(p) if p.broken.is_some() => {}
        Some(p) => {
            if seq != p.last_seq + 1 {
                p.broken = Some(brk(seq, missing_or_inserted(p.last_seq + 1, seq)));
            } else if prev != p.last_hash {
                p.broken = Some(brk(seq, PREV_MISMATCH.into()));
            } else if !content_ok {
                p.broken = Some(brk(seq, ALTERED.into()));
            } else {
                p.last_seq = seq;
                p.last_hash = hash;
            }
        }
    }
}

fn to32(v: &[u8]) -> [u8; 32] {
    // A stored hash of the wrong length can never match a computed one.
    v.try_into().unwrap_or([0xff; 32])
}

/// The pooled reader (PostgreSQL, and SQLite in memory): one snapshot,
/// entries in id order. Appends lock their account first and take their id
/// after, so an account's entries are in id order on both backends.
async fn verify_pooled(db: &Db) -> Result<VerifyReport> {
    use futures_util::TryStreamExt;
    let mut tx = db.begin_read().await?;
    let mut heads = HashMap::new();
    {
        let mut rows = sqlx::query_as::<_, (i64, i64, Vec<u8>)>(
            "SELECT id, entry_count, head_hash FROM accounts",
        )
        .fetch(&mut *tx);
        while let Some((id, count, head)) = rows.try_next().await? {
            heads.insert(id, (count, to32(&head)));
        }
    }
    let mut part = HashMap::new();
    let mut entries = 0;
    {
        let sql = format!("SELECT {COLUMNS} FROM ledger_entries ORDER BY id");
        let mut rows = sqlx::query(&sql).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            let e = stored(&row)?;
            entries += 1;
            let ok = e.chain_hash(&e.prev_hash) == e.entry_hash;
            step(
                &mut part,
                e.id,
                e.account_id,
                e.seq,
                to32(&e.prev_hash),
                to32(&e.entry_hash),
                ok,
            );
        }
    }
    tx.commit().await?;
    let mut report = merge(&heads, vec![part]);
    report.entries = entries;
    Ok(report)
}

/// The direct reader for a SQLite file: rowid ranges scanned in storage
/// order on parallel threads, each over its own connection.
mod sqlite {
    use super::{merge, step, to32, Part, VerifyReport};
    use crate::accounts::ledger::{Hashed, COLUMNS};
    use crate::storage::open_native;
    use rusqlite::types::ValueRef;
    use std::collections::HashMap;

    type Res<T> = std::result::Result<T, rusqlite::Error>;

    pub fn verify(path: &str, workers: usize) -> Res<VerifyReport> {
        let conn = open_native(path)?;
        let tx = conn.unchecked_transaction()?;
        let mut heads = HashMap::new();
        {
            let mut st = tx.prepare("SELECT id, entry_count, head_hash FROM accounts")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                heads.insert(
                    r.get::<_, i64>(0)?,
                    (r.get::<_, i64>(1)?, to32(blob(r.get_ref(2)?)?)),
                );
            }
        }
        let max_id: i64 =
            tx.query_row("SELECT COALESCE(MAX(id), 0) FROM ledger_entries", [], |r| {
                r.get(0)
            })?;
        drop(tx);
        let span = max_id / workers as i64 + 1;
        let ranges: Vec<(i64, i64)> = (0..workers as i64)
            .map(|w| (1 + w * span, (1 + (w + 1) * span).min(max_id + 1)))
            .filter(|(from, to)| from < to)
            .collect();
        let scanned: Vec<Res<(HashMap<i64, Part>, u64)>> = std::thread::scope(|s| {
            let handles: Vec<_> = ranges
                .iter()
                .map(|&(from, to)| s.spawn(move || scan(path, from, to)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a verify worker panicked"))
                .collect()
        });
        let mut parts = Vec::with_capacity(scanned.len());
        let mut entries = 0;
        for r in scanned {
            let (part, n) = r?;
            parts.push(part);
            entries += n;
        }
        let mut report = merge(&heads, parts);
        report.entries = entries;
        Ok(report)
    }

    fn scan(path: &str, from: i64, to: i64) -> Res<(HashMap<i64, Part>, u64)> {
        let conn = open_native(path)?;
        let mut st = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM ledger_entries WHERE id >= ?1 AND id < ?2 ORDER BY id"
        ))?;
        let mut rows = st.query([from, to])?;
        let mut parts = HashMap::new();
        let mut n = 0u64;
        while let Some(r) = rows.next()? {
            n += 1;
            let int = |i: usize| -> Res<i64> { r.get::<_, i64>(i) };
            let opt_int = |i: usize| -> Res<Option<i64>> { r.get::<_, Option<i64>>(i) };
            let h = Hashed {
                account_id: int(1)?,
                seq: int(2)?,
                kind: text(r.get_ref(3)?)?,
                title: text(r.get_ref(4)?)?,
                quantity_milli: int(5)?,
                unit: text(r.get_ref(6)?)?,
                credits_milli: int(7)?,
                rule_code: opt_text(r.get_ref(8)?)?,
                rule_version: opt_int(9)?,
                occurred_on: text(r.get_ref(10)?)?,
                source_site_id: opt_int(11)?,
                issuer: opt_text(r.get_ref(12)?)?,
                origin: text(r.get_ref(13)?)?,
                reference: opt_text(r.get_ref(14)?)?,
                evidence: opt_text(r.get_ref(15)?)?,
                idempotency_key: text(r.get_ref(16)?)?,
                content_hash: blob(r.get_ref(17)?)?,
                reverses_entry_id: opt_int(18)?,
                recorded_at: int(19)?,
            };
            let prev = to32(blob(r.get_ref(20)?)?);
            let stored = to32(blob(r.get_ref(21)?)?);
            let ok = h.chain_hash(&prev) == stored;
            step(&mut parts, int(0)?, h.account_id, h.seq, prev, stored, ok);
        }
        Ok((parts, n))
    }

    fn bad(e: rusqlite::types::FromSqlError) -> rusqlite::Error {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Null, Box::new(e))
    }

    fn text(v: ValueRef<'_>) -> Res<&str> {
        v.as_str().map_err(bad)
    }

    fn opt_text(v: ValueRef<'_>) -> Res<Option<&str>> {
        v.as_str_or_null().map_err(bad)
    }

    fn blob(v: ValueRef<'_>) -> Res<&[u8]> {
        v.as_blob().map_err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (id, account, seq, prev, hash, content ok).
    type Entry = (i64, i64, i64, [u8; 32], [u8; 32], bool);

    /// Two interleaved chains.
    fn chains() -> Vec<Entry> {
        let h = |acc: i64, seq: i64| {
            if seq == 0 {
                [0u8; 32]
            } else {
                [(acc * 16 + seq) as u8; 32]
            }
        };
        let order = [
            (1, 1),
            (2, 1),
            (1, 2),
            (1, 3),
            (2, 2),
            (1, 4),
            (2, 3),
            (1, 5),
            (1, 6),
            (2, 4),
        ];
        order
            .iter()
            .enumerate()
            .map(|(i, &(acc, seq))| (i as i64 + 1, acc, seq, h(acc, seq - 1), h(acc, seq), true))
            .collect()
    }

    fn heads(rows: &[Entry]) -> HashMap<i64, (i64, [u8; 32])> {
        let mut heads = HashMap::new();
        for &(_, acc, seq, _, hash, _) in rows {
            heads.insert(acc, (seq, hash));
        }
        heads
    }

    /// Verify `rows` split into ranges at `cut` (every split is tried).
    fn run_split(rows: &[Entry], heads: &HashMap<i64, (i64, [u8; 32])>) -> Vec<Vec<Break>> {
        (0..=rows.len())
            .map(|cut| {
                let parts = [&rows[..cut], &rows[cut..]]
                    .iter()
                    .map(|range| {
                        let mut part = HashMap::new();
                        for &(id, acc, seq, prev, hash, ok) in *range {
                            step(&mut part, id, acc, seq, prev, hash, ok);
                        }
                        part
                    })
                    .collect();
                merge(heads, parts).broken
            })
            .collect()
    }

    #[test]
    fn intact_chains_verify_however_they_are_split() {
        let rows = chains();
        for broken in run_split(&rows, &heads(&rows)) {
            assert!(broken.is_empty(), "{broken:?}");
        }
    }

    #[test]
    fn the_first_break_is_named_however_the_chain_is_split() {
        let all = chains();
        let heads = heads(&all);
        // Account 1 loses seq 2 and has seq 5 altered; account 2 loses its last entry.
        let rows: Vec<_> = all
            .into_iter()
            .filter(|r| !((r.1, r.2) == (1, 2) || (r.1, r.2) == (2, 4)))
            .map(|mut r| {
                if (r.1, r.2) == (1, 5) {
                    r.5 = false;
                }
                r
            })
            .collect();
        for broken in run_split(&rows, &heads) {
            assert_eq!(broken.len(), 2, "{broken:?}");
            assert_eq!(
                (broken[0].account_id, broken[0].entry_id, broken[0].seq),
                (1, Some(4), 3)
            );
            assert_eq!(
                broken[0].reason,
                "expected seq 2 but found 3 (an entry is missing or was inserted)"
            );
            assert_eq!(
                (broken[1].account_id, broken[1].entry_id, broken[1].seq),
                (2, None, 4)
            );
        }
    }

    #[test]
    fn an_account_without_its_entries_is_broken() {
        let mut heads = HashMap::new();
        heads.insert(7, (2, [9u8; 32]));
        heads.insert(8, (0, [0u8; 32]));
        let report = merge(&heads, vec![HashMap::new()]);
        assert_eq!(report.accounts, 2);
        assert_eq!(report.broken.len(), 1);
        assert_eq!((report.broken[0].account_id, report.broken[0].seq), (7, 1));
    }
}
