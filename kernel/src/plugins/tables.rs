//! Plugin tables: typed, index-checked queries over the tables a plugin
//! declares (their DDL is in `tables/schema.rs`, the index rule and cursors
//! in `tables/access.rs`).
//!
//! **Invariants:**
//! - a plugin's table `t` is stored as `plg_<id>__t` (`-` in the id becomes
//!   `_`; ids have no `_`, so the mapping is one-to-one); the namespace comes
//!   from the loaded plugin, never from a call's arguments, so no call can
//!   name another plugin's table or a kernel table;
//! - identifiers in SQL come only from the checked manifest; every value is
//!   a bound parameter, cast to its column's declared type;
//! - a query is accepted only if a declared access path (primary key, unique
//!   constraint or index) serves it; otherwise the error names the index that
//!   would.

mod access;
mod schema;

pub use schema::{ensure, stored_name};

use super::manifest::{ColumnType, Manifest, TableDef};
use crate::storage::Backend;
use access::{decode_cursor, encode_cursor, served};
use schema::sql_type;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::Row as _;

/// A column value (the kernel-side twin of the WIT `value`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Boolean(bool),
    Blob(Vec<u8>),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// The right side of a condition.
#[derive(Debug, Clone)]
pub enum Operand {
    Value(Value),
    Column(String),
}

/// `column op operand`.
#[derive(Debug, Clone)]
pub struct Condition {
    pub column: String,
    pub op: Op,
    pub operand: Operand,
}

/// A change in a conditional update.
#[derive(Debug, Clone)]
pub enum Change {
    Set(Value),
    Add(i64),
}

/// A row: (column, value) in declaration order.
pub type Row = Vec<(String, Value)>;

/// Why a table call was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum TableError {
    NotFound(String),
    Invalid(String),
    Conflict(String),
    MissingIndex(String),
    ReadOnly(String),
    Internal(String),
}

type Res<T> = Result<T, TableError>;

fn invalid(m: impl Into<String>) -> TableError {
    TableError::Invalid(m.into())
}

impl From<sqlx::Error> for TableError {
    fn from(e: sqlx::Error) -> Self {
        if crate::storage::is_unique_violation(&e) {
            TableError::Conflict("a unique constraint would be broken".into())
        } else {
            TableError::Internal(e.to_string())
        }
    }
}

/// A value bound to a statement.
enum Bind {
    Int(Option<i64>),
    Text(Option<String>),
    Blob(Option<Vec<u8>>),
}

/// SQL under construction with its bound values.
struct Sql {
    backend: Backend,
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    fn new(backend: Backend) -> Sql {
        Sql {
            backend,
            text: String::new(),
            binds: Vec::new(),
        }
    }

    fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Append a placeholder for `v`, cast to the column's type.
    fn value(&mut self, table: &TableDef, column: &str, v: &Value) -> Res<&mut Self> {
        let c = table.column(column).ok_or_else(|| {
            TableError::NotFound(format!("table {} has no column {column:?}", table.name))
        })?;
        let bind = match (c.ty, v) {
            // A NULL is bound with the column's own parameter type: a
            // statement is prepared once per connection for its SQL text,
            // and PostgreSQL keeps the parameter types of that first
            // preparation, so binding NULL as text where the next call binds
            // an integer made PostgreSQL read the integer's bytes as text.
            (ColumnType::Integer | ColumnType::Boolean, Value::Null) => Bind::Int(None),
            (ColumnType::Blob, Value::Null) => Bind::Blob(None),
            (_, Value::Null) => Bind::Text(None),
            (ColumnType::Integer, Value::Integer(i)) => Bind::Int(Some(*i)),
            (ColumnType::Boolean, Value::Boolean(b)) => Bind::Int(Some(*b as i64)),
            (ColumnType::Real, Value::Real(f)) if f.is_finite() => {
                Bind::Text(Some(format!("{f:?}")))
            }
            (ColumnType::Real, Value::Integer(i)) => Bind::Text(Some(format!("{i}"))),
            // PostgreSQL refuses NUL in text and SQLite would store it: a
            // column means the same on both, so it is refused on both.
            (ColumnType::Text, Value::Text(s)) if s.contains('\0') => {
                return Err(invalid(format!(
                    "column {}.{column} is text, which cannot hold a NUL character",
                    table.name
                )));
            }
            (ColumnType::Text, Value::Text(s)) => Bind::Text(Some(s.clone())),
            (ColumnType::Blob, Value::Blob(b)) => Bind::Blob(Some(b.clone())),
            (ty, v) => {
                return Err(invalid(format!(
                    "column {}.{column} is {} and cannot hold {}",
                    table.name,
                    ty.name(),
                    value_kind(v)
                )))
            }
        };
        self.binds.push(bind);
        let n = self.binds.len();
        let ty = sql_type(self.backend, c.ty);
        self.text.push_str(&format!("CAST(${n} AS {ty})"));
        Ok(self)
    }

    fn query(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
        let mut q = sqlx::query(&self.text);
        for b in &self.binds {
            q = match b {
                Bind::Int(v) => q.bind(*v),
                Bind::Text(v) => q.bind(v.clone()),
                Bind::Blob(v) => q.bind(v.clone()),
            };
        }
        q
    }
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Integer(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Boolean(_) => "a boolean",
        Value::Blob(_) => "a blob",
    }
}

fn op_sql(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "<>",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
    }
}

/// The loaded, namespaced view of one plugin's tables.
#[derive(Debug, Clone)]
pub struct Tables {
    plugin: String,
    backend: Backend,
    defs: Vec<TableDef>,
}

impl Tables {
    /// The tables of `m` on `backend`.
    pub fn new(m: &Manifest, backend: Backend) -> Tables {
        Tables {
            plugin: m.id.clone(),
            backend,
            defs: m.tables.clone(),
        }
    }

    fn def(&self, table: &str) -> Res<(&TableDef, String)> {
        let t = self.defs.iter().find(|t| t.name == table).ok_or_else(|| {
            TableError::NotFound(format!(
                "plugin {} declares no table {table:?}",
                self.plugin
            ))
        })?;
        Ok((t, stored_name(&self.plugin, table)))
    }

    fn column_list(t: &TableDef) -> String {
        t.columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn decode(t: &TableDef, r: &AnyRow) -> Res<Row> {
        t.columns
            .iter()
            .map(|c| {
                let i = c.name.as_str();
                let v = match c.ty {
                    ColumnType::Integer => r.try_get::<Option<i64>, _>(i)?.map(Value::Integer),
                    ColumnType::Boolean => r
                        .try_get::<Option<i64>, _>(i)?
                        .map(|b| Value::Boolean(b != 0)),
                    ColumnType::Real => r.try_get::<Option<f64>, _>(i)?.map(Value::Real),
                    ColumnType::Text => r.try_get::<Option<String>, _>(i)?.map(Value::Text),
                    ColumnType::Blob => r.try_get::<Option<Vec<u8>>, _>(i)?.map(Value::Blob),
                };
                Ok((c.name.clone(), v.unwrap_or(Value::Null)))
            })
            .collect()
    }

    fn key_where(&self, sql: &mut Sql, t: &TableDef, key: &[Value]) -> Res<()> {
        if key.len() != t.primary_key.len() {
            return Err(invalid(format!(
                "the primary key of {} is ({}); {} value(s) given",
                t.name,
                t.primary_key.join(", "),
                key.len()
            )));
        }
        sql.push(" WHERE ");
        for (i, (c, v)) in t.primary_key.iter().zip(key).enumerate() {
            if i > 0 {
                sql.push(" AND ");
            }
            sql.push(c).push(" = ");
            sql.value(t, c, v)?;
        }
        Ok(())
    }

    /// The row with primary key `key`.
    pub async fn get(
        &self,
        conn: &mut AnyConnection,
        table: &str,
        key: &[Value],
    ) -> Res<Option<Row>> {
        let (t, name) = self.def(table)?;
        let mut sql = Sql::new(self.backend);
        sql.push(&format!("SELECT {} FROM {name}", Self::column_list(t)));
        self.key_where(&mut sql, t, key)?;
        let row = sql.query().fetch_optional(&mut *conn).await?;
        row.map(|r| Self::decode(t, &r)).transpose()
    }

    /// Insert `row`; returns it as stored.
    pub async fn insert(&self, conn: &mut AnyConnection, table: &str, row: &Row) -> Res<Row> {
        let (t, name) = self.def(table)?;
        for c in &t.columns {
            let given = row.iter().find(|(n, _)| *n == c.name).map(|(_, v)| v);
            let missing = matches!(given, None | Some(Value::Null));
            if missing && !c.nullable && !(t.generated_id() && c.name == "id") {
                return Err(invalid(format!("column {}.{} is required", t.name, c.name)));
            }
        }
        distinct_known(t, row)?;
        let mut sql = Sql::new(self.backend);
        let cols: Vec<&str> = row.iter().map(|(c, _)| c.as_str()).collect();
        sql.push(&format!(
            "INSERT INTO {name} ({}) VALUES (",
            cols.join(", ")
        ));
        for (i, (c, v)) in row.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.value(t, c, v)?;
        }
        // A duplicate key is answered as "no row", never as an error: on
        // PostgreSQL a failed statement aborts the whole transaction, so a
        // plugin that handled the conflict and went on would have its
        // later statements fail, or its COMMIT silently roll back, while
        // SQLite committed the same call.
        sql.push(&format!(
            ") ON CONFLICT DO NOTHING RETURNING {}",
            Self::column_list(t)
        ));
        let r = sql
            .query()
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| conflict_or(e, t))?
            .ok_or_else(|| conflict(t))?;
        Self::decode(t, &r)
    }

    /// Set columns of the row with primary key `key`; whether it existed,
    /// and how many bytes the row's stored size changed by (`row_bytes`).
    pub async fn update(
        &self,
        conn: &mut AnyConnection,
        table: &str,
        key: &[Value],
        set: &Row,
    ) -> Res<(bool, i64)> {
        let (t, name) = self.def(table)?;
        if set.is_empty() {
            return Err(invalid("an update must set at least one column"));
        }
        distinct_known(t, set)?;
        let mut sql = Sql::new(self.backend);
        sql.push(&format!("UPDATE {name} SET "));
        for (i, (c, v)) in set.iter().enumerate() {
            if t.primary_key.contains(c) {
                return Err(invalid(format!(
                    "primary-key column {}.{c} cannot be changed",
                    t.name
                )));
            }
            if i > 0 {
                sql.push(", ");
            }
            not_null(t, c, v)?;
            sql.push(c).push(" = ");
            sql.value(t, c, v)?;
        }
        self.key_where(&mut sql, t, key)?;
        // The set columns' size before (the plugin's write lock is held:
        // nothing changes the row between this read and the update).
        let cols: Vec<&str> = set.iter().map(|(c, _)| c.as_str()).collect();
        let mut old = Sql::new(self.backend);
        old.push(&format!(
            "SELECT {} AS size__ FROM {name}",
            self.size_sql(t, &cols)
        ));
        self.key_where(&mut old, t, key)?;
        let before: Option<i64> = match old.query().fetch_optional(&mut *conn).await? {
            Some(r) => Some(r.try_get("size__")?),
            None => None,
        };
        let n = self.guarded(conn, t, &sql).await?;
        let delta = if n > 0 {
            row_bytes(set) - before.unwrap_or(0)
        } else {
            0
        };
        Ok((n > 0, delta))
    }

    /// Delete the row with primary key `key`; the stored size of the row
    /// deleted (`row_bytes`), if there was one.
    pub async fn delete(
        &self,
        conn: &mut AnyConnection,
        table: &str,
        key: &[Value],
    ) -> Res<Option<i64>> {
        let (t, name) = self.def(table)?;
        let mut sql = Sql::new(self.backend);
        sql.push(&format!("DELETE FROM {name}"));
        self.key_where(&mut sql, t, key)?;
        let all: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        sql.push(&format!(" RETURNING {} AS size__", self.size_sql(t, &all)));
        match sql.query().fetch_optional(&mut *conn).await? {
            Some(r) => Ok(Some(r.try_get("size__")?)),
            None => Ok(None),
        }
    }

    /// One page of rows matching `conds`, in `order`.
    pub async fn select(
        &self,
        conn: &mut AnyConnection,
        table: &str,
        conds: &[Condition],
        order: &[(String, bool)],
        limit: u32,
        cursor: Option<&str>,
    ) -> Res<(Vec<Row>, Option<String>)> {
        let (t, name) = self.def(table)?;
        if limit == 0 || limit > 1000 {
            return Err(invalid("limit must be 1-1000"));
        }
        // Identifiers reach SQL text only after they are found among the
        // declared columns.
        for (c, _) in order {
            known(t, c)?;
        }
        served(t, conds, order, &[])?;
        let descending = order.first().is_some_and(|o| o.1);
        if order.iter().any(|o| o.1 != descending) {
            return Err(invalid("all order columns must sort the same way"));
        }
        // Keyset: the order columns, then the primary key, as a row value.
        let mut keys: Vec<String> = order.iter().map(|o| o.0.clone()).collect();
        for k in &t.primary_key {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
        let mut sql = Sql::new(self.backend);
        sql.push(&format!(
            "SELECT {} FROM {name} WHERE 1 = 1",
            Self::column_list(t)
        ));
        for c in conds {
            sql.push(" AND ");
            condition(&mut sql, t, c)?;
        }
        if let Some(cursor) = cursor {
            let vals = decode_cursor(cursor, keys.len())?;
            sql.push(&format!(
                " AND ({}) {} (",
                keys.join(", "),
                if descending { "<" } else { ">" }
            ));
            for (i, (k, v)) in keys.iter().zip(&vals).enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.value(t, k, v)?;
            }
            sql.push(")");
        }
        let dir = if descending { " DESC" } else { "" };
        sql.push(&format!(
            " ORDER BY {} LIMIT {}",
            keys.iter()
                .map(|k| format!("{k}{dir}"))
                .collect::<Vec<_>>()
                .join(", "),
            limit + 1
        ));
        let rows = sql.query().fetch_all(&mut *conn).await?;
        let mut out = rows
            .iter()
            .map(|r| Self::decode(t, r))
            .collect::<Res<Vec<Row>>>()?;
        let next = if out.len() > limit as usize {
            out.truncate(limit as usize);
            let last = out.last().expect("limit >= 1");
            let vals: Vec<&Value> = keys
                .iter()
                .map(|k| {
                    &last
                        .iter()
                        .find(|(c, _)| c == k)
                        .expect("declared column")
                        .1
                })
                .collect();
            Some(encode_cursor(&vals))
        } else {
            None
        };
        Ok((out, next))
    }

    /// Apply `changes` to rows matching `conds`; returns how many changed,
    /// and how many bytes their stored size changed by (`row_bytes`).
    pub async fn update_where(
        &self,
        conn: &mut AnyConnection,
        table: &str,
        conds: &[Condition],
        changes: &[(String, Change)],
    ) -> Res<(u64, i64)> {
        let (t, name) = self.def(table)?;
        if changes.is_empty() {
            return Err(invalid("an update must change at least one column"));
        }
        for (i, (c, _)) in changes.iter().enumerate() {
            if changes[..i].iter().any(|(p, _)| p == c) {
                return Err(invalid(format!("column {}.{c} is changed twice", t.name)));
            }
        }
        served(t, conds, &[], &[])?;
        let mut sql = Sql::new(self.backend);
        sql.push(&format!("UPDATE {name} SET "));
        for (i, (c, ch)) in changes.iter().enumerate() {
            let col = t.column(c).ok_or_else(|| {
                TableError::NotFound(format!("table {} has no column {c:?}", t.name))
            })?;
            if t.primary_key.contains(c) {
                return Err(invalid(format!(
                    "primary-key column {}.{c} cannot be changed",
                    t.name
                )));
            }
            if i > 0 {
                sql.push(", ");
            }
            sql.push(c).push(" = ");
            match ch {
                Change::Set(v) => {
                    not_null(t, c, v)?;
                    sql.value(t, c, v)?;
                }
                Change::Add(n) if col.ty == ColumnType::Integer => {
                    sql.push(c).push(" + ");
                    sql.value(t, c, &Value::Integer(*n))?;
                }
                Change::Add(_) => {
                    return Err(invalid(format!(
                        "column {}.{c} is not an integer; only integers can be added to",
                        t.name
                    )))
                }
            }
        }
        sql.push(" WHERE 1 = 1");
        for c in conds {
            sql.push(" AND ");
            condition(&mut sql, t, c)?;
        }
        // Only set columns change size (an integer added to stays an
        // integer, a NULL stays NULL): their size before, over the rows the
        // update will change (under the plugin's write lock, the same rows).
        let set: Vec<(&str, &Value)> = changes
            .iter()
            .filter_map(|(c, ch)| match ch {
                Change::Set(v) => Some((c.as_str(), v)),
                Change::Add(_) => None,
            })
            .collect();
        let before = if set.is_empty() {
            0
        } else {
            let cols: Vec<&str> = set.iter().map(|(c, _)| *c).collect();
            let mut old = Sql::new(self.backend);
            old.push(&format!(
                "SELECT CAST(COALESCE(SUM({}), 0) AS BIGINT) AS size__ FROM {name} WHERE 1 = 1",
                self.size_sql(t, &cols)
            ));
            for c in conds {
                old.push(" AND ");
                condition(&mut old, t, c)?;
            }
            old.query().fetch_one(&mut *conn).await?.try_get("size__")?
        };
        let n = self.guarded(conn, t, &sql).await?;
        let after: i64 = set.iter().map(|(_, v)| value_bytes(v)).sum();
        let delta = if set.is_empty() {
            0
        } else {
            n as i64 * after - before
        };
        Ok((n, delta))
    }

    /// Run an update that may break a unique constraint. On PostgreSQL,
    /// for a table with unique columns (a primary key cannot be changed),
    /// inside a savepoint: a conflict is rolled back to it, so the call's
    /// transaction goes on as it does on SQLite (see `insert`).
    async fn guarded(&self, conn: &mut AnyConnection, t: &TableDef, sql: &Sql) -> Res<u64> {
        let savepoint = self.backend == Backend::Postgres && !t.unique.is_empty();
        if savepoint {
            sqlx::query("SAVEPOINT plugin_statement")
                .execute(&mut *conn)
                .await?;
        }
        match sql.query().execute(&mut *conn).await {
            Ok(n) => {
                if savepoint {
                    sqlx::query("RELEASE SAVEPOINT plugin_statement")
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(n.rows_affected())
            }
            Err(e) => {
                if savepoint {
                    sqlx::query("ROLLBACK TO SAVEPOINT plugin_statement")
                        .execute(&mut *conn)
                        .await?;
                }
                Err(conflict_or(e, t))
            }
        }
    }

    /// Count rows (and sum `sum`) matching `conds`, grouped by `group_by`.
    pub async fn aggregate(
        &self,
        conn: &mut AnyConnection,
        table: &str,
        conds: &[Condition],
        group_by: &[String],
        sum: Option<&str>,
    ) -> Res<Vec<(Vec<Value>, i64, Option<i64>)>> {
        let (t, name) = self.def(table)?;
        served(t, conds, &[], group_by)?;
        if let Some(s) = sum {
            match t.column(s) {
                Some(c) if c.ty == ColumnType::Integer => {}
                Some(_) => {
                    return Err(invalid(format!(
                        "column {}.{s} is not an integer and cannot be summed",
                        t.name
                    )))
                }
                None => {
                    return Err(TableError::NotFound(format!(
                        "table {} has no column {s:?}",
                        t.name
                    )))
                }
            }
        }
        let mut sql = Sql::new(self.backend);
        let mut select: Vec<String> = group_by.to_vec();
        select.push("CAST(COUNT(*) AS BIGINT) AS n__".into());
        if let Some(s) = sum {
            select.push(format!("CAST(SUM({s}) AS BIGINT) AS s__"));
        }
        sql.push(&format!(
            "SELECT {} FROM {name} WHERE 1 = 1",
            select.join(", ")
        ));
        for c in conds {
            sql.push(" AND ");
            condition(&mut sql, t, c)?;
        }
        if !group_by.is_empty() {
            sql.push(&format!(" GROUP BY {0} ORDER BY {0}", group_by.join(", ")));
        }
        let rows = sql.query().fetch_all(&mut *conn).await?;
        let key_def = TableDef {
            columns: group_by
                .iter()
                .filter_map(|g| t.column(g).cloned())
                .collect(),
            ..t.clone()
        };
        rows.iter()
            .map(|r| {
                let key = Self::decode(&key_def, r)?
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect();
                let n: i64 = r.try_get("n__")?;
                let s: Option<i64> = if sum.is_some() {
                    r.try_get("s__")?
                } else {
                    None
                };
                Ok((key, n, s))
            })
            .collect()
    }
}

/// A value's stored size as quotas count it (`quota.rs`): 8 bytes for a
/// number or a boolean, the byte length of text and blobs, 0 for NULL.
pub fn value_bytes(v: &Value) -> i64 {
    match v {
        Value::Null => 0,
        Value::Integer(_) | Value::Real(_) | Value::Boolean(_) => 8,
        Value::Text(s) => s.len() as i64,
        Value::Blob(b) => b.len() as i64,
    }
}

/// A row's stored size: the sum of its values' (`value_bytes`).
pub fn row_bytes(r: &Row) -> i64 {
    r.iter().map(|(_, v)| value_bytes(v)).sum()
}

impl Tables {
    /// SQL for the stored size of columns `cols` of a row, as
    /// [`value_bytes`] counts it.
    fn size_sql(&self, t: &TableDef, cols: &[&str]) -> String {
        let parts: Vec<String> = cols
            .iter()
            .filter_map(|c| t.column(c))
            .map(|c| match (c.ty, self.backend) {
                (ColumnType::Text | ColumnType::Blob, Backend::Sqlite) => {
                    format!("COALESCE(LENGTH(CAST({} AS BLOB)), 0)", c.name)
                }
                (ColumnType::Text | ColumnType::Blob, Backend::Postgres) => {
                    format!("COALESCE(OCTET_LENGTH({}), 0)", c.name)
                }
                _ => format!("(CASE WHEN {} IS NULL THEN 0 ELSE 8 END)", c.name),
            })
            .collect();
        if parts.is_empty() {
            "CAST(0 AS BIGINT)".into()
        } else {
            format!("CAST({} AS BIGINT)", parts.join(" + "))
        }
    }

    /// Rows and stored bytes of every table of the plugin, counted from
    /// the tables themselves (what `plugin_usage`'s totals are rebuilt from).
    pub async fn measure(&self, conn: &mut AnyConnection) -> Res<(i64, i64)> {
        let (mut rows, mut bytes) = (0, 0);
        for t in &self.defs {
            let name = stored_name(&self.plugin, &t.name);
            let all: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
            let r = sqlx::query(&format!(
                "SELECT CAST(COUNT(*) AS BIGINT) AS n__, CAST(COALESCE(SUM({}), 0) AS BIGINT) AS s__ FROM {name}",
                self.size_sql(t, &all)
            ))
            .fetch_one(&mut *conn)
            .await?;
            rows += r.try_get::<i64, _>("n__")?;
            bytes += r.try_get::<i64, _>("s__")?;
        }
        Ok((rows, bytes))
    }
}

fn known(t: &TableDef, c: &str) -> Res<()> {
    match t.column(c) {
        Some(_) => Ok(()),
        None => Err(TableError::NotFound(format!(
            "table {} has no column {c:?}",
            t.name
        ))),
    }
}

/// Every column of a row once, and only declared ones.
fn distinct_known(t: &TableDef, row: &Row) -> Res<()> {
    for (i, (c, _)) in row.iter().enumerate() {
        known(t, c)?;
        if row[..i].iter().any(|(p, _)| p == c) {
            return Err(invalid(format!("column {}.{c} is given twice", t.name)));
        }
    }
    Ok(())
}

fn not_null(t: &TableDef, c: &str, v: &Value) -> Res<()> {
    if *v == Value::Null && t.column(c).is_some_and(|c| !c.nullable) {
        return Err(invalid(format!("column {}.{c} is required", t.name)));
    }
    Ok(())
}

fn conflict(t: &TableDef) -> TableError {
    TableError::Conflict(format!(
        "a row of {} with the same key or unique columns exists",
        t.name
    ))
}

fn conflict_or(e: sqlx::Error, t: &TableDef) -> TableError {
    if crate::storage::is_unique_violation(&e) {
        conflict(t)
    } else {
        TableError::from(e)
    }
}

fn condition(sql: &mut Sql, t: &TableDef, c: &Condition) -> Res<()> {
    if t.column(&c.column).is_none() {
        return Err(TableError::NotFound(format!(
            "table {} has no column {:?}",
            t.name, c.column
        )));
    }
    sql.push(&c.column).push(" ").push(op_sql(c.op)).push(" ");
    match &c.operand {
        Operand::Value(Value::Null) => {
            return Err(invalid(format!(
                "column {} is compared with null; nothing equals null",
                c.column
            )))
        }
        Operand::Value(v) => {
            sql.value(t, &c.column, v)?;
        }
        Operand::Column(other) => {
            if t.column(other).is_none() {
                return Err(TableError::NotFound(format!(
                    "table {} has no column {other:?}",
                    t.name
                )));
            }
            sql.push(other);
        }
    }
    Ok(())
}
