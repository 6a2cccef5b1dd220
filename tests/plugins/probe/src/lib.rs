//! A plugin that misbehaves on request, for the runtime's tests.

use lifelong_sdk::tables::{add, cmp, cmp_columns, eq, int, Op, OrderBy, Table};
use lifelong_sdk::{export, publish, Error, Plugin, Response, Router, Value};

const SEATS: Table = Table("seats");
const NOTES: Table = Table("notes");
const MARKS_AFTER: Table = Table("marks");

struct Probe;

fn recurse(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        // Keep the frame alive so the recursion is not turned into a loop.
        let pad = std::hint::black_box([n; 16]);
        recurse(n - 1) + pad[3]
    }
}

impl Plugin for Probe {
    fn on_event(event: &lifelong_sdk::Event) -> Result<(), String> {
        receive(event)
    }

    /// Indicators for the indicator contract's tests (a test's manifest
    /// variant declares them): `1` counts the sites of the asked subtree
    /// opened on or before the date; the others misbehave on purpose.
    fn indicators() -> lifelong_sdk::Indicators {
        lifelong_sdk::Indicators::new()
            .provide("1", |q| {
                let sites = lifelong_sdk::sites::subtree(&q.site)?;
                Ok(Some(
                    sites.iter().filter(|s| q.includes(&s.opened_on)).count() as f64,
                ))
            })
            .provide("probe.setting", |_| {
                match lifelong_sdk::settings::get("min_age")? {
                    Value::Integer(n) => Ok(Some(n as f64)),
                    other => Err(Error::internal(format!("min_age is {other:?}"))),
                }
            })
            .provide("probe.trap", |_| {
                panic!("the indicator panicked on purpose")
            })
            .provide("probe.spin", |_| {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            })
            .provide("probe.write", |_| {
                NOTES.insert(&[
                    ("topic", Value::Text("indicator".into())),
                    ("body", Value::Text("x".into())),
                    ("at", Value::Integer(1)),
                ])?;
                Ok(Some(1.0))
            })
            .provide("probe.refuse", |_| {
                Err(Error::conflict("no figures before the census"))
            })
            .provide("probe.nan", |_| Ok(Some(f64::NAN)))
            .provide("probe.none", |_| Ok(None))
    }

    fn router() -> Router {
        Router::new()
            .get("/receipts", |_| receipts())
            .get("/settings/{name}", |req| {
                let v = lifelong_sdk::settings::get(req.param("name")).map_err(lifelong_sdk::Error::from)?;
                let v = match v {
                    Value::Integer(i) => serde_json::json!(i),
                    Value::Text(t) => serde_json::json!(t),
                    Value::Boolean(b) => serde_json::json!(b),
                    Value::Real(r) => serde_json::json!(r),
                    _ => serde_json::Value::Null,
                };
                Response::json(200, &serde_json::json!({ "value": v }))
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
                // `?trap` panics once record-outcome has answered (either
                // way); a JSON body may change kind, quantity, occurred_on
                // and the idempotency key.
                let then_trap = req.query.contains("trap");
                let b: serde_json::Value = if req.body.is_empty() { serde_json::json!({}) } else { req.json()? };
                let r = lifelong_sdk::accounts::record_outcome(&lifelong_sdk::accounts::Outcome {
                    person_id: req.param_i64("person")?,
                    kind: b["kind"].as_str().unwrap_or("non_formal_learning").into(),
                    title: "书法班结业".into(),
                    quantity: b["quantity"].as_f64().unwrap_or(24.0),
                    occurred_on: b["occurred_on"].as_str().unwrap_or("2026-06-30").into(),
                    source_site: "CITY".into(),
                    issuer: None,
                    reference: None,
                    evidence: None,
                    rule: None,
                    idempotency_key: b["key"].as_str().map_or_else(|| format!("course-7/{}", req.param("person")), Into::into),
                });
                if then_trap {
                    panic!("trapping after recording an outcome");
                }
                let r = r.map_err(lifelong_sdk::Error::from)?;
                NOTES.insert(&[("topic", Value::Text("outcome".into())), ("body", Value::Text("noted".into())), ("at", Value::Integer(1))])?;
                Response::json(200, &serde_json::json!({ "entry": r.entry_id, "replayed": r.replayed }))
            })
            .post("/grants/{person}/{role}/at/{site}", grant_role)
            .get("/grants/{person}/{role}/at/{site}", grant_role)
            .post("/reversals", reverse_outcome)
            .post("/conversions", convert_outcomes)
            .get("/reversals", reverse_outcome)
            .get("/sites/{code}", |req| {
                let site = lifelong_sdk::sites::get(req.param("code")).map_err(lifelong_sdk::Error::from)?;
                let kids = lifelong_sdk::sites::children(req.param("code")).map_err(lifelong_sdk::Error::from)?;
                Response::json(200, &serde_json::json!({
                    "code": site.code, "level": site.level,
                    "children": kids.iter().map(|k| k.code.clone()).collect::<Vec<_>>(),
                }))
            })
            .get("/subtree/{code}", |req| {
                let all = lifelong_sdk::sites::subtree(req.param("code")).map_err(lifelong_sdk::Error::from)?;
                let enabled = lifelong_sdk::sites::module_enabled(req.param("code")).map_err(lifelong_sdk::Error::from)?;
                Response::json(200, &serde_json::json!({
                    "codes": all.iter().map(|s| s.code.clone()).collect::<Vec<_>>(),
                    "enabled": enabled,
                }))
            })
            .get("/accounts/{person}", |req| {
                let person = req.param_i64("person")?;
                let a = lifelong_sdk::accounts::get_account(person).map_err(lifelong_sdk::Error::from)?;
                let entries = lifelong_sdk::accounts::statement(person, 0, 10).map_err(lifelong_sdk::Error::from)?;
                Response::json(200, &serde_json::json!({
                    "status": a.status, "entries": a.entry_count, "credits": a.total_credits,
                    "titles": entries.iter().map(|e| e.title.clone()).collect::<Vec<_>>(),
                    "origins": entries.iter().map(|e| e.origin.clone()).collect::<Vec<_>>(),
                }))
            })
            .post("/slow/{ms}", |req| {
                // Holds its write transaction for `ms` milliseconds.
                NOTES.insert(&[("topic", Value::Text("slow".into())), ("body", Value::Text(String::new())), ("at", Value::Integer(0))])?;
                let until = lifelong_sdk::clock::now_micros() + req.param_i64("ms")? * 1000;
                while lifelong_sdk::clock::now_micros() < until {}
                Response::json(200, &serde_json::json!({ "slow": true }))
            })
            .get("/ok", |_| Response::json(200, &serde_json::json!({ "ok": true })))
            .get("/clock/{n}", |req| {
                lifelong_sdk::log::info("clock started");
                let mut last = 0;
                for _ in 0..req.param_i64("n")? {
                    last = std::hint::black_box(lifelong_sdk::clock::now_micros());
                }
                Response::json(200, &serde_json::json!({ "last": last }))
            })
            .get("/loop", |_| {
                // Tests wait for this line to know the loop has begun.
                lifelong_sdk::log::info("looping");
                let mut i: u64 = 0;
                loop {
                    i = std::hint::black_box(i.wrapping_add(1));
                }
            })
            .get("/bomb", |_| {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            })
            .get("/recurse", |_| Response::json(200, &recurse(std::hint::black_box(u64::MAX / 2))))
            .get("/panic", |_| panic!("the probe was asked to panic"))
            .post("/conflict-then-write/{n}", |req| {
                // A duplicate key handled as "already there", then more writes.
                let n = req.param_i64("n")?;
                let receipts = Table("receipts");
                let row = |name: &str| [("event_id", Value::Integer(-n)), ("name", Value::Text(name.into()))];
                receipts.insert(&row("first"))?;
                let again = receipts.insert(&row("again"));
                let status = again.as_ref().err().map_or(0, |e| e.status);
                MARKS_AFTER.insert(&[("score", Value::Integer(n))])?;
                Response::json(201, &serde_json::json!({ "duplicate_status": status }))
            })
            .post("/marks/{n}", |req| {
                // Every optional column NULL when n is even, a value when odd.
                let n = req.param_i64("n")?;
                let v = |value: Value| if n % 2 == 0 { Value::Null } else { value };
                let row = Table("marks").insert(&[
                    ("score", v(Value::Integer(n))),
                    ("weight", v(Value::Real(n as f64 / 2.0))),
                    ("passed", v(Value::Boolean(true))),
                    ("note", v(Value::Text(format!("mark {n}")))),
                    ("scan", v(Value::Blob(vec![0, 1, 2]))),
                ])?;
                let score = match row.iter().find(|(c, _)| c == "score") {
                    Some((_, Value::Integer(i))) => serde_json::json!(i),
                    _ => serde_json::Value::Null,
                };
                Response::json(201, &serde_json::json!({ "score": score }))
            })
            .post("/seats", |req| {
                let cap: i64 = req.json::<serde_json::Value>()?["capacity"].as_i64().unwrap_or(0);
                let row = SEATS.insert(&[("taken", Value::Integer(0)), ("capacity", Value::Integer(cap))])?;
                lifelong_sdk::log::info(&format!("seat row {} created", int(&row, "id")));
                Response::json(201, &serde_json::json!({ "id": int(&row, "id") }))
            })
            .post("/seats/{id}/take", |req| {
                let id = req.param_i64("id")?;
                let n = SEATS.update_where(
                    &[eq("id", Value::Integer(id)), cmp_columns("taken", Op::Lt, "capacity")],
                    &[add("taken", 1)],
                )?;
                if n == 0 {
                    return Err(Error::conflict("the course is full"));
                }
                Response::json(200, &serde_json::json!({ "taken": true }))
            })
            .get("/seats/{id}", |req| {
                let row = SEATS
                    .get(&[Value::Integer(req.param_i64("id")?)])?
                    .ok_or_else(|| Error::not_found("no such seat row"))?;
                Response::json(200, &serde_json::json!({ "taken": int(&row, "taken"), "capacity": int(&row, "capacity") }))
            })
            .post("/notes/{topic}/then-trap", |req| {
                NOTES.insert(&[
                    ("topic", Value::Text(req.param("topic").into())),
                    ("body", Value::Text("written before the trap".into())),
                    ("at", Value::Integer(1)),
                ])?;
                publish("touched", &serde_json::json!({ "topic": req.param("topic") }))?;
                panic!("trapping after a write");
            })
            .post("/notes/{topic}", |req| {
                NOTES.insert(&[
                    ("topic", Value::Text(req.param("topic").into())),
                    ("body", Value::Text(req.json::<serde_json::Value>()?["body"].as_str().unwrap_or("").into())),
                    ("at", Value::Integer(lifelong_sdk::clock::now_micros())),
                ])?;
                publish("touched", &serde_json::json!({ "topic": req.param("topic") }))?;
                Response::json(201, &serde_json::json!({}))
            })
            .get("/notes/{topic}", |req| {
                let page = NOTES.select(
                    vec![eq("topic", Value::Text(req.param("topic").into())), cmp("at", Op::Gt, Value::Integer(0))],
                    vec![OrderBy { column: "at".into(), descending: false }],
                    100,
                    None,
                )?;
                Response::json(200, &serde_json::json!({ "count": page.rows.len() }))
            })
            // Quotas (tests/tests/plugins/quotas.rs): n rows, events or
            // log lines in one call; a delete; a body grown to n bytes.
            .post("/quota/notes/{n}", |req| {
                let mut last = 0;
                for i in 0..req.param_i64("n")? {
                    let row = NOTES.insert(&[
                        ("topic", Value::Text("quota".into())),
                        ("body", Value::Text("0123456789".into())),
                        ("at", Value::Integer(i + 1)),
                    ])?;
                    last = int(&row, "id");
                }
                Response::json(201, &serde_json::json!({ "last": last }))
            })
            .post("/quota/events/{n}", |req| {
                for i in 0..req.param_i64("n")? {
                    publish("touched", &serde_json::json!({ "quota": i }))?;
                }
                Response::json(201, &serde_json::json!({}))
            })
            .post("/quota/logs/{n}", |req| {
                for i in 0..req.param_i64("n")? {
                    lifelong_sdk::log::info(&format!("quota line {i}"));
                }
                Response::json(201, &serde_json::json!({}))
            })
            .post("/quota/delete/{id}", |req| {
                let gone = NOTES.delete(&[Value::Integer(req.param_i64("id")?)])?;
                Response::json(200, &serde_json::json!({ "deleted": gone }))
            })
            .post("/quota/grow/{id}/{n}", |req| {
                let body = "x".repeat(req.param_i64("n")? as usize);
                let hit = NOTES.update(&[Value::Integer(req.param_i64("id")?)], &[("body", Value::Text(body))])?;
                Response::json(200, &serde_json::json!({ "updated": hit }))
            })
            .get("/inject", |_| {
                // A primary-key hit would allow any order; the column must still exist.
                NOTES.select(
                    vec![eq("id", Value::Integer(1))],
                    vec![OrderBy { column: "at; DROP TABLE plg_probe__seats".into(), descending: false }],
                    10,
                    None,
                )?;
                Response::json(200, &serde_json::json!({}))
            })
            .post("/duplicate-columns", |_| {
                NOTES.insert(&[
                    ("topic", Value::Text("a".into())),
                    ("topic", Value::Text("b".into())),
                    ("body", Value::Text("x".into())),
                    ("at", Value::Integer(1)),
                ])?;
                Response::json(200, &serde_json::json!({}))
            })
            .get("/unindexed", |_| {
                NOTES.select(vec![eq("body", Value::Text("x".into()))], vec![], 10, None)?;
                Response::json(200, &serde_json::json!({}))
            })
            .get("/reach/{table}", |req| {
                // Tables are looked up in this plugin's own namespace only.
                let t: &'static str = Box::leak(req.param("table").to_string().into_boxed_str());
                Table(t).get(&[Value::Integer(1)])?;
                Response::json(200, &serde_json::json!({ "reached": t }))
            })
            .get("/publish-undeclared", |_| {
                publish("not-declared", &serde_json::json!({}))?;
                Response::json(200, &serde_json::json!({}))
            })
            .post("/write-in-get", |_| Response::json(200, &serde_json::json!({})))
            .get("/write-in-get", |_| {
                NOTES.insert(&[("topic", Value::Text("x".into())), ("body", Value::Text("x".into())), ("at", Value::Integer(1))])?;
                Response::json(200, &serde_json::json!({}))
            })
    }
}

/// Host API 1.2: grant a role (the route is served for GET too, which
/// the kernel must refuse as read-only).
fn grant_role(req: &lifelong_sdk::Request) -> lifelong_sdk::Result<Response> {
    let granted = lifelong_sdk::identity::grant_role(
        req.param_i64("person")?,
        req.param("role"),
        req.param("site"),
    )
    .map_err(lifelong_sdk::Error::from)?;
    Response::json(200, &serde_json::json!({ "granted": granted }))
}

/// Host API 1.2: reverse this plugin's outcome recorded under `key`
/// (`?trap` panics once the kernel has answered).
fn reverse_outcome(req: &lifelong_sdk::Request) -> lifelong_sdk::Result<Response> {
    let b: serde_json::Value = if req.body.is_empty() {
        serde_json::json!({})
    } else {
        req.json()?
    };
    let r = lifelong_sdk::accounts::reverse_outcome(
        b["key"].as_str().unwrap_or_default(),
        b["reason"].as_str().unwrap_or_default(),
    );
    if req.query.contains("trap") {
        panic!("trapping after reversing an outcome");
    }
    let r = r.map_err(lifelong_sdk::Error::from)?;
    Response::json(
        200,
        &serde_json::json!({ "entry": r.entry_id, "credits": r.credits, "replayed": r.replayed }),
    )
}

/// Host API 1.3: convert the entries `sources` of `person` under
/// `standard`, keyed by `key`.
fn convert_outcomes(req: &lifelong_sdk::Request) -> lifelong_sdk::Result<Response> {
    let b: serde_json::Value = req.json()?;
    let c = lifelong_sdk::accounts::convert(&lifelong_sdk::accounts::Conversion {
        person_id: b["person"].as_i64().unwrap_or_default(),
        standard: b["standard"].as_str().unwrap_or_default().into(),
        sources: b["sources"]
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_i64).collect())
            .unwrap_or_default(),
        idempotency_key: b["key"].as_str().unwrap_or_default().into(),
    })
    .map_err(lifelong_sdk::Error::from)?;
    Response::json(
        200,
        &serde_json::json!({
            "entry": c.entry_id, "kind": c.kind, "quantity": c.quantity, "credits": c.credits,
            "version": c.standard_version, "replayed": c.replayed
        }),
    )
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

export!(Probe);
