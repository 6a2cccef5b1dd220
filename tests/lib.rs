//! End-to-end test support: run the real `lifelong` binary on port 0 against
//! SQLite or PostgreSQL, as an operator would; [`cluster`] runs several
//! nodes on one PostgreSQL database.

pub mod cluster;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The `lifelong` binary built by this workspace.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    let bin = dir.join("lifelong");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p kernel` (the workspace test command does)",
        bin.display()
    );
    bin
}

/// One kernel deployment: a data dir and a database.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    pub database_url: Option<String>,
    pg: Option<(String, String)>,
}

impl Deployment {
    /// A fresh SQLite deployment.
    pub fn sqlite() -> Deployment {
        Deployment {
            dir: tempfile::tempdir().unwrap(),
            database_url: None,
            pg: None,
        }
    }

    /// A fresh PostgreSQL database on the local server.
    pub fn postgres() -> Deployment {
        let base = std::env::var("LIFELONG_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let name = format!("lifelong_e2e_{}_{}", std::process::id(), rand_suffix());
        let ok = Command::new("psql")
            .args([
                &format!("{base}/postgres"),
                "-qc",
                &format!("CREATE DATABASE {name}"),
            ])
            .status()
            .expect("psql must be installed");
        assert!(ok.success(), "cannot create database {name}");
        Deployment {
            dir: tempfile::tempdir().unwrap(),
            database_url: Some(format!("{base}/{name}")),
            pg: Some((base, name)),
        }
    }

    /// A `lifelong` command configured for this deployment.
    pub fn command(&self) -> Command {
        let mut c = Command::new(binary());
        c.env("LIFELONG_DATA_DIR", self.dir.path())
            .env("LIFELONG_LISTEN", "127.0.0.1:0")
            .env("LIFELONG_PII_KEY", "ab".repeat(32))
            .env("LIFELONG_LOG", "warn")
            .env_remove("LIFELONG_CONFIG");
        match &self.database_url {
            Some(u) => c.env("LIFELONG_DATABASE_URL", u),
            None => c.env_remove("LIFELONG_DATABASE_URL"),
        };
        c
    }

    /// Start `lifelong serve`; returns the child and its base URL.
    pub fn serve(&self) -> (Child, String) {
        self.serve_in(self.dir.path())
    }

    /// Start `lifelong serve` with `data_dir` as its data dir: another node
    /// on the same database keeps its own compiled-plugin cache there.
    pub fn serve_in(&self, data_dir: &Path) -> (Child, String) {
        let mut child = self
            .command()
            .env("LIFELONG_DATA_DIR", data_dir)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("server exited before listening")
                .unwrap();
            if let Some(u) = line.strip_prefix("listening on ") {
                break u.to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        (child, url)
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if let Some((base, name)) = &self.pg {
            let _ = Command::new("psql")
                .args([
                    &format!("{base}/postgres"),
                    "-qc",
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ])
                .status();
        }
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        % 1_000_000_007
}
