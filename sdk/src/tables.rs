//! The plugin's own tables, as declared in its manifest.
//!
//! Table names are the plugin's own; the kernel namespaces them, so a plugin
//! can only ever reach its own data.

use crate::bindings::lifelong::plugin::tables as host;
use crate::{Error, Result, Value};

pub use host::{Assignment, Change, Condition, Group, Op, Operand, OrderBy, Page, Query};

/// A row: (column, value) pairs.
pub type Row = Vec<(String, Value)>;

/// A handle on one declared table.
#[derive(Debug, Clone, Copy)]
pub struct Table(pub &'static str);

impl Table {
    /// The row with this primary key.
    pub fn get(&self, key: &[Value]) -> Result<Option<Row>> {
        host::get(self.0, key).map_err(Error::from)
    }

    /// Insert a row; returns it as stored (with its generated `id`).
    pub fn insert(&self, row: &[(&str, Value)]) -> Result<Row> {
        host::insert(self.0, &owned(row)).map_err(Error::from)
    }

    /// Set columns of the row with this primary key; false if there is none.
    pub fn update(&self, key: &[Value], set: &[(&str, Value)]) -> Result<bool> {
        host::update(self.0, key, &owned(set)).map_err(Error::from)
    }

    /// Delete the row with this primary key; false if there was none.
    pub fn delete(&self, key: &[Value]) -> Result<bool> {
        host::delete(self.0, key).map_err(Error::from)
    }

    /// One page of rows matching `conditions` in `order`.
    pub fn select(
        &self,
        conditions: Vec<Condition>,
        order: Vec<OrderBy>,
        limit: u32,
        cursor: Option<String>,
    ) -> Result<Page> {
        host::select(&Query {
            table: self.0.to_string(),
            where_: conditions,
            order,
            limit,
            cursor,
        })
        .map_err(Error::from)
    }

    /// Apply `changes` where `conditions` hold; returns rows changed.
    pub fn update_where(&self, conditions: &[Condition], changes: &[Assignment]) -> Result<u64> {
        host::update_where(self.0, conditions, changes).map_err(Error::from)
    }

    /// Count (and sum `sum`) rows matching `conditions`, grouped by `group_by`.
    pub fn aggregate(
        &self,
        conditions: &[Condition],
        group_by: &[&str],
        sum: Option<&str>,
    ) -> Result<Vec<Group>> {
        let group_by: Vec<String> = group_by.iter().map(|s| s.to_string()).collect();
        host::aggregate(self.0, conditions, &group_by, sum).map_err(Error::from)
    }
}

fn owned(row: &[(&str, Value)]) -> Row {
    row.iter()
        .map(|(c, v)| (c.to_string(), v.clone()))
        .collect()
}

/// `column = value`.
pub fn eq(column: &str, value: Value) -> Condition {
    cond(column, Op::Eq, Operand::Value(value))
}

/// `column op value`.
pub fn cmp(column: &str, op: Op, value: Value) -> Condition {
    cond(column, op, Operand::Value(value))
}

/// `column op other_column` (both of the same row).
pub fn cmp_columns(column: &str, op: Op, other: &str) -> Condition {
    cond(column, op, Operand::Column(other.to_string()))
}

fn cond(column: &str, op: Op, operand: Operand) -> Condition {
    Condition {
        column: column.to_string(),
        op,
        operand,
    }
}

/// Set a column.
pub fn set(column: &str, value: Value) -> Assignment {
    Assignment {
        column: column.to_string(),
        change: Change::Set(value),
    }
}

/// Add to an integer column.
pub fn add(column: &str, n: i64) -> Assignment {
    Assignment {
        column: column.to_string(),
        change: Change::Add(n),
    }
}

/// Read a column of a row.
pub fn column<'r>(row: &'r Row, name: &str) -> Option<&'r Value> {
    row.iter().find(|(c, _)| c == name).map(|(_, v)| v)
}

/// Read an integer column (0 if absent or not an integer).
pub fn int(row: &Row, name: &str) -> i64 {
    match column(row, name) {
        Some(Value::Integer(i)) => *i,
        _ => 0,
    }
}

/// Read a text column ("" if absent or not text).
pub fn text<'r>(row: &'r Row, name: &str) -> &'r str {
    match column(row, name) {
        Some(Value::Text(s)) => s,
        _ => "",
    }
}

/// Read a boolean column (false if absent, null or not a boolean).
pub fn flag(row: &Row, name: &str) -> bool {
    matches!(column(row, name), Some(Value::Boolean(true)))
}

/// Read a real column; an integer is widened (0.0 if absent or null).
pub fn real(row: &Row, name: &str) -> f64 {
    match column(row, name) {
        Some(Value::Real(x)) => *x,
        Some(Value::Integer(n)) => *n as f64,
        _ => 0.0,
    }
}

/// Read an optional integer column (None if absent or null).
pub fn opt_int(row: &Row, name: &str) -> Option<i64> {
    match column(row, name) {
        Some(Value::Integer(n)) => Some(*n),
        _ => None,
    }
}

/// Read an optional text column (None if absent or null).
pub fn opt_text(row: &Row, name: &str) -> Option<String> {
    match column(row, name) {
        Some(Value::Text(s)) => Some(s.clone()),
        _ => None,
    }
}
