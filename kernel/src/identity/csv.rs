//! CSV import of persons: `name,id_number,phone,home_site,birth_date,sex`.
//!
//! **Invariant:** all-or-nothing. Every row is validated and de-duplicated
//! within the file before the first write; the whole file is written in one
//! transaction, and an ID number the registry already holds fails its row and
//! rolls the transaction back, so the caller gets every bad row and nothing
//! is written. This is also the bulk path the benchmark measures.

use super::{check, Checked, NewPerson};
use crate::audit::{self, Change};
use crate::authz::Actor;
use crate::crypto::PiiKeys;
use crate::error::FieldError;
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::sites::csv::{read_rows, ImportError, RowError};
use crate::sites::{self, Site};
use crate::storage::{now_micros, Tx};
use std::collections::HashMap;

/// Rows per multi-row INSERT (11 columns each, well under both backends'
/// bind-parameter limits).
const BATCH: usize = 500;

/// Progress callback: (rows done, rows total).
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// A row with its personal data sealed (encrypted, keyed-hashed, masked).
struct Sealed {
    line: usize,
    name: String,
    id_hash: [u8; 32],
    id_cipher: Vec<u8>,
    id_masked: String,
    birth_date: String,
    sex: &'static str,
    phone_cipher: Option<Vec<u8>>,
    phone_masked: Option<String>,
    home_site_id: i64,
}

/// Import persons from CSV text; returns how many were created.
///
/// Stages: parse (serial), validate and seal (parallel over the cores: the
/// checksum, encryption and keyed hash are most of the CPU time), resolve
/// home sites and permissions, de-duplicate within the file, then write.
pub async fn import(
    k: &Kernel,
    actor: &Actor,
    input: &str,
    progress: Progress<'_>,
) -> Result<usize, ImportError> {
    let (records, mut errors) = parse(input)?;
    let pii = k.pii.clone();
    let validated = tokio::task::spawn_blocking(move || validate_all(&pii, records))
        .await
        .map_err(|e| Error::Internal(e.into()))?;
    let mut homes: HashMap<String, Option<Site>> = HashMap::new();
    let mut seen: HashMap<[u8; 32], usize> = HashMap::with_capacity(validated.len());
    let mut ready = Vec::with_capacity(validated.len());
    for (line, home_code, result) in validated {
        let mut row = match result {
            Ok(row) => row,
            Err(fields) => {
                errors.extend(fields.into_iter().map(|f| RowError {
                    line,
                    field: f.field,
                    message: f.message,
                }));
                continue;
            }
        };
        if !homes.contains_key(&home_code) {
            let site = sites::fetch_by_code(k.db.reader(), &home_code).await?;
            homes.insert(home_code.clone(), site);
        }
        let refuse = match homes.get(&home_code).and_then(Option::as_ref) {
            Some(h) if h.status != "active" => Some(format!("site {home_code} is closed")),
            Some(h) if !actor.is_admin_over(&h.path) => {
                Some(format!("you may not register persons at {}", h.code))
            }
            Some(h) => {
                row.home_site_id = h.id;
                None
            }
            None => Some(format!("no site has code {home_code:?}")),
        };
        if let Some(message) = refuse {
            errors.push(RowError {
                line,
                field: "home_site".into(),
                message,
            });
            continue;
        }
        if let Some(prev) = seen.insert(row.id_hash, line) {
            errors.push(RowError {
                line,
                field: "id_number".into(),
                message: format!("ID number {} already appears on line {prev}", row.id_masked),
            });
            continue;
        }
        ready.push(row);
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        return Err(ImportError::Rows(errors));
    }
    insert(k, actor, ready, progress).await
}

/// Records by line, and the rows that could not be read.
type Parsed = (Vec<(usize, NewPerson)>, Vec<RowError>);

fn parse(input: &str) -> Result<Parsed, ImportError> {
    let mut records = Vec::new();
    let unreadable = read_rows(input, &["name", "id_number", "home_site"], |line, get| {
        records.push((
            line,
            NewPerson {
                name: get("name").unwrap_or_default(),
                id_number: get("id_number").unwrap_or_default(),
                birth_date: get("birth_date"),
                sex: get("sex"),
                phone: get("phone"),
                home_site: get("home_site").unwrap_or_default(),
                login: None,
                password: None,
            },
        ));
    })
    .map_err(ImportError::Rows)?;
    Ok((records, unreadable))
}

type Validated = (usize, String, std::result::Result<Sealed, Vec<FieldError>>);

/// Check and seal every record, spread over the machine's cores, in order.
fn validate_all(pii: &PiiKeys, records: Vec<(usize, NewPerson)>) -> Vec<Validated> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = records.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = records
            .chunks(per)
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|(line, n)| {
                            let sealed = check(n).map(|c| seal(pii, *line, &c));
                            (*line, n.home_site.clone(), sealed)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a validating thread panicked"))
            .collect()
    })
}

fn seal(pii: &PiiKeys, line: usize, c: &Checked) -> Sealed {
    Sealed {
        line,
        name: c.name.clone(),
        id_hash: pii
            .lookup_hash(c.id.expose())
            .try_into()
            .expect("HMAC-SHA256 is 32 bytes"),
        id_cipher: pii.encrypt(c.id.expose()),
        id_masked: c.id.masked(),
        birth_date: c.id.birth_date().format("%Y-%m-%d").to_string(),
        sex: c.id.sex().as_str(),
        phone_cipher: c.phone.as_ref().map(|p| pii.encrypt(p.expose())),
        phone_masked: c.phone.as_ref().map(|p| p.masked()),
        home_site_id: 0,
    }
}

/// Write validated rows, their accounts and one audit record in one
/// transaction; ID numbers already registered are reported per row and
/// nothing is written.
///
/// On a SQLite file the rows go through one prepared statement on a direct
/// connection, and the unique index finds registered ID numbers as it goes;
/// on PostgreSQL the registry is asked first, then multi-row inserts run on
/// the pool (the unique index still guards a race).
async fn insert(
    k: &Kernel,
    actor: &Actor,
    rows: Vec<Sealed>,
    progress: Progress<'_>,
) -> Result<usize, ImportError> {
    let total = rows.len();
    let now = now_micros();
    let Some(path) = k.db.sqlite_file().map(str::to_string) else {
        let registered = registered(k, &rows).await?;
        if !registered.is_empty() {
            return Err(ImportError::Rows(registered));
        }
        let mut tx = k.db.begin().await.map_err(Error::from)?;
        let first_id = insert_pooled(&mut tx, &rows, now, progress).await?;
        audit::record(&mut tx, actor, import_change(first_id, total)).await?;
        tx.commit().await.map_err(Error::from)?;
        progress(total, total);
        return Ok(total);
    };
    let actor = actor.clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = done.clone();
    let mut job =
        tokio::task::spawn_blocking(move || insert_sqlite(&path, &actor, &rows, now, &counter));
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    let registered = loop {
        tokio::select! {
            res = &mut job => {
                break res
                    .map_err(|e| Error::Internal(e.into()))?
                    .map_err(|e| Error::Internal(e.into()))?;
            }
            _ = tick.tick() => progress(done.load(std::sync::atomic::Ordering::Relaxed), total),
        }
    };
    if !registered.is_empty() {
        return Err(ImportError::Rows(registered));
    }
    progress(total, total);
    Ok(total)
}

fn already_registered(line: usize, masked: &str) -> RowError {
    RowError {
        line,
        field: "id_number".into(),
        message: format!("a person with ID number {masked} is already registered"),
    }
}

/// Rows whose ID number the registry already holds (pooled path).
async fn registered(k: &Kernel, rows: &[Sealed]) -> Result<Vec<RowError>> {
    let mut errors = Vec::new();
    for chunk in rows.chunks(BATCH) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id_hash FROM persons WHERE id_hash IN ({})",
            placeholders.join(",")
        );
        let mut q = sqlx::query_as::<_, (Vec<u8>,)>(&sql);
        for r in chunk {
            q = q.bind(r.id_hash.to_vec());
        }
        let found: std::collections::HashSet<Vec<u8>> = q
            .fetch_all(k.db.reader())
            .await?
            .into_iter()
            .map(|(h,)| h)
            .collect();
        errors.extend(
            chunk
                .iter()
                .filter(|r| found.contains(&r.id_hash[..]))
                .map(|r| already_registered(r.line, &r.id_masked)),
        );
    }
    Ok(errors)
}

fn import_change(first_id: i64, created: usize) -> Change<'static> {
    Change {
        action: "person.import",
        site: None,
        object_type: "person",
        object_id: format!("{first_id}.."),
        before: None,
        after: Some(serde_json::json!({ "created": created })),
    }
}

const INSERT_PERSON: &str =
    "INSERT INTO persons (name, id_hash, id_cipher, id_masked, birth_date, sex, \
     phone_cipher, phone_masked, home_site_id, created_at, updated_at) VALUES ";

/// Open an account for every person created after `max_before`.
const OPEN_ACCOUNTS: &str =
    "INSERT INTO accounts (person_id, status, opened_at, entry_count, head_hash) \
     SELECT p.id, 'open', $1, 0, $2 FROM persons p WHERE p.id > $3 \
     AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.person_id = p.id)";

const OPEN_ACCOUNT: &str =
    "INSERT INTO accounts (person_id, status, opened_at, entry_count, head_hash) \
     VALUES ($1, 'open', $2, 0, $3)";

const MAX_PERSON: &str = "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM persons";

/// The SQLite bulk path; returns the rows whose ID number is already
/// registered (then nothing is committed).
fn insert_sqlite(
    path: &str,
    actor: &Actor,
    rows: &[Sealed],
    now: i64,
    done: &std::sync::atomic::AtomicUsize,
) -> rusqlite::Result<Vec<RowError>> {
    let mut conn = crate::storage::open_native(path)?;
    // Room for the whole import's dirty pages, so SQLite does not spill them
    // to the WAL mid-transaction (memory is only taken as pages are used).
    conn.execute_batch("PRAGMA cache_size = -1048576")?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let max_before: i64 = tx.query_row(MAX_PERSON, [], |r| r.get(0))?;
    let mut registered = Vec::new();
    {
        let mut insert = tx.prepare(&format!(
            "{INSERT_PERSON}(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)"
        ))?;
        let mut open = tx.prepare(OPEN_ACCOUNT)?;
        for (i, r) in rows.iter().enumerate() {
            let res = insert.execute(rusqlite::params![
                r.name,
                &r.id_hash[..],
                r.id_cipher,
                r.id_masked,
                r.birth_date,
                r.sex,
                r.phone_cipher,
                r.phone_masked,
                r.home_site_id,
                now,
            ]);
            match res {
                Ok(_) if registered.is_empty() => {
                    open.execute(rusqlite::params![
                        tx.last_insert_rowid(),
                        now,
                        &[0u8; 32][..]
                    ])?;
                }
                Ok(_) => {}
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
                {
                    registered.push(already_registered(r.line, &r.id_masked));
                }
                Err(e) => return Err(e),
            }
            if i % 4096 == 0 {
                done.store(i, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
    if !registered.is_empty() {
        // Dropping the transaction rolls every row back.
        return Ok(registered);
    }
    audit::record_native(&tx, actor, import_change(max_before + 1, rows.len()))?;
    tx.commit()?;
    Ok(registered)
}

/// Multi-row inserts on the pool; returns the smallest new person id.
async fn insert_pooled(
    tx: &mut Tx,
    rows: &[Sealed],
    now: i64,
    progress: Progress<'_>,
) -> Result<i64> {
    let (max_before,): (i64,) = sqlx::query_as(MAX_PERSON).fetch_one(&mut **tx).await?;
    let mut done = 0;
    for chunk in rows.chunks(BATCH) {
        let mut sql = String::from(INSERT_PERSON);
        for i in 0..chunk.len() {
            let b = i * 10;
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for j in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10] {
                if j != 1 {
                    sql.push(',');
                }
                sql.push_str(&format!("${}", b + j));
            }
            sql.push(')');
        }
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = q
                .bind(r.name.clone())
                .bind(r.id_hash.to_vec())
                .bind(r.id_cipher.clone())
                .bind(r.id_masked.clone())
                .bind(r.birth_date.clone())
                .bind(r.sex)
                .bind(r.phone_cipher.clone())
                .bind(r.phone_masked.clone())
                .bind(r.home_site_id)
                .bind(now);
        }
        q.execute(&mut **tx).await?;
        done += chunk.len();
        progress(done, rows.len());
    }
    sqlx::query(OPEN_ACCOUNTS)
        .bind(now)
        .bind(vec![0u8; 32])
        .bind(max_before)
        .execute(&mut **tx)
        .await?;
    Ok(max_before + 1)
}
