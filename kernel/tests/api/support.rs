//! Test support: a kernel on a fresh database of either backend, a seeded
//! site tree with admins, and a one-call HTTP helper.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use kernel::authz::Actor;
use kernel::config::Limits;
use kernel::http::{app, AppState};
use kernel::identity::{self, NewPerson};
use kernel::idnumber::{synthesize, Sex};
use kernel::sites::{self, NewSite};
use kernel::storage::{Db, ScratchDb};
use kernel::{crypto::PiiKeys, Kernel};
use serde_json::Value;
use tower::ServiceExt;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Run a test body on both backends: `both!(name, |env| async move { … });`
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let env = $crate::support::Env::new($crate::support::Backend::Sqlite).await;
                ($body)(env.clone()).await;
                env.cleanup().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let env = $crate::support::Env::new($crate::support::Backend::Postgres).await;
                ($body)(env.clone()).await;
                env.cleanup().await;
            }
        }
    };
}

/// One test's world.
#[derive(Clone)]
pub struct Env {
    pub kernel: Kernel,
    pub state: AppState,
    pub app: Router,
    pub admin: String,
    pub t1_admin: String,
    pub t1_admin_id: i64,
    pub learner: String,
    pub learner_id: i64,
    pg: Option<ScratchDb>,
    _dir: std::sync::Arc<Option<tempfile::TempDir>>,
}

static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A fresh valid ID number.
pub fn new_id(sex: Sex) -> String {
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let birth =
        chrono::NaiveDate::from_ymd_opt(1950 + (n % 50) as i32, 1 + n % 12, 1 + n % 28).unwrap();
    synthesize(350602 + n / 500, birth, n % 500 * 2, sex)
}

impl Env {
    pub async fn new(backend: Backend) -> Env {
        Env::with_limits(backend, Limits::default()).await
    }

    pub async fn with_limits(backend: Backend, limits: Limits) -> Env {
        let (url, dir, pg) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                (
                    format!("sqlite://{}", dir.path().join("t.db").display()),
                    Some(dir),
                    None,
                )
            }
            Backend::Postgres => {
                let scratch = ScratchDb::create()
                    .await
                    .expect("PostgreSQL must run at LIFELONG_TEST_PG");
                (scratch.url(), None, Some(scratch))
            }
        };
        let db = Db::open(&url).await.unwrap();
        let kernel = Kernel {
            db,
            pii: PiiKeys::from_hex(&"42".repeat(32)).unwrap(),
            token_ttl_secs: 3600,
            outcome_maxima: Default::default(),
        };
        let sys = Actor::System("test");
        for (code, kind, parent) in [
            ("CITY", "city", None),
            ("T1", "township", Some("CITY")),
            ("T2", "township", Some("CITY")),
            ("T1-V1", "village", Some("T1")),
            ("T2-V1", "village", Some("T2")),
        ] {
            sites::create(
                &kernel.db,
                &sys,
                NewSite {
                    code: code.into(),
                    name_zh: format!("{code}站"),
                    kind: kind.into(),
                    parent_code: parent.map(Into::into),
                    opened_on: Some("2020-01-01".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
        let (admin, _) = person_with_role(&kernel, "admin", "CITY", "city_admin").await;
        let (t1_admin, t1_admin_id) =
            person_with_role(&kernel, "t1admin", "T1", "site_admin").await;
        let (learner, learner_id) = person_with_role(&kernel, "learner1", "T1-V1", "learner").await;
        let state = AppState::new(kernel.clone(), &limits);
        let app = app(state.clone(), &limits);
        Env {
            kernel,
            state,
            app,
            admin,
            t1_admin,
            t1_admin_id,
            learner,
            learner_id,
            pg,
            _dir: std::sync::Arc::new(dir),
        }
    }

    /// Drop the PostgreSQL database of this test.
    pub async fn cleanup(&self) {
        self.kernel.db.close().await;
        if let Some(scratch) = &self.pg {
            scratch.drop_database().await;
        }
    }

    /// Make a signed-in person with `role` at `site`; returns (token, id).
    pub async fn person(&self, login: &str, home: &str, role: &str) -> (String, i64) {
        person_with_role(&self.kernel, login, home, role).await
    }

    /// One request; returns status, headers and the parsed body (Null if empty, String if not JSON).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Body,
        content_type: Option<&str>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let res = self
            .app
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, headers, value)
    }

    /// A GET without a body.
    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call("GET", path, token, None).await
    }

    /// A JSON request.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (s, _, v) = match body {
            Some(b) => {
                self.raw(
                    method,
                    path,
                    token,
                    Body::from(b.to_string()),
                    Some("application/json"),
                )
                .await
            }
            None => self.raw(method, path, token, Body::empty(), None).await,
        };
        (s, v)
    }
}

async fn person_with_role(kernel: &Kernel, login: &str, home: &str, role: &str) -> (String, i64) {
    let sys = Actor::System("test");
    let p = identity::create(
        kernel,
        &sys,
        NewPerson {
            name: format!("{login}的名字"),
            id_number: new_id(Sex::Female),
            home_site: home.into(),
            login: Some(login.into()),
            password: Some("password-123".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let site = if role == "city_admin" { "CITY" } else { home };
    identity::grant(kernel, &sys, p.id, role, site)
        .await
        .unwrap();
    let t = identity::login(kernel, login, "password-123")
        .await
        .unwrap();
    (t.token, p.id)
}

/// The `code` of every site in a JSON array.
pub fn codes(sites: &Value) -> Vec<String> {
    sites
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["code"].as_str().unwrap().to_string())
        .collect()
}

/// Pretty JSON for snapshot comparison.
pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap()
}
