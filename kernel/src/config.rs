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
    /// Development mode: plugin packages that are unsigned or signed by a
    /// publisher not in the trust store are accepted (said at start-up and
    /// in `/readyz`). Never in production. Env: `LIFELONG_DEV_MODE=1`.
    pub dev_mode: bool,
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

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_concurrent_requests: 256,
            request_timeout_ms: 30_000,
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
            dev_mode: false,
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
            .field("dev_mode", &self.dev_mode)
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
}
