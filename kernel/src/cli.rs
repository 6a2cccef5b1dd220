//! The `lifelong` command line. Every failure prints one line
//! (`error: …`) and exits non-zero; secrets are never printed.

use crate::authz::Actor;
use crate::config::Config;
use crate::http::{self, AppState};
use crate::kernel::Kernel;
use crate::storage::{self, Db};
use crate::{accounts::ledger, identity, sites};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod plugin;

/// Lifelong: the city's lifelong-education platform kernel.
#[derive(Parser, Debug)]
#[command(name = "lifelong", version, about)]
pub struct Cli {
    /// Configuration file (TOML). Env overrides: LIFELONG_DATABASE_URL, LIFELONG_LISTEN,
    /// LIFELONG_PII_KEY, LIFELONG_DATA_DIR, …
    #[arg(long, global = true, env = "LIFELONG_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Migrate the database and serve the HTTP API.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Site registry import and export.
    Site {
        #[command(subcommand)]
        command: SiteCommand,
    },
    /// Identity registry import.
    Person {
        #[command(subcommand)]
        command: PersonCommand,
    },
    /// Credit-bank ledger tools.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Plugin packages: build, sign, install, enable, grant, upgrade, roll back.
    Plugin {
        #[command(subcommand)]
        command: plugin::PluginCommand,
    },
    /// Build a demo city (if the database is empty) and serve it.
    Demo {
        /// Build the demo data, then exit instead of serving.
        #[arg(long)]
        no_serve: bool,
    },
}

/// `lifelong admin …`
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create the city site (if missing) and the first city admin.
    Bootstrap {
        /// Login of the new admin.
        #[arg(long)]
        login: String,
        /// Full name of the new admin.
        #[arg(long)]
        name: String,
        /// The admin's resident ID number.
        #[arg(long)]
        id_number: String,
        /// Code of the city site to create if none exists.
        #[arg(long, default_value = "CITY")]
        city_code: String,
        /// Name of the city site to create if none exists.
        #[arg(long, default_value = "市")]
        city_name: String,
        /// Password; read from LIFELONG_ADMIN_PASSWORD or else the first line of stdin.
        #[arg(long, env = "LIFELONG_ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
}

/// `lifelong site …`
#[derive(Subcommand, Debug)]
pub enum SiteCommand {
    /// Import sites from a CSV file, all-or-nothing.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
    /// Export sites as CSV.
    Export {
        /// Only this site's subtree (code).
        #[arg(long)]
        within: Option<String>,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `lifelong person …`
#[derive(Subcommand, Debug)]
pub enum PersonCommand {
    /// Import persons from a CSV file, all-or-nothing, with progress.
    Import {
        /// The CSV file (name,id_number,phone,home_site,birth_date,sex).
        file: PathBuf,
    },
}

/// `lifelong ledger …`
#[derive(Subcommand, Debug)]
pub enum LedgerCommand {
    /// Check every account's hash chain and name the first broken entry.
    Verify,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LIFELONG_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    let parts: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    let mut out: Vec<String> = Vec::new();
    for p in parts {
        if !out.iter().any(|o| o.contains(&p)) {
            out.push(p);
        }
    }
    out.join(": ").replace('\n', " ")
}

/// Open the kernel described by `cfg`, migrating the database.
pub async fn open(cfg: &Config) -> Result<Kernel> {
    let pii = cfg.pii_keys()?;
    let db = Db::open(&cfg.database_url_secret())
        .await
        .with_context(|| format!("opening {}", cfg.database_url()))?;
    Ok(Kernel {
        db,
        pii,
        token_ttl_secs: cfg.token_ttl_secs,
        outcome_maxima: cfg.outcome_maxima,
    })
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let cfg = Config::load(cli.config.as_deref())?;
    let system = Actor::System("cli");
    match cli.command {
        Command::Serve => {
            let k = open(&cfg).await?;
            serve(&cfg, k).await?;
        }
        Command::Migrate => {
            let db = Db::connect(&cfg.database_url_secret()).await?;
            let report = storage::migrate(&db).await?;
            println!(
                "applied {} migration(s); {} already present",
                report.applied.len(),
                report.already
            );
        }
        Command::Admin {
            command:
                AdminCommand::Bootstrap {
                    login,
                    name,
                    id_number,
                    city_code,
                    city_name,
                    password,
                },
        } => {
            let k = open(&cfg).await?;
            let password = match password {
                Some(p) => p,
                None => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("reading the password from stdin")?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let (person, city) = crate::demo::bootstrap(
                &k, &login, &name, &id_number, &password, &city_code, &city_name,
            )
            .await?;
            println!(
                "created city admin {login} (person {}) at {}",
                person.id, city.code
            );
        }
        Command::Site {
            command: SiteCommand::Import { file },
        } => {
            let k = open(&cfg).await?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let Some(r) = imported(sites::csv::import(&k.db, &system, &text).await)? else {
                return Ok(ExitCode::FAILURE);
            };
            println!("imported: {} created, {} updated", r.created, r.updated);
        }
        Command::Site {
            command: SiteCommand::Export { within, out },
        } => {
            let k = open(&cfg).await?;
            let text = sites::csv::export(&k.db, &system, within).await?;
            match out {
                Some(p) => {
                    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?
                }
                None => print!("{text}"),
            }
        }
        Command::Person {
            command: PersonCommand::Import { file },
        } => {
            let k = open(&cfg).await?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} persons ({per_sec})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let progress = |done: usize, total: usize| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            };
            let result = identity::csv::import(&k, &system, &text, &progress).await;
            bar.finish_and_clear();
            let Some(n) = imported(result)? else {
                return Ok(ExitCode::FAILURE);
            };
            println!("imported {n} persons");
        }
        Command::Ledger {
            command: LedgerCommand::Verify,
        } => {
            let k = open(&cfg).await?;
            let started = std::time::Instant::now();
            let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
            let report = ledger::verify(&k.db, workers).await?;
            if report.broken.is_empty() {
                println!(
                    "ok: {} accounts, {} entries, every chain intact ({:.2}s)",
                    report.accounts,
                    report.entries,
                    started.elapsed().as_secs_f64()
                );
            } else {
                for b in &report.broken {
                    match b.entry_id {
                        Some(id) => println!(
                            "BROKEN account {} at entry {id} (seq {}): {}",
                            b.account_id, b.seq, b.reason
                        ),
                        None => println!(
                            "BROKEN account {} at seq {}: {}",
                            b.account_id, b.seq, b.reason
                        ),
                    }
                }
                eprintln!(
                    "error: {} broken chain(s) in {} accounts",
                    report.broken.len(),
                    report.accounts
                );
                return Ok(ExitCode::from(2));
            }
        }
        Command::Plugin { command } => plugin::run(&cfg, command).await?,
        Command::Demo { no_serve } => {
            let k = open(&cfg).await?;
            let summary = crate::demo::build(&k).await?;
            println!("{summary}");
            let crates = crate::demo::plugin_crates(std::path::Path::new("."));
            if crates.is_empty() {
                println!(
                    "no plugin crates here (run from a checkout to install the project's plugins)"
                );
                demo_history(&k, None).await;
            } else {
                println!("building and installing {} plugin(s)…", crates.len());
                let runtime =
                    crate::plugins::Runtime::new(crate::plugins::RuntimeLimits::default())
                        .map_err(|e| anyhow::anyhow!("cannot start the plugin runtime: {e:#}"))?;
                let registry = crate::plugins::registry::Registry::new(
                    k.clone(),
                    runtime,
                    Some(cfg.compiled_dir()),
                    false,
                );
                registry.refresh().await?;
                std::fs::create_dir_all(&cfg.data_dir)?;
                for line in crate::demo::install_plugins(
                    &registry,
                    &crates,
                    &cfg.data_dir.join("demo-publisher.key"),
                )
                .await?
                {
                    println!("  {line}");
                }
                match crate::demo::elder::seed(&registry).await {
                    Ok(Some(line)) => println!("  {line}"),
                    Ok(None) => {}
                    Err(e) => eprintln!(
                        "warning: the elder-education demo catalogue was not built: {e:#}"
                    ),
                }
                match crate::demo::volunteers::seed(&registry).await {
                    Ok(Some(line)) => println!("  {line}"),
                    Ok(None) => {}
                    Err(e) => eprintln!("warning: the volunteers demo was not built: {e:#}"),
                }
                match crate::demo::worker::seed(&registry).await {
                    Ok(Some(line)) => println!("  {line}"),
                    Ok(None) => {}
                    Err(e) => eprintln!("warning: the worker-education demo was not built: {e:#}"),
                }
                match crate::demo::dual::seed(&registry).await {
                    Ok(Some(line)) => println!("  {line}"),
                    Ok(None) => {}
                    Err(e) => eprintln!("warning: the dual-track demo was not built: {e:#}"),
                }
                demo_history(&k, Some(&registry)).await;
            }
            if !no_serve {
                serve(&cfg, k).await?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Print the demo's indicator history line (or why it was not taken).
async fn demo_history(k: &Kernel, registry: Option<&crate::plugins::registry::Registry>) {
    match crate::demo::history(k, registry).await {
        Ok(line) => println!("  {line}"),
        Err(e) => eprintln!("warning: the indicator history was not taken: {e:#}"),
    }
}

/// The imported value, or `None` after printing the per-row report.
fn imported<T>(result: Result<T, sites::csv::ImportError>) -> Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(sites::csv::ImportError::Rows(rows)) => {
            for r in &rows {
                eprintln!("line {}: {}: {}", r.line, r.field, r.message);
            }
            eprintln!("error: {} row error(s); nothing was imported", rows.len());
            Ok(None)
        }
        Err(sites::csv::ImportError::Other(e)) => Err(e.into()),
    }
}

async fn serve(cfg: &Config, k: Kernel) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let runtime = crate::plugins::Runtime::new(crate::plugins::RuntimeLimits {
        quotas: cfg.quotas.clone(),
        ..cfg.plugins.runtime()
    })
    .map_err(|e| anyhow::anyhow!("cannot start the plugin runtime: {e:#}"))?;
    let registry = crate::plugins::registry::Registry::new(
        k.clone(),
        runtime,
        Some(cfg.compiled_dir()),
        cfg.dev_mode,
    );
    if cfg.dev_mode {
        tracing::warn!(
            "DEVELOPMENT MODE: unsigned plugin packages and unknown publishers are accepted"
        );
        eprintln!("warning: development mode: unsigned plugin packages and unknown publishers are accepted; never run a production kernel like this");
    }
    // Stored usage of plugins that held data before quotas were counted.
    crate::plugins::quota::backfill(&k)
        .await
        .context("cannot recount plugins' stored usage")?;
    registry.refresh().await?;
    for (id, version) in registry.loaded() {
        tracing::info!(plugin = %id, %version, "plugin loaded");
    }
    let state = AppState::new(k.clone(), &cfg.limits)
        .with_registry(registry.clone())
        .with_circles(cfg.circles.params());
    spawn_snapshot_loop(
        k.clone(),
        registry.clone(),
        cfg.circles.params(),
        format!("{}:{}", addr, std::process::id()),
    );
    spawn_plugin_loop(k.clone(), registry);
    let app = http::app(state, &cfg.limits);
    // Tests and scripts read this line to find the port.
    println!("listening on http://{addr}");
    tracing::info!(%addr, database = %cfg.database_url(), "serving");
    http::serve(listener, app, shutdown_signal()).await?;
    k.db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Every 250 ms: reload the registry view if it changed (another node or
/// the CLI), fan kernel events out to subscribers, and deliver due events.
fn spawn_plugin_loop(k: Kernel, registry: crate::plugins::registry::Registry) {
    // The registry view is reloaded by its own loop, so a long delivery
    // pass never delays a node's view of an enablement or an upgrade.
    let watcher = registry.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = watcher.refresh().await {
                tracing::warn!("plugin registry reload failed: {e}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    });
    tokio::spawn(async move {
        loop {
            // Also reloaded here, so a pass routes (and skips) by a view at
            // least as new as the pass's start.
            if let Err(e) = registry.refresh().await {
                tracing::warn!("plugin registry reload failed: {e}");
            }
            let runtime = registry.runtime();
            if let Err(e) = crate::plugins::events::fan_out(&k, |e| runtime.subscribers_of(e)).await
            {
                tracing::warn!("kernel event fan-out failed: {e}");
            }
            if let Err(e) =
                crate::plugins::events::deliver_due(&k, |p, site| registry.route_event(p, site), 8)
                    .await
            {
                tracing::warn!("event delivery pass failed: {e}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    });
}

/// The daily indicator snapshots (`indicators/snapshots.rs`): a minute
/// after start, then every ten minutes, this node tries to claim the run
/// of yesterday (the latest day that has ended); on several nodes one node takes it, and a claim whose node died is
/// taken over after its lease.
fn spawn_snapshot_loop(
    k: Kernel,
    registry: crate::plugins::registry::Registry,
    circles: crate::indicators::circles::Params,
    node: String,
) {
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        loop {
            let ctx = crate::indicators::Ctx::new(k.clone(), Some(registry.clone()), circles);
            // Yesterday's: a day is snapshotted once it has ended.
            let day = crate::indicators::snapshots::yesterday();
            match crate::indicators::snapshots::run_daily(&ctx, &node, &day).await {
                Ok(Some(n)) => tracing::info!(%day, stored = n, "daily indicator snapshots taken"),
                Ok(None) => {}
                Err(e) => tracing::warn!("daily indicator snapshots failed: {e}"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(600)).await;
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
