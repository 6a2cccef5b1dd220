//! The OpenAPI 3.1 document, built from one route table. A test walks the
//! table against the live router, so the document cannot list a route that
//! does not exist.

use axum::response::IntoResponse;
use serde_json::{json, Map, Value};

/// (method, path under /api/v1, summary, needs a bearer token).
pub const ROUTES: &[(&str, &str, &str, bool)] = &[
    (
        "post",
        "/auth/login",
        "Exchange login and password for a bearer token",
        false,
    ),
    (
        "post",
        "/auth/logout",
        "Revoke the bearer token in use",
        true,
    ),
    ("get", "/me", "The signed-in person and their roles", true),
    (
        "get",
        "/sites",
        "List or search sites (q, kind, status, within), cursor-paginated",
        true,
    ),
    ("post", "/sites", "Create a site", true),
    ("get", "/sites/export", "Export sites as CSV", true),
    (
        "post",
        "/sites/import",
        "Import sites from CSV, all-or-nothing",
        true,
    ),
    ("get", "/sites/{site}", "Get a site by id or code", true),
    ("patch", "/sites/{site}", "Edit or move a site", true),
    (
        "post",
        "/sites/{site}/close",
        "Close a site (kept with its history)",
        true,
    ),
    (
        "get",
        "/sites/{site}/children",
        "Direct children of a site",
        true,
    ),
    (
        "get",
        "/sites/{site}/ancestors",
        "Ancestors of a site, city first",
        true,
    ),
    (
        "get",
        "/sites/{site}/subtree",
        "The whole subtree of a site, cursor-paginated",
        true,
    ),
    (
        "get",
        "/persons",
        "Persons whose home site is in a subtree (site=), cursor-paginated",
        true,
    ),
    ("post", "/persons", "Register a person", true),
    (
        "post",
        "/persons/import",
        "Import persons from CSV, all-or-nothing",
        true,
    ),
    (
        "post",
        "/persons/lookup",
        "Find a person by resident ID number",
        true,
    ),
    (
        "get",
        "/persons/{id}",
        "Get a person (ID number and phone masked)",
        true,
    ),
    (
        "get",
        "/persons/{id}/id-number",
        "Read the full ID number (pii_reader; audited)",
        true,
    ),
    (
        "get",
        "/persons/{id}/roles",
        "A person's live role grants",
        true,
    ),
    (
        "post",
        "/persons/{id}/roles",
        "Grant a role at a site",
        true,
    ),
    (
        "delete",
        "/persons/{id}/roles/{grant}",
        "Revoke a role grant",
        true,
    ),
    (
        "get",
        "/persons/{id}/account",
        "A person's lifelong-learning account",
        true,
    ),
    (
        "get",
        "/persons/{id}/account/statement",
        "Account statement: totals by kind and unit, entries",
        true,
    ),
    (
        "post",
        "/persons/{id}/account/{action}",
        "activate, freeze or unfreeze the account",
        true,
    ),
    (
        "post",
        "/ledger/entries",
        "Record a learning outcome (idempotent)",
        true,
    ),
    (
        "post",
        "/ledger/entries/{id}/reverse",
        "Reverse an entry",
        true,
    ),
    ("get", "/rules", "Recognition rules, every version", true),
    ("post", "/rules", "Publish a new rule version", true),
    (
        "post",
        "/ledger/conversions",
        "Convert outcomes under a conversion standard (idempotent)",
        true,
    ),
    (
        "get",
        "/conversion-standards",
        "Conversion standards, every version (admins)",
        true,
    ),
    (
        "post",
        "/conversion-standards",
        "Publish a new conversion-standard version (city admins)",
        true,
    ),
    (
        "get",
        "/audit",
        "The audit log of a subtree, by time (oldest first; order=newest for newest first)",
        true,
    ),
    (
        "get",
        "/indicators",
        "The plan's ten indicators (and plugins' own) for a subtree as of a date, per child",
        true,
    ),
    (
        "get",
        "/indicators/{id}/series",
        "One indicator's yearly (or monthly) series at a site",
        true,
    ),
    (
        "put",
        "/indicators/{id}/targets",
        "Set an indicator's baseline and yearly targets at a site (city admins)",
        true,
    ),
    (
        "get",
        "/indicators/snapshots",
        "Stored indicator snapshots of a site (id, from, to)",
        true,
    ),
    (
        "post",
        "/indicators/snapshots",
        "Snapshot every indicator for a site and its children as of a date",
        true,
    ),
    (
        "get",
        "/indicators/snapshots/{snapshot}/recompute",
        "Recompute a snapshot from the data as of its date",
        true,
    ),
    (
        "post",
        "/indicators/snapshots/{snapshot}/adjust",
        "Adjust a snapshot's value with a note (city admins)",
        true,
    ),
    (
        "get",
        "/circles",
        "15-minute learning circles: coverage per township, uncovered communities",
        true,
    ),
    ("get", "/openapi.json", "This document", false),
    (
        "get",
        "/plugin-settings/{plugin}/{site}",
        "A plugin's settings as they apply at a site",
        true,
    ),
    (
        "put",
        "/plugin-settings/{plugin}/{site}/{name}",
        "Set a plugin's setting at a site (admins over the site; inherited by its subtree)",
        true,
    ),
    (
        "get",
        "/plugin-deliveries/parked",
        "Event deliveries parked after failing too often (city admins)",
        true,
    ),
    (
        "post",
        "/plugin-deliveries/{id}/{subscriber}/replay",
        "Put a parked event delivery back in line (city admins)",
        true,
    ),
    (
        "get",
        "/plugin-registry",
        "Installed plugins, with their explicit site enablement and grants",
        true,
    ),
    (
        "post",
        "/plugin-registry",
        "Install a plugin from a signed package (body: the .llpkg file; city admins, or for a site-bound publisher its site's plugin_publisher holders and admins)",
        true,
    ),
    ("get", "/plugin-registry/{plugin}", "One installed plugin", true),
    (
        "delete",
        "/plugin-registry/{plugin}",
        "Remove a plugin (?purge=true also drops its data; city admins)",
        true,
    ),
    (
        "post",
        "/plugin-registry/{plugin}/upgrade",
        "Upgrade to a higher version from a package, migrating and snapshotting its tables (city admins, or a bound publisher's site; 202 with an approval request when it asks for more than the city approved)",
        true,
    ),
    (
        "post",
        "/plugin-registry/{plugin}/rollback",
        "Return to the version before the last upgrade, with its data (city admins)",
        true,
    ),
    (
        "get",
        "/plugin-registry/{plugin}/logs",
        "The plugin's recent log lines on this node (city admins)",
        true,
    ),
    (
        "get",
        "/plugin-registry/{plugin}/metrics",
        "The plugin's counters on this node per loaded version: calls, errors by kind, latency, peak memory, deliveries (city admins)",
        true,
    ),
    (
        "get",
        "/sites/{site}/plugins",
        "Every installed plugin at a site: enabled here, inherited from above or off (blocked: why the site may not run it), and each asked capability granted where",
        true,
    ),
    (
        "put",
        "/plugin-registry/{plugin}/sites/{site}/enabled",
        "Enable or disable the plugin at a site and its subtree (admins over the site, within a bound publisher's subtree; 202 with an approval request when the city must approve a first enable)",
        true,
    ),
    (
        "put",
        "/plugin-registry/{plugin}/sites/{site}/grants",
        "Grant or refuse capabilities at a site and its subtree (admins over the site)",
        true,
    ),
    (
        "get",
        "/plugin-publishers",
        "The trust store: publishers and their public keys (city admins)",
        true,
    ),
    (
        "put",
        "/plugin-publishers/{publisher}",
        "Trust a publisher's Ed25519 public key, city-wide or bound to a site with a capability ceiling and approval (body: public_key, site, capabilities, roles, approval; a field left out keeps its value, \"site\": null makes it city-wide; city admins)",
        true,
    ),
    (
        "get",
        "/plugin-publishers/{publisher}/quotas",
        "A publisher's plugin quotas: the city's override and the defaults (city admins)",
        true,
    ),
    (
        "put",
        "/plugin-publishers/{publisher}/quotas",
        "Replace a publisher's plugin quotas (rows, bytes, site_rows, site_bytes, calls_per_minute, events_per_minute, log_lines_per_minute; {} removes the override; city admins)",
        true,
    ),
    (
        "post",
        "/plugin-publishers/{publisher}/revoke",
        "Revoke a publisher: its packages refused, its plugins disabled at every site, data kept (city admins)",
        true,
    ),
    (
        "get",
        "/plugin-approvals",
        "The approval queue (?status=pending|approved|refused|all; city admins)",
        true,
    ),
    (
        "get",
        "/plugin-approvals/{id}",
        "One approval request (city admins, and whoever may publish the plugin)",
        true,
    ),
    (
        "post",
        "/plugin-approvals/{id}/approve",
        "Approve a request: the enable or upgrade happens now (body: optional reason; city admins)",
        true,
    ),
    (
        "post",
        "/plugin-approvals/{id}/refuse",
        "Refuse a request with a reason (city admins)",
        true,
    ),
    (
        "get",
        "/plugins/{plugin}/{path}",
        "A plugin's read-only route (site in context: ?site=CODE, default the caller's home site)",
        false,
    ),
    (
        "post",
        "/plugins/{plugin}/{path}",
        "A plugin's writing route (also PUT, PATCH, DELETE)",
        false,
    ),
];

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, summary, auth) in ROUTES {
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let mut op = json!({
            "summary": summary,
            "operationId": format!("{method}{}", path.replace(['/', '{', '}', '-'], "_")),
            "responses": {
                "200": { "description": "Success" },
                "default": { "description": "Error", "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } }
            }
        });
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if *auth {
            op["security"] = json!([{ "bearer": [] }]);
        }
        if matches!(*method, "post" | "patch") {
            op["requestBody"] =
                json!({ "content": { "application/json": { "schema": { "type": "object" } } } });
        }
        let entry = paths
            .entry(format!("/api/v1{path}"))
            .or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Lifelong kernel API", "version": "1.0.0" },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "description": "RFC 9457 problem details",
                    "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": { "type": "string" },
                        "title": { "type": "string" },
                        "status": { "type": "integer" },
                        "detail": { "type": "string" },
                        "errors": { "type": "array", "items": { "type": "object", "properties": {
                            "field": { "type": "string" }, "message": { "type": "string" } } } }
                    }
                }
            }
        }
    })
}

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> impl IntoResponse {
    axum::Json(document())
}
