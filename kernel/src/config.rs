//! Configuration: one documented struct, read from a TOML file with
//! `LIFELONG_*` environment overrides.
//!
//! **Invariant:** secrets (the PII key, database passwords) never appear in
//! `Debug` output, logs or errors.

use crate::crypto::PiiKeys;
use crate::storage::redact_url;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// Kernel configuration. Every field has a default suitable for a local,
/// single-node SQLite deployment.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `sqlite://path` (default `sqlite://<data_dir>/lifelong.db`) or `postgres://…`.
    /// Env: `LIFELONG_DATABASE_URL`.
    pub database_url: Option<String>,
    /// Directory for the SQLite file and the generated key. Env: `LIFELONG_DATA_DIR`.
    pub data_dir: PathBuf,
    /// Address to listen on. Env: `LIFELONG_LISTEN`.
    pub listen: String,
    /// 64 hex digits. If absent on SQLite, a key is generated once into
    /// `<data_dir>/pii.key`; on PostgreSQL it is required (every node must
    /// share it). Env: `LIFELONG_PII_KEY`.
    pub pii_key: Option<String>,
    /// Bearer token lifetime in seconds. Env: `LIFELONG_TOKEN_TTL_SECS`.
    pub token_ttl_secs: i64,
    /// Request limits.
    pub limits: Limits,
    /// Each plugin's fair share of a node.
    pub plugins: PluginLimits,
    /// Development mode: plugin packages that are unsigned or signed by a
    /// publisher not in the trust store are accepted (said at start-up and
    /// in `/readyz`). Never in production. Env: `LIFELONG_DEV_MODE=1`.
    pub dev_mode: bool,
    /// The largest quantity one learning outcome a plugin records may have,
    /// per kind (`[outcome_maxima]`; see [`OutcomeMaxima`]).
    pub outcome_maxima: OutcomeMaxima,
    /// Every plugin's default quotas (`[quotas]`; a city admin may set
    /// others per publisher, a manifest may ask for lower ones). Env:
    /// `LIFELONG_QUOTA_ROWS`, `_BYTES`, `_SITE_ROWS`, `_SITE_BYTES`,
    /// `_CALLS_PER_MINUTE`, `_EVENTS_PER_MINUTE`, `_LOG_LINES_PER_MINUTE`,
    /// `_SYNC_MS` (see [`crate::plugins::quota::QuotaLimits`]).
    pub quotas: crate::plugins::quota::QuotaLimits,
    /// The 15-minute learning circles (`[circles]`; see [`Circles`]).
    pub circles: Circles,
}

/// The 15-minute learning circles (indicator 10): a residential community
/// is covered when an active learning site lies within `walking_distance_m`
/// of it; a township is a circle when at least `share` of its communities
/// are covered. TOML section `[circles]`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Circles {
    /// Walking distance in metres, above 0 and at most 100,000 (default
    /// 1000). Env: `LIFELONG_CIRCLES_WALKING_DISTANCE_M`.
    pub walking_distance_m: f64,
    /// Share of covered communities, above 0 and at most 1 (default 0.9).
    /// Env: `LIFELONG_CIRCLES_SHARE`.
    pub share: f64,
}

impl Default for Circles {
    fn default() -> Self {
        let p = crate::indicators::circles::Params::default();
        Circles {
            walking_distance_m: p.distance_m,
            share: p.share,
        }
    }
}

impl Circles {
    /// The computation's parameters.
    pub fn params(&self) -> crate::indicators::circles::Params {
        crate::indicators::circles::Params {
            distance_m: self.walking_distance_m,
            share: self.share,
        }
    }

    fn check(&self) -> Result<(), String> {
        self.params().check().map_err(|(field, message)| {
            let field = if field == "distance_m" {
                "walking_distance_m"
            } else {
                field
            };
            format!("circles.{field} {message}")
        })
    }
}

/// Limits applied to every API request.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted request body. Env: `LIFELONG_MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    /// Requests running at once; more are answered 503 with Retry-After.
    /// Env: `LIFELONG_MAX_CONCURRENT_REQUESTS`.
    pub max_concurrent_requests: usize,
    /// Time one request may take. Env: `LIFELONG_REQUEST_TIMEOUT_MS`.
    pub request_timeout_ms: u64,
}

/// Each plugin's fair share of a node (a manifest's `[limits]` may ask for
/// less). Calls past `max_concurrent_calls` wait in the plugin's queue; past
/// `queue_wait_ms` in it, or with `max_queued_calls` already waiting, they
/// are answered 503 with Retry-After (`urn:lifelong:problem:plugin-busy`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginLimits {
    /// Calls of one plugin running at once. Env: `LIFELONG_PLUGIN_MAX_CONCURRENT_CALLS`.
    pub max_concurrent_calls: usize,
    /// Requests of one plugin waiting at once. Env: `LIFELONG_PLUGIN_MAX_QUEUED_CALLS`.
    pub max_queued_calls: usize,
    /// Longest wait in a plugin's queue. Env: `LIFELONG_PLUGIN_QUEUE_WAIT_MS`.
    pub queue_wait_ms: u64,
    /// Worker threads one plugin's long-running guest code may occupy at
    /// once (0: half the cores). Env: `LIFELONG_PLUGIN_CPU_SHARE`.
    pub cpu_share: usize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        let r = crate::plugins::RuntimeLimits::default();
        PluginLimits {
            max_concurrent_calls: r.max_concurrent_calls,
            max_queued_calls: r.max_queued_calls,
            queue_wait_ms: r.queue_wait.as_millis() as u64,
            cpu_share: 0,
        }
    }
}

impl PluginLimits {
    /// The runtime's limits under this configuration.
    pub fn runtime(&self) -> crate::plugins::RuntimeLimits {
        let defaults = crate::plugins::RuntimeLimits::default();
        crate::plugins::RuntimeLimits {
            max_concurrent_calls: self.max_concurrent_calls.max(1),
            max_queued_calls: self.max_queued_calls,
            queue_wait: std::time::Duration::from_millis(self.queue_wait_ms),
            cpu_share: if self.cpu_share > 0 {
                self.cpu_share
            } else {
                defaults.cpu_share
            },
            ..defaults
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            // Each plugin may hold at most a quarter of these (running and
            // queued; `RuntimeLimits::max_queued_calls`).
            max_concurrent_requests: 1024,
            request_timeout_ms: 30_000,
        }
    }
}

/// The largest quantity a plugin may record in one learning outcome, per
/// outcome kind, in the kind's unit (`accounts::ledger::unit_for`): an
/// outcome above it is refused as `invalid` naming `quantity`. They bound
/// what one mistaken or hostile plugin call can put into an account; a
/// larger achievement is recorded as several outcomes, or by an admin
/// through the kernel's own API, which these do not limit. TOML section
/// `[outcome_maxima]`; each value must be above zero.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutcomeMaxima {
    /// Credits per outcome (default 30: a full-time semester's load).
    pub academic_credit: f64,
    /// Certificates per outcome (default 1: one qualification).
    pub vocational_qualification: f64,
    /// Certificates per outcome (default 1: one certificate).
    pub skill_certificate: f64,
    /// Hours per outcome (default 240: a long course or programme).
    pub continuing_education: f64,
    /// Hours per outcome (default 240: a year-long elder-university course
    /// is about 130).
    pub non_formal_learning: f64,
    /// Hours per outcome (default 24: one day of service; longer service
    /// is one outcome per day or event).
    pub volunteer_service: f64,
}

impl Default for OutcomeMaxima {
    fn default() -> Self {
        OutcomeMaxima {
            academic_credit: 30.0,
            vocational_qualification: 1.0,
            skill_certificate: 1.0,
            continuing_education: 240.0,
            non_formal_learning: 240.0,
            volunteer_service: 24.0,
        }
    }
}

impl OutcomeMaxima {
    /// Every kind with its maximum.
    pub fn all(&self) -> [(&'static str, f64); 6] {
        [
            ("academic_credit", self.academic_credit),
            ("vocational_qualification", self.vocational_qualification),
            ("skill_certificate", self.skill_certificate),
            ("continuing_education", self.continuing_education),
            ("non_formal_learning", self.non_formal_learning),
            ("volunteer_service", self.volunteer_service),
        ]
    }

    /// The maximum for `kind` (None for a kind the ledger does not know).
    pub fn for_kind(&self, kind: &str) -> Option<f64> {
        self.all()
            .into_iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, m)| m)
    }

    fn check(&self) -> Result<(), String> {
        match self
            .all()
            .into_iter()
            .find(|(_, m)| !(m.is_finite() && *m > 0.0))
        {
            Some((kind, m)) => Err(format!("outcome_maxima.{kind} must be above zero, not {m}")),
            None => Ok(()),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: None,
            data_dir: PathBuf::from("data"),
            listen: "127.0.0.1:8080".into(),
            pii_key: None,
            token_ttl_secs: 12 * 3600,
            limits: Limits::default(),
            plugins: PluginLimits::default(),
            dev_mode: false,
            outcome_maxima: OutcomeMaxima::default(),
            quotas: Default::default(),
            circles: Circles::default(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &self.database_url())
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("pii_key", &self.pii_key.as_ref().map(|_| "***"))
            .field("token_ttl_secs", &self.token_ttl_secs)
            .field("limits", &self.limits)
            .field("plugins", &self.plugins)
            .field("dev_mode", &self.dev_mode)
            .field("outcome_maxima", &self.outcome_maxima)
            .field("quotas", &self.quotas)
            .field("circles", &self.circles)
            .finish()
    }
}

/// Configuration problems, one line each.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    Read(String, std::io::Error),
    #[error("config file {0}: {1}")]
    Parse(String, String),
    #[error("environment variable {0}: {1}")]
    Env(&'static str, String),
    #[error(
        "a PostgreSQL database needs pii_key (or LIFELONG_PII_KEY) set: every node must share it"
    )]
    KeyRequired,
    #[error("{0}")]
    Key(String),
}

impl Config {
    /// Load from `path` (if given and present) and apply env overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut cfg = match path {
            Some(p) if p.exists() => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError::Read(p.display().to_string(), e))?;
                toml::from_str(&text).map_err(|e| {
                    ConfigError::Parse(p.display().to_string(), e.message().to_string())
                })?
            }
            Some(p) => {
                return Err(ConfigError::Read(
                    p.display().to_string(),
                    std::io::ErrorKind::NotFound.into(),
                ))
            }
            None => Config::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        cfg.quotas.check().map_err(|e| {
            ConfigError::Parse(
                path.map_or("(defaults)".into(), |p| p.display().to_string()),
                e,
            )
        })?;
        cfg.outcome_maxima
            .check()
            .and_then(|_| cfg.circles.check())
            .map_err(|e| {
                ConfigError::Parse(
                    path.map_or("(defaults)".into(), |p| p.display().to_string()),
                    e,
                )
            })?;
        Ok(cfg)
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn num<T: std::str::FromStr>(name: &'static str, v: String) -> Result<T, ConfigError> {
            v.parse()
                .map_err(|_| ConfigError::Env(name, format!("{v:?} is not a number")))
        }
        if let Some(v) = get("LIFELONG_DATABASE_URL") {
            self.database_url = Some(v);
        }
        if let Some(v) = get("LIFELONG_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("LIFELONG_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = get("LIFELONG_PII_KEY") {
            self.pii_key = Some(v);
        }
        if let Some(v) = get("LIFELONG_DEV_MODE") {
            self.dev_mode = match v.as_str() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" | "" => false,
                _ => {
                    return Err(ConfigError::Env(
                        "LIFELONG_DEV_MODE",
                        format!("{v:?} is not 1 or 0"),
                    ))
                }
            };
        }
        if let Some(v) = get("LIFELONG_TOKEN_TTL_SECS") {
            self.token_ttl_secs = num("LIFELONG_TOKEN_TTL_SECS", v)?;
        }
        if let Some(v) = get("LIFELONG_MAX_BODY_BYTES") {
            self.limits.max_body_bytes = num("LIFELONG_MAX_BODY_BYTES", v)?;
        }
        if let Some(v) = get("LIFELONG_MAX_CONCURRENT_REQUESTS") {
            self.limits.max_concurrent_requests = num("LIFELONG_MAX_CONCURRENT_REQUESTS", v)?;
        }
        if let Some(v) = get("LIFELONG_REQUEST_TIMEOUT_MS") {
            self.limits.request_timeout_ms = num("LIFELONG_REQUEST_TIMEOUT_MS", v)?;
        }
        if let Some(v) = get("LIFELONG_PLUGIN_MAX_CONCURRENT_CALLS") {
            self.plugins.max_concurrent_calls = num("LIFELONG_PLUGIN_MAX_CONCURRENT_CALLS", v)?;
        }
        if let Some(v) = get("LIFELONG_PLUGIN_MAX_QUEUED_CALLS") {
            self.plugins.max_queued_calls = num("LIFELONG_PLUGIN_MAX_QUEUED_CALLS", v)?;
        }
        if let Some(v) = get("LIFELONG_PLUGIN_QUEUE_WAIT_MS") {
            self.plugins.queue_wait_ms = num("LIFELONG_PLUGIN_QUEUE_WAIT_MS", v)?;
        }
        if let Some(v) = get("LIFELONG_PLUGIN_CPU_SHARE") {
            self.plugins.cpu_share = num("LIFELONG_PLUGIN_CPU_SHARE", v)?;
        }
        let q = &mut self.quotas;
        for (name, field) in [
            ("LIFELONG_QUOTA_ROWS", &mut q.rows),
            ("LIFELONG_QUOTA_BYTES", &mut q.bytes),
            ("LIFELONG_QUOTA_SITE_ROWS", &mut q.site_rows),
            ("LIFELONG_QUOTA_SITE_BYTES", &mut q.site_bytes),
            ("LIFELONG_QUOTA_CALLS_PER_MINUTE", &mut q.calls_per_minute),
            ("LIFELONG_QUOTA_EVENTS_PER_MINUTE", &mut q.events_per_minute),
            (
                "LIFELONG_QUOTA_LOG_LINES_PER_MINUTE",
                &mut q.log_lines_per_minute,
            ),
            ("LIFELONG_QUOTA_SYNC_MS", &mut q.sync_ms),
        ] {
            if let Some(v) = get(name) {
                *field = num(name, v)?;
            }
        }
        if let Some(v) = get("LIFELONG_CIRCLES_WALKING_DISTANCE_M") {
            self.circles.walking_distance_m = num("LIFELONG_CIRCLES_WALKING_DISTANCE_M", v)?;
        }
        if let Some(v) = get("LIFELONG_CIRCLES_SHARE") {
            self.circles.share = num("LIFELONG_CIRCLES_SHARE", v)?;
        }
        Ok(())
    }

    /// Where compiled plugin components are cached.
    pub fn compiled_dir(&self) -> PathBuf {
        self.data_dir.join("compiled")
    }

    /// The effective database URL.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => redact_url(u),
            None => format!("sqlite://{}", self.data_dir.join("lifelong.db").display()),
        }
    }

    /// The effective database URL including any password (for connecting only).
    pub fn database_url_secret(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("lifelong.db").display()))
    }

    /// The PII keys: configured, or for SQLite generated once into the data dir.
    pub fn pii_keys(&self) -> Result<PiiKeys, ConfigError> {
        let bad = |e: crate::crypto::CryptoError| ConfigError::Key(format!("pii_key: {e}"));
        if let Some(k) = &self.pii_key {
            return PiiKeys::from_hex(k).map_err(bad);
        }
        if !self.database_url_secret().starts_with("sqlite:") {
            return Err(ConfigError::KeyRequired);
        }
        let path = self.data_dir.join("pii.key");
        let hex = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(_) => {
                std::fs::create_dir_all(&self.data_dir).map_err(|e| {
                    ConfigError::Key(format!("cannot create {}: {e}", self.data_dir.display()))
                })?;
                let key = PiiKeys::generate_hex();
                write_private(&path, &key).map_err(|e| {
                    ConfigError::Key(format!("cannot write {}: {e}", path.display()))
                })?;
                tracing::info!(path = %path.display(), "generated a new PII key");
                key
            }
        };
        PiiKeys::from_hex(&hex).map_err(bad)
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_and_debug_redacts() {
        let mut c = Config::default();
        c.apply_env(|k| match k {
            "LIFELONG_DATABASE_URL" => Some("postgres://u:pw@h/db".into()),
            "LIFELONG_PII_KEY" => Some("00".repeat(32)),
            "LIFELONG_MAX_CONCURRENT_REQUESTS" => Some("3".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.limits.max_concurrent_requests, 3);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("pw@"), "{dbg}");
        assert!(!dbg.contains(&"00".repeat(32)), "{dbg}");
        let err = Config::default()
            .apply_env(|k| (k == "LIFELONG_REQUEST_TIMEOUT_MS").then(|| "soon".into()));
        assert_eq!(
            err.unwrap_err().to_string(),
            "environment variable LIFELONG_REQUEST_TIMEOUT_MS: \"soon\" is not a number"
        );
    }

    #[test]
    fn quotas_default_and_take_env_overrides() {
        let c: Config = toml::from_str("[quotas]\nrows = 5000").unwrap();
        assert_eq!(c.quotas.rows, 5000);
        assert_eq!(c.quotas.calls_per_minute, 6_000);
        let mut c = Config::default();
        c.apply_env(|k| (k == "LIFELONG_QUOTA_EVENTS_PER_MINUTE").then(|| "7".into()))
            .unwrap();
        assert_eq!(c.quotas.events_per_minute, 7);
        let c: Config = toml::from_str("[quotas]\nsite_rows = 0").unwrap();
        assert_eq!(
            c.quotas.check().unwrap_err(),
            "quotas.site_rows must be above zero"
        );
        assert!(toml::from_str::<Config>("[quotas]\nrow = 1").is_err());
    }

    #[test]
    fn outcome_maxima_default_per_kind_and_must_be_positive() {
        let c: Config = toml::from_str("[outcome_maxima]\nvolunteer_service = 8").unwrap();
        assert_eq!(c.outcome_maxima.for_kind("volunteer_service"), Some(8.0));
        assert_eq!(c.outcome_maxima.for_kind("academic_credit"), Some(30.0));
        assert_eq!(c.outcome_maxima.for_kind("nonsense"), None);
        for kind in crate::accounts::ledger::KINDS {
            assert!(c.outcome_maxima.for_kind(kind).is_some(), "{kind}");
        }
        let c: Config = toml::from_str("[outcome_maxima]\nskill_certificate = 0").unwrap();
        assert_eq!(
            c.outcome_maxima.check().unwrap_err(),
            "outcome_maxima.skill_certificate must be above zero, not 0"
        );
        assert!(toml::from_str::<Config>("[outcome_maxima]\nhours = 1").is_err());
    }

    #[test]
    fn circles_default_env_override_and_range() {
        let c: Config = toml::from_str("[circles]\nshare = 0.8").unwrap();
        assert_eq!(c.circles.share, 0.8);
        assert_eq!(c.circles.walking_distance_m, 1000.0);
        let mut c = Config::default();
        c.apply_env(|k| (k == "LIFELONG_CIRCLES_WALKING_DISTANCE_M").then(|| "1500".into()))
            .unwrap();
        assert_eq!(c.circles.params().distance_m, 1500.0);
        let c: Config = toml::from_str("[circles]\nshare = 1.5").unwrap();
        assert_eq!(
            c.circles.check().unwrap_err(),
            "circles.share must be above 0 and at most 1, not 1.5"
        );
        assert!(toml::from_str::<Config>("[circles]\nradius = 1").is_err());
    }
}
