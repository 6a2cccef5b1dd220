//! A small W3C WebDriver client over reqwest, enough to drive a real
//! headless Chromium through `chromedriver`: sessions, navigation, finding
//! elements, clicks, typing, key actions, scripts and screenshots. The
//! browser tests (`tests/tests/browser.rs`) include it with `#[path]`.
//!
//! Chromium and its driver come from Debian (`chromium`, `chromium-driver`);
//! `scripts/test` installs them when missing. Without them the tests fail
//! with a message saying so — they never skip.

#![allow(dead_code)]

use base64::Engine;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian puts the browser and its driver.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The special keys of the WebDriver spec used here.
pub const TAB: &str = "\u{E004}";
pub const ENTER: &str = "\u{E007}";

/// A running `chromedriver`, killed on drop.
pub struct Driver {
    child: Child,
    pub url: String,
}

impl Driver {
    /// Start chromedriver on a free port and wait until it is ready; panics
    /// with what to install when Chromium or its driver is missing.
    pub async fn start() -> Driver {
        for (path, pkg) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the browser tests need Debian's `{pkg}` package \
                 (scripts/test installs it: apt-get install -y chromium chromium-driver)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let start = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{url}/status")).send().await {
                if let Ok(v) = r.json::<Value>().await {
                    if v["value"]["ready"] == json!(true) {
                        break;
                    }
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Driver { child, url }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An element found on the page.
#[derive(Debug, Clone)]
pub struct Element(pub String);

/// One browser session (one headless Chromium window).
pub struct Session {
    http: reqwest::Client,
    base: String,
}

impl Session {
    /// A new headless Chromium session of `width`×`height` pixels.
    pub async fn new(driver: &Driver, width: u32, height: u32) -> Session {
        let http = reqwest::Client::new();
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--lang=zh-CN", "--hide-scrollbars",
                        "--force-device-scale-factor=1",
                        format!("--window-size={width},{height}"),
                    ],
                },
            }}
        });
        let r: Value = http
            .post(format!("{}/session", driver.url))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver refused a session: {r}"))
            .to_string();
        Session {
            http,
            base: format!("{}/session/{id}", driver.url),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        } else if method == reqwest::Method::POST {
            req = req.json(&json!({}));
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let v: Value = res.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "webdriver {method} {path}: {status} {}",
            v["value"]
        );
        v["value"].clone()
    }

    /// Load `url`.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Run `script` (a function body; `arguments` holds `args`) and return its value.
    pub async fn exec(&self, script: &str, args: Vec<Value>) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Poll `script` until it returns a truthy value (up to 20 s); panics
    /// with `what` and the page's text otherwise.
    pub async fn wait(&self, what: &str, script: &str) -> Value {
        let start = Instant::now();
        loop {
            let v = self.exec(script, vec![]).await;
            let truthy =
                !matches!(&v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return v;
            }
            if start.elapsed() > Duration::from_secs(20) {
                let text = self.exec("return document.body.innerText", vec![]).await;
                panic!(
                    "timed out waiting for {what}; the page reads:\n{}",
                    text.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The first element matching a CSS selector (waiting up to 20 s for it).
    pub async fn find(&self, css: &str) -> Element {
        self.wait(
            &format!("an element {css}"),
            &format!("return document.querySelector({})", json!(css)),
        )
        .await;
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        let id = v[ELEMENT]
            .as_str()
            .or_else(|| v["ELEMENT"].as_str())
            .unwrap_or_else(|| panic!("{css}: not an element reference: {v}"));
        Element(id.to_string())
    }

    pub async fn click(&self, e: &Element) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{}/click", e.0),
            None,
        )
        .await;
    }

    /// Type `text` into an element (a file input takes a file path).
    pub async fn type_into(&self, e: &Element, text: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        )
        .await;
    }

    pub async fn clear(&self, e: &Element) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{}/clear", e.0),
            None,
        )
        .await;
    }

    /// Press keys on whatever has the focus (a key action sequence).
    pub async fn keys(&self, keys: &str) {
        let mut actions = Vec::new();
        for k in keys.chars() {
            actions.push(json!({ "type": "keyDown", "value": k.to_string() }));
            actions.push(json!({ "type": "keyUp", "value": k.to_string() }));
        }
        self.call(
            reqwest::Method::POST,
            "/actions",
            Some(json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": actions }] })),
        )
        .await;
    }

    /// Accept the open `confirm()` dialog, returning its text.
    pub async fn accept_dialog(&self) -> String {
        let start = Instant::now();
        loop {
            let r = self
                .http
                .get(format!("{}/alert/text", self.base))
                .send()
                .await
                .unwrap();
            if r.status().is_success() {
                let v: Value = r.json().await.unwrap();
                self.call(reqwest::Method::POST, "/alert/accept", None)
                    .await;
                return v["value"].as_str().unwrap_or_default().to_string();
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no dialog opened"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The visible text of the page.
    pub async fn text(&self) -> String {
        self.exec("return document.body.innerText", vec![])
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// A PNG of the whole page: the window is grown to the page's height first.
    pub async fn screenshot(&self, path: &Path) {
        self.exec(
            "if (document.activeElement) document.activeElement.blur(); window.scrollTo(0, 0);",
            vec![],
        )
        .await;
        let height = self
            .exec(
                "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)",
                vec![],
            )
            .await
            .as_u64()
            .unwrap_or(900)
            .clamp(700, 4000);
        let rect = self.call(reqwest::Method::GET, "/window/rect", None).await;
        let width = rect["width"].as_u64().unwrap_or(1366);
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height + 90 })),
        )
        .await;
        // Set Window Rect answers once the window has its new size (W3C
        // WebDriver), and Take Screenshot renders a fresh frame: no wait.
        let b64 = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": rect["height"] })),
        )
        .await;
    }

    /// End the session (closes the browser).
    pub async fn quit(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}
