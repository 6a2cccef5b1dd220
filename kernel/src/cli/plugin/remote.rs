//! `lifelong plugin remote …`: what an institution's `plugin_publisher`
//! holders and site admins do from their own machine, through a node's HTTP
//! API with their own token (`LIFELONG_TOKEN`, from `POST /api/v1/auth/login`),
//! so every check and audit record is the API's, under their name. The rest
//! of `lifelong plugin` acts on the database as the operator.

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::{json, Value};
use std::path::PathBuf;

/// `lifelong plugin remote --server URL …`
#[derive(Subcommand, Debug)]
pub enum RemoteAction {
    /// Install a new plugin from a package file.
    Install {
        /// The package file.
        package: PathBuf,
    },
    /// Upgrade from a package file (may wait for the city's approval).
    Upgrade {
        /// The package file.
        package: PathBuf,
    },
    /// Return to the version before the last upgrade.
    Rollback {
        /// The plugin id.
        plugin: String,
    },
    /// Uninstall a plugin; its tables are kept unless --purge.
    Remove {
        /// The plugin id.
        plugin: String,
        /// Also drop its tables, settings and stored versions.
        #[arg(long)]
        purge: bool,
    },
    /// Grant capabilities at a site and its subtree.
    Grant {
        /// The plugin id.
        plugin: String,
        /// Site code.
        #[arg(long)]
        site: String,
        /// Capabilities.
        #[arg(required = true)]
        capabilities: Vec<String>,
    },
    /// Enable at a site and its subtree (may wait for the city's approval).
    Enable {
        /// The plugin id.
        plugin: String,
        /// Site code.
        #[arg(long)]
        site: String,
    },
    /// Disable at a site and its subtree (data kept).
    Disable {
        /// The plugin id.
        plugin: String,
        /// Site code.
        #[arg(long)]
        site: String,
    },
    /// Show an approval request and its decision.
    Request {
        /// The request id.
        id: i64,
    },
}

fn read(path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Run one remote action against `server` with `token`.
pub async fn run(server: &str, token: &str, action: RemoteAction) -> Result<()> {
    let base = server.trim_end_matches('/');
    if !base.starts_with("http://") {
        bail!("--server must be a node's http://host:port (the kernel speaks plain HTTP; TLS ends at the load balancer)");
    }
    let api = |p: &str| format!("{base}/api/v1{p}");
    let client = reqwest::Client::new();
    let put_json = |url: String, body: Value| {
        client
            .put(url)
            .header("content-type", "application/json")
            .body(body.to_string())
    };
    let req = match &action {
        RemoteAction::Install { package } => client
            .post(api("/plugin-registry"))
            .header("content-type", "application/octet-stream")
            .body(read(package)?),
        RemoteAction::Upgrade { package } => {
            let bytes = read(package)?;
            let pkg = crate::plugins::package::Package::decode(&bytes)?;
            client
                .post(api(&format!(
                    "/plugin-registry/{}/upgrade",
                    pkg.manifest.id
                )))
                .header("content-type", "application/octet-stream")
                .body(bytes)
        }
        RemoteAction::Rollback { plugin } => {
            client.post(api(&format!("/plugin-registry/{plugin}/rollback")))
        }
        RemoteAction::Remove { plugin, purge } => {
            client.delete(api(&format!("/plugin-registry/{plugin}?purge={purge}")))
        }
        RemoteAction::Grant {
            plugin,
            site,
            capabilities,
        } => put_json(
            api(&format!("/plugin-registry/{plugin}/sites/{site}/grants")),
            json!({ "capabilities": capabilities }),
        ),
        RemoteAction::Enable { plugin, site } | RemoteAction::Disable { plugin, site } => put_json(
            api(&format!("/plugin-registry/{plugin}/sites/{site}/enabled")),
            json!({ "enabled": matches!(action, RemoteAction::Enable { .. }) }),
        ),
        RemoteAction::Request { id } => client.get(api(&format!("/plugin-approvals/{id}"))),
    };
    let res = req
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status >= 400 {
        match v["detail"].as_str() {
            Some(d) => bail!("{d}"),
            None => bail!("the server answered HTTP {status}"),
        }
    }
    if status == 202 {
        let r = &v["request"];
        match &action {
            RemoteAction::Upgrade { .. } => println!(
                "the upgrade of {} to {} waits for the city's approval as request {}",
                r["plugin"].as_str().unwrap_or("?"),
                r["version"].as_str().unwrap_or("?"),
                r["id"]
            ),
            _ => println!(
                "enabling {} at {} waits for the city's approval as request {}",
                r["plugin"].as_str().unwrap_or("?"),
                r["site"].as_str().unwrap_or("?"),
                r["id"]
            ),
        }
        return Ok(());
    }
    let s = |k: &str| v[k].as_str().unwrap_or("?").to_string();
    match action {
        RemoteAction::Install { .. } => println!(
            "installed {} {} by {}",
            s("id"),
            s("version"),
            s("publisher")
        ),
        RemoteAction::Upgrade { .. } => println!(
            "upgraded {} to {} (was {})",
            s("id"),
            s("version"),
            s("previous")
        ),
        RemoteAction::Rollback { .. } => println!("rolled back {} to {}", s("id"), s("version")),
        RemoteAction::Remove { plugin, .. } => println!("removed {plugin}"),
        RemoteAction::Grant {
            plugin,
            site,
            capabilities,
        } => println!(
            "granted {} to {plugin} at {site} and below",
            capabilities.join(", ")
        ),
        RemoteAction::Enable { plugin, site } => {
            println!("{plugin} is enabled at {site} and below")
        }
        RemoteAction::Disable { plugin, site } => {
            println!("{plugin} is disabled at {site} and below (its data is kept)")
        }
        RemoteAction::Request { id } => println!(
            "request {id} [{}]: {} {} {}{}{}",
            s("status"),
            s("kind"),
            s("plugin"),
            s("version"),
            v["site"]
                .as_str()
                .map(|x| format!(" at {x}"))
                .unwrap_or_default(),
            v["reason"]
                .as_str()
                .map(|r| format!("; reason: {r}"))
                .unwrap_or_default()
        ),
    }
    Ok(())
}
