//! A second plugin with a table of its own.

use lifelong_sdk::tables::Table;
use lifelong_sdk::{export, Plugin, Response, Router, Value};

struct Other;

impl Plugin for Other {
    fn router() -> Router {
        Router::new().post("/secrets", |_| {
            Table("secrets").insert(&[("secret", Value::Text("only mine".into()))])?;
            Response::json(201, &serde_json::json!({}))
        })
    }
}

export!(Other);
