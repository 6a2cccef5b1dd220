//! CSV import of persons: `name,id_number,phone,home_site,birth_date,sex`.
//!
//! **Invariant:** all-or-nothing. Every row is validated and de-duplicated
//! (within the file and against the registry) before the first write; a
//! clean file is written in one transaction with multi-row inserts, which is
//! also the bulk path the benchmark measures.

use super::{check, Checked, NewPerson};
use crate::audit::{self, Change};
use crate::authz::Actor;
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::sites::csv::{ImportError, RowError};
use crate::sites::{self, Site};
use crate::storage::{now_micros, Tx};
use std::collections::HashMap;

/// Rows per multi-row INSERT (13 columns each, well under both backends'
/// bind-parameter limits).
const BATCH: usize = 500;

/// A row ready to insert.
pub struct Ready {
    checked: Checked,
    home_site_id: i64,
}

/// Progress callback: (rows done, rows total).
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// Import persons from CSV text; returns how many were created.
pub async fn import(
    k: &Kernel,
    actor: &Actor,
    input: &str,
    progress: Progress<'_>,
) -> Result<usize, ImportError> {
    let mut reader = ::csv::ReaderBuilder::new()
        .trim(::csv::Trim::All)
        .from_reader(input.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| {
            ImportError::Rows(vec![RowError {
                line: 1,
                field: "header".into(),
                message: e.to_string(),
            }])
        })?
        .clone();
    let index: HashMap<&str, usize> = headers.iter().enumerate().map(|(i, h)| (h, i)).collect();
    let mut errors = Vec::new();
    for required in ["name", "id_number", "home_site"] {
        if !index.contains_key(required) {
            errors.push(RowError {
                line: 1,
                field: required.into(),
                message: "required column is missing".into(),
            });
        }
    }
    if !errors.is_empty() {
        return Err(ImportError::Rows(errors));
    }
    let mut homes: HashMap<String, Option<Site>> = HashMap::new();
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut ready = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let line = i + 2;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                errors.push(RowError {
                    line,
                    field: "row".into(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let get = |n: &str| {
            index
                .get(n)
                .and_then(|i| rec.get(*i))
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let n = NewPerson {
            name: get("name").unwrap_or_default(),
            id_number: get("id_number").unwrap_or_default(),
            birth_date: get("birth_date"),
            sex: get("sex"),
            phone: get("phone"),
            home_site: get("home_site").unwrap_or_default(),
            login: None,
            password: None,
        };
        let checked = match check(&n) {
            Ok(c) => c,
            Err(fields) => {
                errors.extend(fields.into_iter().map(|f| RowError {
                    line,
                    field: f.field,
                    message: f.message,
                }));
                continue;
            }
        };
        if !homes.contains_key(&n.home_site) {
            let site = sites::fetch_by_code(k.db.reader(), &n.home_site).await?;
            homes.insert(n.home_site.clone(), site);
        }
        let home = match homes.get(&n.home_site).and_then(Option::as_ref) {
            Some(h) if h.status == "active" => h,
            Some(_) => {
                errors.push(RowError {
                    line,
                    field: "home_site".into(),
                    message: format!("site {} is closed", n.home_site),
                });
                continue;
            }
            None => {
                errors.push(RowError {
                    line,
                    field: "home_site".into(),
                    message: format!("no site has code {:?}", n.home_site),
                });
                continue;
            }
        };
        if !actor.is_admin_over(&home.path) {
            errors.push(RowError {
                line,
                field: "home_site".into(),
                message: format!("you may not register persons at {}", home.code),
            });
            continue;
        }
        let hash = k.pii.lookup_hash(checked.id.expose());
        if let Some(prev) = seen.insert(hash, line) {
            errors.push(RowError {
                line,
                field: "id_number".into(),
                message: format!(
                    "ID number {} already appears on line {prev}",
                    checked.id.masked()
                ),
            });
            continue;
        }
        ready.push((
            line,
            Ready {
                checked,
                home_site_id: home.id,
            },
        ));
    }
    // Against the registry, in batches.
    let hashes: Vec<(&Vec<u8>, usize)> = seen.iter().map(|(h, l)| (h, *l)).collect();
    for chunk in hashes.chunks(BATCH) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id_hash, id_masked FROM persons WHERE id_hash IN ({})",
            placeholders.join(",")
        );
        let mut q = sqlx::query_as::<_, (Vec<u8>, String)>(&sql);
        for (h, _) in chunk {
            q = q.bind((*h).clone());
        }
        for (h, masked) in q.fetch_all(k.db.reader()).await.map_err(Error::from)? {
            let line = seen.get(&h).copied().unwrap_or(0);
            errors.push(RowError {
                line,
                field: "id_number".into(),
                message: format!("a person with ID number {masked} is already registered"),
            });
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        return Err(ImportError::Rows(errors));
    }
    let rows: Vec<Ready> = ready.into_iter().map(|(_, r)| r).collect();
    let total = rows.len();
    let mut tx = k.db.begin().await.map_err(Error::from)?;
    let first_id = insert_batch(&mut tx, k, &rows, progress).await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "person.import",
            site: None,
            object_type: "person",
            object_id: format!("{first_id}.."),
            before: None,
            after: Some(serde_json::json!({ "created": total })),
        },
    )
    .await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(total)
}

/// Insert validated rows with multi-row statements, then open their
/// accounts in one statement. Returns the smallest new person id.
pub async fn insert_batch(
    tx: &mut Tx,
    k: &Kernel,
    rows: &[Ready],
    progress: Progress<'_>,
) -> Result<i64> {
    let (max_before,): (i64,) =
        sqlx::query_as("SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM persons")
            .fetch_one(&mut **tx)
            .await?;
    let now = now_micros();
    let mut done = 0;
    for chunk in rows.chunks(BATCH) {
        let mut sql = String::from(
            "INSERT INTO persons (name, id_hash, id_cipher, id_masked, birth_date, sex, phone_cipher, \
             phone_masked, home_site_id, created_at, updated_at) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = i * 10;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "(${},${},${},${},${},${},${},${},${},${},${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 8,
                b + 9,
                b + 10,
                b + 10
            ));
        }
        let mut q = sqlx::query(&sql);
        for r in chunk {
            let c = &r.checked;
            q = q
                .bind(c.name.clone())
                .bind(k.pii.lookup_hash(c.id.expose()))
                .bind(k.pii.encrypt(c.id.expose()))
                .bind(c.id.masked())
                .bind(c.id.birth_date().format("%Y-%m-%d").to_string())
                .bind(c.id.sex().as_str())
                .bind(c.phone.as_ref().map(|p| k.pii.encrypt(p.expose())))
                .bind(c.phone.as_ref().map(|p| p.masked()))
                .bind(r.home_site_id)
                .bind(now);
        }
        q.execute(&mut **tx).await?;
        done += chunk.len();
        progress(done, rows.len());
    }
    sqlx::query(
        "INSERT INTO accounts (person_id, status, opened_at, entry_count, head_hash) \
         SELECT p.id, 'open', $1, 0, $2 FROM persons p WHERE p.id > $3 \
         AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.person_id = p.id)",
    )
    .bind(now)
    .bind(vec![0u8; 32])
    .bind(max_before)
    .execute(&mut **tx)
    .await?;
    Ok(max_before + 1)
}

impl Ready {
    /// Build a ready row from trusted, already-validated parts (benchmarks, demo).
    pub fn new(checked: Checked, home_site_id: i64) -> Ready {
        Ready {
            checked,
            home_site_id,
        }
    }
}
