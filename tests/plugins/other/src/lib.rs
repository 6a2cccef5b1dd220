//! A second plugin with a table of its own.

use lifelong_sdk::tables::Table;
use lifelong_sdk::{export, Plugin, Response, Router, Value};

struct Other;

impl Plugin for Other {
    fn on_event(event: &lifelong_sdk::Event) -> Result<(), String> {
        let switched_on = Table("switch")
            .get(&[Value::Integer(1)])
            .map_err(|e| e.detail)?
            .is_some();
        if event.payload.contains("\"fail\"") && !switched_on {
            return Err("not ready for topic fail".into());
        }
        receive(event)
    }

    fn router() -> Router {
        Router::new()
            .post("/secrets", |_| {
                Table("secrets").insert(&[("secret", Value::Text("only mine".into()))])?;
                Response::json(201, &serde_json::json!({}))
            })
            .post("/switch", |_| {
                Table("switch").insert(&[("id", Value::Integer(1))])?;
                Response::json(201, &serde_json::json!({}))
            })
            .get("/receipts", |_| receipts())
            .get("/sites/{code}", |req| {
                let site = lifelong_sdk::sites::get(req.param("code"))
                    .map_err(lifelong_sdk::Error::from)?;
                let kids = lifelong_sdk::sites::children(req.param("code"))
                    .map_err(lifelong_sdk::Error::from)?;
                Response::json(
                    200,
                    &serde_json::json!({
                        "code": site.code, "level": site.level,
                        "children": kids.iter().map(|k| k.code.clone()).collect::<Vec<_>>(),
                    }),
                )
            })
    }
}

fn receipts() -> lifelong_sdk::Result<Response> {
    let page = Table("receipts").select(
        vec![],
        vec![lifelong_sdk::tables::OrderBy {
            column: "event_id".into(),
            descending: false,
        }],
        1000,
        None,
    )?;
    let ids: Vec<i64> = page
        .rows
        .iter()
        .map(|r| lifelong_sdk::tables::int(r, "event_id"))
        .collect();
    Response::json(200, &serde_json::json!({ "events": ids }))
}

fn receive(event: &lifelong_sdk::Event) -> Result<(), String> {
    Table("receipts")
        .insert(&[
            ("event_id", Value::Integer(event.id)),
            ("name", Value::Text(event.name.clone())),
        ])
        .map(|_| ())
        .map_err(|e| e.detail)
}

export!(Other);
