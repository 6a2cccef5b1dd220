//! Which queries a table accepts (the index rule) and the opaque cursors of
//! keyset pagination.

use super::{invalid, Condition, Op, Operand, Res, TableError, Value};
use crate::plugins::manifest::TableDef;

/// Check that a declared access path serves the conditions, the order and
/// the grouping; otherwise name the index that would.
pub(super) fn served(
    t: &TableDef,
    conds: &[Condition],
    order: &[(String, bool)],
    group_by: &[String],
) -> Res<()> {
    let eq: Vec<&str> = conds
        .iter()
        .filter(|c| c.op == Op::Eq && matches!(c.operand, Operand::Value(_)))
        .map(|c| c.column.as_str())
        .collect();
    for path in t.access_paths() {
        let k = path.iter().take_while(|c| eq.contains(&c.as_str())).count();
        // Every equality must be on the prefix.
        if eq.iter().any(|c| !path[..k].iter().any(|p| p == c)) {
            continue;
        }
        let unique = k == path.len() && (path == &t.primary_key || t.unique.contains(path));
        let rest = &path[k..];
        let others: Vec<&Condition> = conds
            .iter()
            .filter(|c| !(c.op == Op::Eq && matches!(c.operand, Operand::Value(_))))
            .collect();
        // Range conditions on the next column; anything else only on a unique hit.
        let ranged = others.iter().all(|c| {
            unique
                || (matches!(c.op, Op::Lt | Op::Le | Op::Gt | Op::Ge)
                    && matches!(c.operand, Operand::Value(_))
                    && rest.first() == Some(&c.column))
        });
        let ordered = order.is_empty()
            || unique
            || order
                .iter()
                .map(|o| &o.0)
                .zip(rest.iter())
                .all(|(a, b)| a == b)
                && order.len() <= rest.len();
        let grouped = group_by.iter().all(|g| path.contains(g));
        let bounded = k > 0 || !others.is_empty() || !order.is_empty() || !group_by.is_empty();
        if ranged && ordered && grouped && bounded {
            return Ok(());
        }
    }
    let mut want: Vec<String> = eq.iter().map(|c| c.to_string()).collect();
    for c in conds.iter().filter(|c| c.op != Op::Eq) {
        if !want.contains(&c.column) {
            want.push(c.column.clone());
        }
    }
    for c in order.iter().map(|o| &o.0).chain(group_by) {
        if !want.contains(c) {
            want.push(c.clone());
        }
    }
    Err(TableError::MissingIndex(format!(
        "no declared index of {} serves this query; declare an index on ({})",
        t.name,
        want.join(", ")
    )))
}

pub(super) fn encode_cursor(vals: &[&Value]) -> String {
    use base64::Engine;
    let json: Vec<serde_json::Value> = vals
        .iter()
        .map(|v| match v {
            Value::Null => serde_json::Value::Null,
            Value::Integer(i) => serde_json::json!({ "i": i }),
            Value::Real(f) => serde_json::json!({ "r": f }),
            Value::Text(s) => serde_json::json!({ "t": s }),
            Value::Boolean(b) => serde_json::json!({ "b": b }),
            Value::Blob(b) => serde_json::json!({ "x": hex::encode(b) }),
        })
        .collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::Value::Array(json).to_string())
}

pub(super) fn decode_cursor(cursor: &str, n: usize) -> Res<Vec<Value>> {
    use base64::Engine;
    let bad = || invalid("the cursor is not one this query returned");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let json: Vec<serde_json::Value> = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if json.len() != n {
        return Err(bad());
    }
    json.into_iter()
        .map(|v| {
            Ok(match v {
                serde_json::Value::Null => Value::Null,
                serde_json::Value::Object(o) => match o.into_iter().next() {
                    Some((k, v)) if k == "i" => Value::Integer(v.as_i64().ok_or_else(bad)?),
                    Some((k, v)) if k == "r" => Value::Real(v.as_f64().ok_or_else(bad)?),
                    Some((k, v)) if k == "t" => {
                        Value::Text(v.as_str().ok_or_else(bad)?.to_string())
                    }
                    Some((k, v)) if k == "b" => Value::Boolean(v.as_bool().ok_or_else(bad)?),
                    Some((k, v)) if k == "x" => {
                        Value::Blob(hex::decode(v.as_str().ok_or_else(bad)?).map_err(|_| bad())?)
                    }
                    _ => return Err(bad()),
                },
                _ => return Err(bad()),
            })
        })
        .collect()
}
