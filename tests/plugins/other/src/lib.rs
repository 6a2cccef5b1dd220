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
            .get("/receipt-names", |_| {
                let page = Table("receipts").select(
                    vec![],
                    vec![lifelong_sdk::tables::OrderBy { column: "event_id".into(), descending: false }],
                    1000,
                    None,
                )?;
                let names: Vec<String> =
                    page.rows.iter().map(|r| lifelong_sdk::tables::text(r, "name").to_string()).collect();
                Response::json(200, &serde_json::json!({ "names": names }))
            })
            .get("/people/{id}", |req| {
                let p = lifelong_sdk::identity::get(req.param_i64("id")?).map_err(lifelong_sdk::Error::from)?;
                Response::json(200, &serde_json::json!({
                    "name": p.name, "id_number": p.id_number_masked, "birth_date": p.birth_date, "sex": p.sex, "home": p.home_site,
                }))
            })
            .get("/people/{id}/is/{role}/at/{site}", |req| {
                let yes = lifelong_sdk::identity::has_role(req.param_i64("id")?, req.param("role"), req.param("site"))
                    .map_err(lifelong_sdk::Error::from)?;
                Response::json(200, &serde_json::json!({ "yes": yes }))
            })
            .post("/outcomes/{person}", |req| {
                let then_trap = req.query.contains("trap");
                let r = lifelong_sdk::accounts::record_outcome(&lifelong_sdk::accounts::Outcome {
                    person_id: req.param_i64("person")?,
                    kind: "non_formal_learning".into(),
                    title: "书法班结业".into(),
                    quantity: 24.0,
                    occurred_on: "2026-06-30".into(),
                    source_site: "CITY".into(),
                    issuer: None,
                    reference: None,
                    evidence: None,
                    rule: None,
                    idempotency_key: format!("course-7/{}", req.param("person")),
                })
                .map_err(lifelong_sdk::Error::from)?;
                if then_trap {
                    panic!("trapping after recording an outcome");
                }
                Response::json(
                    200,
                    &serde_json::json!({ "entry": r.entry_id, "replayed": r.replayed }),
                )
            })
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
