//! `lifelong plugin …`: build, sign and manage plugin packages. Commands
//! that change the registry act on the database directly as the console
//! operator (audited as `system:cli`); a running kernel picks the change
//! up within one delivery-loop pass.

use crate::authz::Actor;
use crate::config::Config;
use crate::plugins::package::{self, Package, PublisherKey};
use crate::plugins::registry::{Approval, Binding, PluginInfo, Publisher, Registry};
use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::PathBuf;

mod remote;

/// `lifelong plugin …`
#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Build a plugin crate into a package file (needs cargo and the wasm32-unknown-unknown target).
    Build {
        /// The plugin crate (with Cargo.toml and plugin.toml).
        dir: PathBuf,
        /// The package file to write (default: <id>-<version>.llpkg here).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Sign with this publisher key file.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Make a publisher signing key; prints the public key for the trust store.
    Keygen {
        /// The publisher (as named in manifests).
        #[arg(long)]
        publisher: String,
        /// The key file to create (mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a package file in place.
    Sign {
        /// The package file.
        package: PathBuf,
        /// The publisher key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Add (or change) a publisher's entry in the trust store: its key,
    /// and for an institution's publisher the site it is bound to and its
    /// capability ceiling (an option left out keeps the current value).
    /// Trusting a revoked publisher again re-enables nothing.
    Trust {
        /// The publisher.
        publisher: String,
        /// Its Ed25519 public key, 64 hex digits.
        public_key: String,
        /// Bind it to this site (code): its packages are installed by that
        /// site's plugin_publisher holders and admins, and its plugins run
        /// only there and below. Without it (and without --city-wide): a new
        /// publisher is city-wide, an existing one keeps its binding.
        #[arg(long, conflicts_with = "city_wide")]
        site: Option<String>,
        /// Make it city-wide (city admins only install its packages); an
        /// option left out keeps the entry's current value.
        #[arg(long)]
        city_wide: bool,
        /// The capabilities its plugins may ask for (default for a bound publisher: none).
        #[arg(long, value_delimiter = ',')]
        capabilities: Option<Vec<String>>,
        /// The roles identity.grant may name (needs identity.grant in --capabilities).
        #[arg(long, value_delimiter = ',')]
        roles: Option<Vec<String>>,
        /// Whether first enables and upgrades asking for more wait for a city
        /// admin's approval (default: yes for a bound publisher, no otherwise).
        #[arg(long)]
        approval: Option<bool>,
    },
    /// Revoke a publisher: its packages are refused and its plugins disabled at every site (data kept).
    RevokePublisher {
        /// The publisher.
        publisher: String,
    },
    /// List the trust store: publishers, their binding, ceiling and status.
    Publishers,
    /// List approval requests (pending unless --status).
    Approvals {
        /// pending, approved, refused or all.
        #[arg(long, default_value = "pending")]
        status: String,
    },
    /// Approve a pending request: the enable or upgrade it asks for happens now.
    Approve {
        /// The request id.
        id: i64,
        /// A note kept with the decision.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Act as yourself through a node's HTTP API (an institution's
    /// plugin_publisher or site admin): install, upgrade, roll back, remove,
    /// grant, enable, follow an approval request. Token: LIFELONG_TOKEN.
    Remote {
        /// The node, http://host:port.
        #[arg(long, env = "LIFELONG_SERVER")]
        server: String,
        /// Your bearer token (from POST /api/v1/auth/login).
        #[arg(long, env = "LIFELONG_TOKEN", hide_env_values = true)]
        token: String,
        #[command(subcommand)]
        action: remote::RemoteAction,
    },
    /// Refuse a pending request, saying why.
    Refuse {
        /// The request id.
        id: i64,
        /// Why (the institution reads it).
        #[arg(long)]
        reason: String,
    },
    /// Install a new plugin from a package file.
    Install {
        /// The package file.
        package: PathBuf,
    },
    /// List the installed plugins.
    List,
    /// Show one installed plugin, its sites and grants.
    Info {
        /// The plugin id.
        plugin: String,
    },
    /// Enable a plugin at a site and its subtree.
    Enable {
        /// The plugin id.
        plugin: String,
        /// Site code.
        #[arg(long)]
        site: String,
    },
    /// Disable a plugin at a site and its subtree (its data is kept).
    Disable {
        /// The plugin id.
        plugin: String,
        /// Site code.
        #[arg(long)]
        site: String,
    },
    /// Grant capabilities to a plugin at a site and its subtree.
    Grant {
        /// The plugin id.
        plugin: String,
        /// Site code.
        #[arg(long)]
        site: String,
        /// Refuse the capabilities at this site instead (overrides a grant above).
        #[arg(long)]
        revoke: bool,
        /// Capabilities (e.g. sites.read identity.read).
        #[arg(required = true)]
        capabilities: Vec<String>,
    },
    /// Show a publisher's plugin quotas, or set the city's override with
    /// name=value (rows, bytes, site_rows, site_bytes, calls_per_minute,
    /// events_per_minute, log_lines_per_minute); --clear removes it.
    Quotas {
        /// The publisher.
        publisher: String,
        /// Quotas to set, as name=value; the others take the city defaults.
        set: Vec<String>,
        /// Remove the override (every quota takes the city default).
        #[arg(long)]
        clear: bool,
    },
    /// Show a plugin's settings at a site, or set some with name=value (JSON value).
    Settings {
        /// The plugin id.
        plugin: String,
        /// Site code.
        #[arg(long)]
        site: String,
        /// Settings to set, as name=value (value in JSON: 60, true, "text").
        set: Vec<String>,
    },
    /// Upgrade an installed plugin from a package file of a higher version.
    Upgrade {
        /// The package file.
        package: PathBuf,
    },
    /// Return to the version before the last upgrade, with its data.
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
}

async fn registry(cfg: &Config) -> Result<Registry> {
    let k = super::open(cfg).await?;
    let runtime = crate::plugins::Runtime::new(crate::plugins::RuntimeLimits::default())
        .map_err(|e| anyhow::anyhow!("cannot start the plugin runtime: {e:#}"))?;
    Ok(Registry::new(
        k,
        runtime,
        Some(cfg.compiled_dir()),
        cfg.dev_mode,
    ))
}

fn read(path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn publisher_line(p: &Publisher) -> String {
    let words = |v: &Option<Vec<String>>| match v {
        None => "any".to_string(),
        Some(v) if v.is_empty() => "none".to_string(),
        Some(v) => v.join(","),
    };
    format!(
        "{}, {}, capabilities {}, identity.grant roles {}, approval {}",
        p.status,
        p.site
            .as_deref()
            .map(|s| format!("bound to site {s}"))
            .unwrap_or_else(|| "city-wide".into()),
        words(&p.capabilities),
        words(&p.roles),
        if p.approval {
            "required"
        } else {
            "not required"
        }
    )
}

fn print_approval(a: &Approval) {
    println!(
        "request {} [{}]: {} {} {} by publisher {}{}, asked by {}{}",
        a.id,
        a.status,
        a.kind,
        a.plugin,
        a.version,
        a.publisher,
        a.site
            .as_deref()
            .map(|s| format!(" at site {s}"))
            .unwrap_or_default(),
        a.requested_by,
        a.reason
            .as_deref()
            .map(|r| format!("; reason: {r}"))
            .unwrap_or_default()
    );
    for c in &a.capabilities {
        println!(
            "  {}{}{}: {}",
            c.name,
            c.roles
                .as_ref()
                .map(|r| format!(" (roles {})", r.join(", ")))
                .unwrap_or_default(),
            if c.new { " [new]" } else { "" },
            c.meaning
        );
    }
}

fn summary(i: &PluginInfo) -> String {
    let name = if i.name_en.is_empty() {
        &i.name_zh
    } else {
        &i.name_en
    };
    format!(
        "{} {}{} by {}{}",
        i.id,
        i.version,
        if name.is_empty() {
            String::new()
        } else {
            format!(" ({name})")
        },
        i.publisher,
        if i.signed {
            ", signed"
        } else {
            ", UNSIGNED (development mode)"
        }
    )
}

/// Run one `lifelong plugin` command.
pub async fn run(cfg: &Config, command: PluginCommand) -> Result<()> {
    let system = Actor::System("cli");
    match command {
        PluginCommand::Build { dir, out, key } => {
            let mut pkg =
                tokio::task::spawn_blocking(move || crate::plugins::build::build(&dir)).await??;
            if let Some(key) = key {
                pkg.sign(&PublisherKey::read(&key)?)?;
            }
            let out = out.unwrap_or_else(|| {
                PathBuf::from(format!(
                    "{}-{}.llpkg",
                    pkg.manifest.id, pkg.manifest.version
                ))
            });
            std::fs::write(&out, pkg.encode())
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "built {} {} ({} bytes, component sha256 {}{}) into {}",
                pkg.manifest.id,
                pkg.manifest.version,
                pkg.component.len(),
                package::sha256_hex(&pkg.component),
                if pkg.signature.is_some() {
                    ", signed"
                } else {
                    ", unsigned"
                },
                out.display()
            );
        }
        PluginCommand::Keygen { publisher, out } => {
            let key = PublisherKey::generate(&publisher)?;
            key.write(&out)?;
            println!("wrote {} for publisher {publisher}", out.display());
            println!("public key: {}", key.public_hex());
            println!(
                "a city admin trusts it with: lifelong plugin trust {publisher} {}",
                key.public_hex()
            );
        }
        PluginCommand::Sign { package, key } => {
            let mut pkg = Package::decode(&read(&package)?)?;
            pkg.sign(&PublisherKey::read(&key)?)?;
            let tmp = package.with_extension("llpkg.tmp");
            std::fs::write(&tmp, pkg.encode())?;
            std::fs::rename(&tmp, &package)?;
            println!(
                "signed {} {} as {}",
                pkg.manifest.id, pkg.manifest.version, pkg.manifest.publisher
            );
        }
        PluginCommand::Trust {
            publisher,
            public_key,
            site,
            city_wide,
            capabilities,
            roles,
            approval,
        } => {
            let site = if city_wide {
                Some(None)
            } else {
                site.map(Some)
            };
            let p = registry(cfg)
                .await?
                .trust_publisher(
                    &system,
                    &publisher,
                    &public_key,
                    &Binding {
                        site,
                        capabilities,
                        roles,
                        approval,
                    },
                )
                .await?;
            println!("publisher {publisher} is trusted: {}", publisher_line(&p));
        }
        PluginCommand::RevokePublisher { publisher } => {
            let disabled = registry(cfg)
                .await?
                .revoke_publisher(&system, &publisher)
                .await?;
            println!(
                "publisher {publisher} is revoked; disabled: {}",
                if disabled.is_empty() {
                    "nothing".to_string()
                } else {
                    disabled
                        .iter()
                        .map(|(p, s)| format!("{p} at {s}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
        }
        PluginCommand::Publishers => {
            for p in registry(cfg).await?.publisher_entries().await? {
                println!("{} {}: {}", p.publisher, p.public_key, publisher_line(&p));
            }
        }
        PluginCommand::Approvals { status } => {
            let status = (status != "all").then_some(status.as_str());
            let items = registry(cfg).await?.approvals(&system, status).await?;
            if items.is_empty() {
                println!("no requests");
            }
            for a in items {
                print_approval(&a);
            }
        }
        PluginCommand::Approve { id, reason } => {
            let a = registry(cfg)
                .await?
                .approve(&system, id, reason.as_deref())
                .await?;
            println!("approved request {id}:");
            print_approval(&a);
        }
        PluginCommand::Remote {
            server,
            token,
            action,
        } => remote::run(&server, &token, action).await?,
        PluginCommand::Refuse { id, reason } => {
            let a = registry(cfg).await?.refuse(&system, id, &reason).await?;
            println!("refused request {id}:");
            print_approval(&a);
        }
        PluginCommand::Install { package } => {
            let info = registry(cfg)
                .await?
                .install(&system, &read(&package)?)
                .await?;
            println!("installed {}", summary(&info));
            println!("enable it with: lifelong plugin grant {0} --site CODE <capabilities>; lifelong plugin enable {0} --site CODE", info.id);
        }
        PluginCommand::Upgrade { package } => {
            let info = registry(cfg)
                .await?
                .upgrade(&system, &read(&package)?)
                .await?;
            println!(
                "upgraded to {} (was {})",
                summary(&info),
                info.previous.as_deref().unwrap_or("?")
            );
        }
        PluginCommand::Rollback { plugin } => {
            let info = registry(cfg).await?.rollback(&system, &plugin).await?;
            println!("rolled back to {}", summary(&info));
        }
        PluginCommand::Remove { plugin, purge } => {
            registry(cfg).await?.remove(&system, &plugin, purge).await?;
            println!(
                "removed {plugin}{}",
                if purge {
                    " and purged its data"
                } else {
                    " (its tables and settings are kept)"
                }
            );
        }
        PluginCommand::List => {
            let items = registry(cfg).await?.list().await?;
            if items.is_empty() {
                println!("no plugins installed");
            }
            for i in items {
                let enabled: Vec<_> = i
                    .sites
                    .iter()
                    .filter(|s| s.enabled)
                    .map(|s| s.site.as_str())
                    .collect();
                println!(
                    "{}  enabled at: {}",
                    summary(&i),
                    if enabled.is_empty() {
                        "-".to_string()
                    } else {
                        enabled.join(", ")
                    }
                );
            }
        }
        PluginCommand::Info { plugin } => {
            let info = registry(cfg).await?.info(&plugin).await?;
            println!("{}", serde_json::to_string_pretty(&info)?);
        }
        PluginCommand::Enable { plugin, site } => {
            registry(cfg)
                .await?
                .set_enabled(&system, &plugin, &site, true)
                .await?;
            println!("{plugin} is enabled at {site} and below");
        }
        PluginCommand::Disable { plugin, site } => {
            registry(cfg)
                .await?
                .set_enabled(&system, &plugin, &site, false)
                .await?;
            println!("{plugin} is disabled at {site} and below (its data is kept)");
        }
        PluginCommand::Grant {
            plugin,
            site,
            revoke,
            capabilities,
        } => {
            registry(cfg)
                .await?
                .grant(&system, &plugin, &site, &capabilities, !revoke)
                .await?;
            println!(
                "{} {} to {plugin} at {site} and below",
                if revoke { "refused" } else { "granted" },
                capabilities.join(", ")
            );
        }
        PluginCommand::Quotas {
            publisher,
            set,
            clear,
        } => {
            let r = registry(cfg).await?;
            if clear || !set.is_empty() {
                let mut values = serde_json::Map::new();
                for pair in &set {
                    let (name, value) = pair
                        .split_once('=')
                        .with_context(|| format!("{pair:?} is not name=value"))?;
                    let n: u64 = value
                        .parse()
                        .with_context(|| format!("{name}: {value:?} is not a whole number"))?;
                    values.insert(name.to_string(), n.into());
                }
                let values: crate::plugins::quota::QuotaValues =
                    serde_json::from_value(values.into()).map_err(|e| anyhow::anyhow!("{e}"))?;
                crate::plugins::quota::set_override(r.kernel(), &system, &publisher, &values)
                    .await?;
            }
            let over = crate::plugins::quota::publisher_override(r.kernel(), &publisher).await?;
            let defaults = cfg.quotas.effective(None, &Default::default());
            let over = over.unwrap_or_default();
            let pick = |name: &str, d: u64| {
                serde_json::to_value(&over)
                    .ok()
                    .and_then(|v| v[name].as_u64())
                    .map_or(format!("{name} = {d} (city default)"), |v| {
                        format!("{name} = {v} (set for {publisher})")
                    })
            };
            for (name, d) in serde_json::to_value(defaults)?
                .as_object()
                .into_iter()
                .flatten()
            {
                println!("{}", pick(name, d.as_u64().unwrap_or_default()));
            }
        }
        PluginCommand::Settings { plugin, site, set } => {
            let reg = registry(cfg).await?;
            reg.refresh().await?;
            let manifest = reg
                .manifest(&plugin)
                .ok_or_else(|| anyhow::anyhow!("plugin {plugin} is not installed"))?;
            let k = super::open(cfg).await?;
            for pair in &set {
                let (name, value) = pair
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("{pair:?} is not name=value"))?;
                let value: serde_json::Value = serde_json::from_str(value)
                    .or_else(|_| Ok::<_, anyhow::Error>(serde_json::Value::String(value.into())))?;
                crate::plugins::settings::set(&k, &system, &manifest, &site, name, value).await?;
            }
            let s = crate::sites::get(&k.db, &system, &site).await?;
            for def in &manifest.settings {
                let v =
                    crate::plugins::settings::effective(&k, &manifest, Some(&s.path), &def.name)
                        .await?
                        .unwrap_or(serde_json::Value::Null);
                println!("{} = {v}", def.name);
            }
        }
    }
    Ok(())
}
