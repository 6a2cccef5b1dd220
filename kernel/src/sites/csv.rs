//! CSV import and export of sites, in the column layout admins keep in
//! spreadsheets: `code,name_zh,name_en,kind,parent_code,address,latitude,
//! longitude,operator,opened_on,status,closed_on`.
//!
//! **Invariant:** an import is all-or-nothing. Every row is checked first
//! (fields, duplicate codes, parents in the file or the database, parent
//! kinds, permission) and all row errors are reported together; only a clean
//! file is written, in one transaction. Rows whose code already exists update
//! that site (names, address, coordinates, operator, opening date).

use super::{
    allowed_parents, create_in, fetch_by_code, list, validate_new, ListQuery, NewSite, Site,
};
use crate::authz::Actor;
use crate::error::{Error, FieldError, Result};
use crate::storage::{now_micros, Db};
use serde::Serialize;
use std::collections::HashMap;

/// The header every export writes and every import expects.
pub const HEADER: &[&str] = &[
    "code",
    "name_zh",
    "name_en",
    "kind",
    "parent_code",
    "address",
    "latitude",
    "longitude",
    "operator",
    "opened_on",
    "status",
    "closed_on",
];

/// A problem with one CSV row (line numbers count the header as line 1).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RowError {
    /// 1-based line in the file.
    pub line: usize,
    /// The column at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// What an import did.
#[derive(Debug, Default, Serialize)]
pub struct ImportReport {
    /// Sites created.
    pub created: usize,
    /// Existing sites updated.
    pub updated: usize,
}

/// Why an import wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// One or more rows are wrong; nothing was written.
    #[error("{} row error(s); nothing was imported", .0.len())]
    Rows(Vec<RowError>),
    /// Any other failure.
    #[error(transparent)]
    Other(#[from] Error),
}

/// Export the sites the actor can see under `within` (or all) as CSV.
pub async fn export(db: &Db, actor: &Actor, within: Option<String>) -> Result<String> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record(HEADER).map_err(internal)?;
    let mut after: Option<String> = None;
    loop {
        let page = list(
            db,
            actor,
            ListQuery {
                within: within.clone(),
                after_path: after.clone(),
                limit: 2000,
                ..Default::default()
            },
        )
        .await?;
        for s in &page {
            w.write_record(record(s)).map_err(internal)?;
        }
        match page.last() {
            Some(last) if page.len() == 2000 => after = Some(last.path.clone()),
            _ => break,
        }
    }
    String::from_utf8(w.into_inner().map_err(|e| internal(e.into_error()))?).map_err(internal)
}

fn record(s: &Site) -> Vec<String> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let num = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    vec![
        s.code.clone(),
        s.name_zh.clone(),
        opt(&s.name_en),
        s.kind.clone(),
        opt(&s.parent_code),
        opt(&s.address),
        num(s.latitude),
        num(s.longitude),
        s.operator.clone(),
        s.opened_on.clone(),
        s.status.clone(),
        opt(&s.closed_on),
    ]
}

fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Internal(anyhow::Error::new(e))
}

struct Row {
    line: usize,
    site: NewSite,
}

/// Read an admin's CSV file (a header row, cells trimmed): check the header
/// has every `required` column, then hand each data row to `each` with its
/// line number and a by-name cell reader (empty cells read as `None`).
/// Returns the rows that could not be read; a bad header is the error.
pub(crate) fn read_rows(
    input: &str,
    required: &[&str],
    mut each: impl FnMut(usize, &dyn Fn(&str) -> Option<String>),
) -> std::result::Result<Vec<RowError>, Vec<RowError>> {
    let mut reader = ::csv::ReaderBuilder::new()
        .trim(::csv::Trim::All)
        .from_reader(input.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| {
            vec![RowError {
                line: 1,
                field: "header".into(),
                message: e.to_string(),
            }]
        })?
        .clone();
    let index: HashMap<&str, usize> = headers.iter().enumerate().map(|(i, h)| (h, i)).collect();
    let missing: Vec<RowError> = required
        .iter()
        .filter(|c| !index.contains_key(**c))
        .map(|c| RowError {
            line: 1,
            field: (*c).into(),
            message: "required column is missing".into(),
        })
        .collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    let mut unreadable = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let line = i + 2;
        match rec {
            Ok(rec) => each(line, &|name: &str| {
                index
                    .get(name)
                    .and_then(|i| rec.get(*i))
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
            }),
            Err(e) => unreadable.push(RowError {
                line,
                field: "row".into(),
                message: e.to_string(),
            }),
        }
    }
    Ok(unreadable)
}

fn parse(input: &str) -> std::result::Result<Vec<Row>, Vec<RowError>> {
    let mut errors = Vec::new();
    let mut rows = Vec::new();
    let unreadable = read_rows(input, &["code", "name_zh", "kind"], |line, get| {
        let mut num = |name: &str| -> Option<f64> {
            let v = get(name)?;
            match v.parse::<f64>() {
                Ok(x) if x.is_finite() => Some(x),
                _ => {
                    errors.push(RowError {
                        line,
                        field: name.into(),
                        message: format!("{v:?} is not a number"),
                    });
                    None
                }
            }
        };
        let latitude = num("latitude");
        let longitude = num("longitude");
        let site = NewSite {
            code: get("code").unwrap_or_default(),
            name_zh: get("name_zh").unwrap_or_default(),
            name_en: get("name_en"),
            kind: get("kind").unwrap_or_default(),
            parent_code: get("parent_code"),
            parent_id: None,
            address: get("address"),
            latitude,
            longitude,
            operator: get("operator"),
            opened_on: get("opened_on"),
        };
        for FieldError { field, message } in validate_new(&site) {
            errors.push(RowError {
                line,
                field,
                message,
            });
        }
        rows.push(Row { line, site });
    })?;
    errors.extend(unreadable);
    errors.sort_by_key(|e| e.line);
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

/// Import a CSV file all-or-nothing.
pub async fn import(db: &Db, actor: &Actor, input: &str) -> Result<ImportReport, ImportError> {
    let rows = parse(input).map_err(ImportError::Rows)?;
    let mut errors = Vec::new();
    // Kind and path of every code known after the import: the database's, then the file's.
    let mut kinds: HashMap<String, String> = HashMap::new();
    let mut first_line: HashMap<&str, usize> = HashMap::new();
    let mut existing: HashMap<String, Site> = HashMap::new();
    for row in &rows {
        if let Some(prev) = first_line.insert(&row.site.code, row.line) {
            errors.push(RowError {
                line: row.line,
                field: "code".into(),
                message: format!("code {:?} already appears on line {prev}", row.site.code),
            });
        }
        if let Some(site) = fetch_by_code(db.reader(), &row.site.code).await? {
            kinds.insert(site.code.clone(), site.kind.clone());
            existing.insert(site.code.clone(), site);
        } else {
            kinds.insert(row.site.code.clone(), row.site.kind.clone());
        }
    }
    for row in &rows {
        let s = &row.site;
        if let Some(old) = existing.get(&s.code) {
            if old.kind != s.kind {
                errors.push(RowError {
                    line: row.line,
                    field: "kind".into(),
                    message: format!(
                        "site {} exists as a {}; a kind cannot change",
                        s.code, old.kind
                    ),
                });
            }
            if !actor.is_admin_over(&old.path) {
                errors.push(RowError {
                    line: row.line,
                    field: "code".into(),
                    message: "you may not edit this site".into(),
                });
            }
            continue;
        }
        let parents = allowed_parents(&s.kind).unwrap_or(&[]);
        match &s.parent_code {
            None if s.kind == "city" => {}
            None => errors.push(RowError {
                line: row.line,
                field: "parent_code".into(),
                message: format!("a {} must have a parent ({})", s.kind, parents.join(" or ")),
            }),
            Some(pc) => {
                let parent_kind = match kinds.get(pc) {
                    Some(k) => Some(k.clone()),
                    None => fetch_by_code(db.reader(), pc).await?.map(|p| p.kind),
                };
                match parent_kind {
                    None => errors.push(RowError {
                        line: row.line,
                        field: "parent_code".into(),
                        message: format!("no site has code {pc:?}, in the file or the registry"),
                    }),
                    Some(pk) if !parents.contains(&pk.as_str()) => errors.push(RowError {
                        line: row.line,
                        field: "parent_code".into(),
                        message: format!(
                            "a {} must be under a {}, but {pc} is a {pk}",
                            s.kind,
                            parents.join(" or ")
                        ),
                    }),
                    Some(_) => {}
                }
            }
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        return Err(ImportError::Rows(errors));
    }
    // Parents before children: repeat passes over rows whose parent now exists.
    let mut tx = db.begin().await.map_err(Error::from)?;
    let mut report = ImportReport::default();
    let mut pending: Vec<&Row> = Vec::new();
    for row in &rows {
        if let Some(old) = existing.get(&row.site.code) {
            update_row(&mut tx, actor, old, &row.site)
                .await
                .map_err(|e| row_error(row.line, e))?;
            report.updated += 1;
        } else {
            pending.push(row);
        }
    }
    let mut created: std::collections::HashSet<String> = std::collections::HashSet::new();
    while !pending.is_empty() {
        let before = pending.len();
        let mut next = Vec::new();
        for row in pending {
            let parent_ready = match &row.site.parent_code {
                None => true,
                Some(pc) => {
                    !first_line.contains_key(pc.as_str())
                        || existing.contains_key(pc)
                        || created.contains(pc)
                }
            };
            if parent_ready {
                create_in(&mut tx, actor, row.site.clone())
                    .await
                    .map_err(|e| row_error(row.line, e))?;
                created.insert(row.site.code.clone());
                report.created += 1;
            } else {
                next.push(row);
            }
        }
        if next.len() == before {
            let line = next[0].line;
            return Err(ImportError::Rows(vec![RowError {
                line,
                field: "parent_code".into(),
                message: "the rows' parents form a cycle".into(),
            }]));
        }
        pending = next;
    }
    tx.commit().await.map_err(Error::from)?;
    Ok(report)
}

fn row_error(line: usize, e: Error) -> ImportError {
    match e {
        Error::Invalid(fields) => ImportError::Rows(
            fields
                .into_iter()
                .map(|f| RowError {
                    line,
                    field: f.field,
                    message: f.message,
                })
                .collect(),
        ),
        Error::Conflict { field, message } => ImportError::Rows(vec![RowError {
            line,
            field: field.unwrap_or_else(|| "row".into()),
            message,
        }]),
        Error::Forbidden(message) => ImportError::Rows(vec![RowError {
            line,
            field: "parent_code".into(),
            message,
        }]),
        other => ImportError::Other(other),
    }
}

async fn update_row(
    tx: &mut crate::storage::Tx,
    actor: &Actor,
    old: &Site,
    s: &NewSite,
) -> Result<()> {
    sqlx::query(
        "UPDATE sites SET name_zh = $1, name_en = $2, address = $3, latitude = CAST($4 AS DOUBLE PRECISION), longitude = CAST($5 AS DOUBLE PRECISION), \
         operator = $6, opened_on = COALESCE($7, opened_on), updated_at = $8 WHERE id = $9",
    )
    .bind(s.name_zh.trim())
    .bind(s.name_en.as_deref())
    .bind(s.address.as_deref())
    .bind(super::float_param(s.latitude))
    .bind(super::float_param(s.longitude))
    .bind(s.operator.as_deref().unwrap_or("public"))
    .bind(s.opened_on.as_deref())
    .bind(now_micros())
    .bind(old.id)
    .execute(&mut **tx)
    .await?;
    super::audit_change(tx, actor, "site.import_update", Some(old), old.id).await?;
    Ok(())
}
