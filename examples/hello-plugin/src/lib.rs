//! The smallest Lifelong plugin: greets people by name and counts how often
//! each name was greeted, in a table it declares in `plugin.toml`.

use lifelong_sdk::tables::{add, eq, int, Table};
use lifelong_sdk::{export, Error, Plugin, Response, Router, Value};

const GREETINGS: Table = Table("greetings");

struct Hello;

impl Plugin for Hello {
    fn router() -> Router {
        Router::new()
            // Read-only: GET calls run in a read-only transaction.
            .get("/greetings/{name}", |req| {
                let name = req.param("name");
                let page = GREETINGS.select(
                    vec![eq("name", Value::Text(name.into()))],
                    vec![],
                    1,
                    None,
                )?;
                let count = page.rows.first().map_or(0, |r| int(r, "count"));
                Response::json(200, &serde_json::json!({ "name": name, "count": count }))
            })
            // Writing: insert the name once, then add one without a race.
            .post("/greetings/{name}", |req| {
                let name = req.param("name");
                if name.chars().count() > 40 {
                    return Err(Error::bad_request("name must be at most 40 characters"));
                }
                let bumped = GREETINGS
                    .update_where(&[eq("name", Value::Text(name.into()))], &[add("count", 1)])?;
                if bumped == 0 {
                    GREETINGS.insert(&[
                        ("name", Value::Text(name.into())),
                        ("count", Value::Integer(1)),
                    ])?;
                }
                Response::json(200, &serde_json::json!({ "hello": name }))
            })
    }
}

export!(Hello);
