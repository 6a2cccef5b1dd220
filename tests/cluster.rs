//! Several `lifelong serve` nodes on one PostgreSQL database, as behind a
//! load balancer: each node with its own data dir (its own compiled-plugin
//! cache), the city admin bootstrapped through the CLI, and the test plugins
//! built, signed, installed, granted and enabled the way an operator does it
//! (`lifelong plugin keygen/build/sign`, then the registry's HTTP API).
//! Used by `tests/tests/nodes.rs` and `tests/benches/nodes.rs`.

use crate::{binary, Deployment};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The bootstrapped city admin's login and password.
pub const ADMIN: (&str, &str) = ("admin", "correct-horse-battery");

/// Every capability the probe asks for.
pub const PROBE_CAPABILITIES: &[&str] = &[
    "sites.read",
    "identity.read",
    "accounts.record",
    "accounts.read",
];

/// The test plugins as signed package files, built once per process.
#[derive(Debug)]
pub struct Packages {
    /// The publisher `lifelong`'s public key, for the trust store.
    pub public_key: String,
    /// `tests/plugins/probe` 1.0.0.
    pub probe: Vec<u8>,
    /// The same component as probe 1.1.0, whose manifest adds the table
    /// `extra` and a nullable column `tag` to `notes`.
    pub probe_1_1: Vec<u8>,
    /// `tests/plugins/other` 1.0.0.
    pub other: Vec<u8>,
}

/// The column probe 1.1.0 adds to `notes` (an `ALTER TABLE` in the upgrade).
pub const TAG_COLUMN: &str =
    "[[tables.columns]]\nname = \"tag\"\ntype = \"text\"\nnullable = true\n";

/// The table probe 1.1.0 adds.
pub const EXTRA_TABLE: &str = "\n[[tables]]\nname = \"extra\"\nprimary_key = [\"id\"]\n[[tables.columns]]\nname = \"id\"\ntype = \"integer\"\n";

fn cli(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(binary())
        .env("LIFELONG_DATA_DIR", dir)
        .env("LIFELONG_LOG", "warn")
        .env_remove("LIFELONG_CONFIG")
        .env_remove("LIFELONG_DATABASE_URL")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lifelong {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Build (first call only) and return the signed test packages:
/// `lifelong plugin keygen`, `plugin build --key`, and for probe 1.1.0 the
/// built component under an edited manifest, signed with `plugin sign`.
pub fn packages() -> &'static Packages {
    static PACKAGES: OnceLock<Packages> = OnceLock::new();
    PACKAGES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let key = d.join("lifelong.key");
        let out = cli(
            d,
            &[
                "plugin",
                "keygen",
                "--publisher",
                "lifelong",
                "--out",
                key.to_str().unwrap(),
            ],
        );
        let public_key = out
            .lines()
            .find_map(|l| l.strip_prefix("public key: "))
            .expect("keygen prints the public key")
            .to_string();
        let build = |name: &str| {
            let src = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("plugins")
                .join(name);
            let pkg = d.join(format!("{name}.llpkg"));
            cli(
                d,
                &[
                    "plugin",
                    "build",
                    src.to_str().unwrap(),
                    "--key",
                    key.to_str().unwrap(),
                    "--out",
                    pkg.to_str().unwrap(),
                ],
            );
            std::fs::read(pkg).unwrap()
        };
        let probe = build("probe");
        let other = build("other");
        let p = kernel::plugins::package::Package::decode(&probe).unwrap();
        let at = "[[tables.columns]]\nname = \"at\"\ntype = \"integer\"\n";
        assert!(p.manifest_text.contains(at), "probe's notes table has `at`");
        let manifest = p
            .manifest_text
            .replacen("version = \"1.0.0\"", "version = \"1.1.0\"", 1)
            .replacen(at, &format!("{at}{TAG_COLUMN}"), 1)
            + EXTRA_TABLE;
        let v11 = kernel::plugins::package::Package::new(manifest, p.component).unwrap();
        let path = d.join("probe-1.1.0.llpkg");
        std::fs::write(&path, v11.encode()).unwrap();
        cli(
            d,
            &[
                "plugin",
                "sign",
                path.to_str().unwrap(),
                "--key",
                key.to_str().unwrap(),
            ],
        );
        Packages {
            public_key,
            probe,
            probe_1_1: std::fs::read(&path).unwrap(),
            other,
        }
    })
}

/// One `lifelong serve` process with its own data dir; SIGKILLed on drop.
pub struct Node {
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("url", &self.url).finish()
    }
}

impl Node {
    /// SIGKILL the process and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process's CPU time so far (user + system), from /proc.
    pub fn cpu_secs(&self) -> f64 {
        proc_cpu_secs(&format!("/proc/{}/stat", self.child.id()))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// utime + stime of a process, from its `/proc/<pid>/stat` (Linux; 0 elsewhere).
pub fn proc_cpu_secs(stat_path: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// One PostgreSQL database with a city and its admin, and an HTTP client
/// holding the admin's token (valid on every node: tokens live in the database).
pub struct Cluster {
    pub dep: Deployment,
    pub client: reqwest::Client,
    pub token: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("database", &self.dep.database_url)
            .finish()
    }
}

impl Cluster {
    /// A fresh database, migrated, with the city `CITY` and its admin
    /// (`lifelong admin bootstrap`). No node runs yet.
    pub fn new() -> Cluster {
        let dep = Deployment::postgres();
        let id = kernel::idnumber::synthesize(
            350602,
            chrono::NaiveDate::from_ymd_opt(1960, 5, 17).unwrap(),
            1,
            kernel::idnumber::Sex::Male,
        );
        let out = dep
            .command()
            .args([
                "admin",
                "bootstrap",
                "--login",
                ADMIN.0,
                "--name",
                "管理员",
                "--id-number",
                &id,
            ])
            .env("LIFELONG_ADMIN_PASSWORD", ADMIN.1)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Cluster {
            dep,
            client: reqwest::Client::new(),
            token: String::new(),
        }
    }

    /// Start one more node on the database, with a data dir of its own.
    pub fn node(&self) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let (child, url) = self.dep.serve_in(dir.path());
        Node {
            child,
            url,
            _dir: dir,
        }
    }

    /// Sign the admin in through `node`.
    pub async fn login(&mut self, node: &Node) {
        let v: Value = self
            .client
            .post(format!("{}/api/v1/auth/login", node.url))
            .json(&json!({ "login": ADMIN.0, "password": ADMIN.1 }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        self.token = v["token"].as_str().expect("token").to_string();
    }

    /// An admin request through `node`: status and JSON body (Null if none).
    pub async fn admin(
        &self,
        node: &Node,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self
            .client
            .request(method, format!("{}/api/v1{path}", node.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().await.unwrap();
        let status = res.status().as_u16();
        let bytes = res.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Upload a package through `node`: `POST /plugin-registry` (install) or
    /// `POST /plugin-registry/{id}/upgrade`.
    pub async fn upload(&self, node: &Node, path: &str, package: &[u8]) -> (u16, Value) {
        let res = self
            .client
            .post(format!("{}/api/v1{path}", node.url))
            .bearer_auth(&self.token)
            .header("content-type", "application/octet-stream")
            .body(package.to_vec())
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Trust the test publisher, install `plugin` (the probe or other,
    /// 1.0.0), grant what it asks for and enable it at the city, all through `node`.
    pub async fn install_and_enable(&self, node: &Node, plugin: &str) {
        self.install(node, plugin).await;
        self.set_enabled(node, plugin, true).await;
    }

    /// Trust the test publisher, install `plugin` (the probe or other,
    /// 1.0.0) and grant at the city what it asks for, all through `node`.
    pub async fn install(&self, node: &Node, plugin: &str) {
        let pkgs = packages();
        let (s, v) = self
            .admin(
                node,
                reqwest::Method::PUT,
                "/plugin-publishers/lifelong",
                Some(json!({ "public_key": pkgs.public_key })),
            )
            .await;
        assert_eq!(s, 200, "trust: {v}");
        assert_eq!(v["publisher"], "lifelong", "trust answers the entry: {v}");
        let (bytes, caps) = match plugin {
            "probe" => (&pkgs.probe, PROBE_CAPABILITIES),
            "other" => (&pkgs.other, &[][..]),
            _ => panic!("no test package {plugin}"),
        };
        let (s, v) = self.upload(node, "/plugin-registry", bytes).await;
        assert_eq!(s, 201, "install {plugin}: {v}");
        if !caps.is_empty() {
            let (s, v) = self
                .admin(
                    node,
                    reqwest::Method::PUT,
                    &format!("/plugin-registry/{plugin}/sites/CITY/grants"),
                    Some(json!({ "capabilities": caps })),
                )
                .await;
            assert_eq!(s, 204, "grant {plugin}: {v}");
        }
    }

    /// Enable or disable `plugin` at the city through `node`.
    pub async fn set_enabled(&self, node: &Node, plugin: &str, enabled: bool) {
        let (s, v) = self
            .admin(
                node,
                reqwest::Method::PUT,
                &format!("/plugin-registry/{plugin}/sites/CITY/enabled"),
                Some(json!({ "enabled": enabled })),
            )
            .await;
        assert_eq!(s, 204, "enabled={enabled} {plugin}: {v}");
    }

    /// A plugin route at the city through `node`, anonymously: status and JSON body.
    pub async fn call(
        &self,
        node: &Node,
        method: reqwest::Method,
        plugin: &str,
        path: &str,
    ) -> (u16, Value) {
        let mut r = self.client.request(
            method.clone(),
            format!("{}/api/v1/plugins/{plugin}{path}?site=CITY", node.url),
        );
        if method == reqwest::Method::POST {
            r = r.json(&json!({ "body": "b" }));
        }
        let res = r.send().await.unwrap();
        let status = res.status().as_u16();
        let bytes = res.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Poll `node`'s `GET` of a plugin route until it answers `status`;
    /// how long that took, or None if it did not within `limit`.
    pub async fn wait_for_status(
        &self,
        node: &Node,
        plugin: &str,
        path: &str,
        status: u16,
        limit: Duration,
    ) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.call(node, reqwest::Method::GET, plugin, path).await.0 == status {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

/// The value of one Prometheus sample line (`name{labels} value`) in `text`, or 0.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}
