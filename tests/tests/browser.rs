//! The web console in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`), driven over W3C WebDriver from this test binary.
//!
//! Per backend, one story on one server and one browser session: the demo
//! city is built with `lifelong demo --no-serve` (run outside the checkout,
//! so no plugin is built: the test installs its own through the console),
//! `lifelong serve` runs it, and the console is used as an admin would:
//! - sign in with the keyboard as the city admin (skip link, labels);
//! - the dashboard shows the ten plan indicators, charts and the map;
//! - trust a publisher and upload a real signed package (install, upgrade,
//!   roll back after the confirmation, upgrade again) on the modules page;
//! - grant and enable the module at a township by clicking, then the
//!   plugin answers an HTTP call at that township (and still not at another);
//! - trust a second publisher bound to that township with approval required
//!   (the trust form's site, ceiling and approval fields); its plugin's
//!   enable there shows "waiting for approval" with the request number, and
//!   in the console's queue a refusal without a reason shows the API's 422,
//!   approving makes it serve there; revoking the
//!   publisher (after a confirmation) stops it;
//! - import a sites CSV with a bad row: the per-row error is on the page
//!   and nothing was written; a good file imports; export; search; create a
//!   site with the form and close it;
//! - persons show masked ID numbers; the account statement, audit log and
//!   plugin health pages render (with the plugin's quota usage);
//! - the language switch is remembered across a reload;
//! - a township admin sees only their township: not in the tree, not in
//!   search, and direct navigation shows the API's refusal.
//!
//! The SQLite run writes screenshots of the main pages to
//! `target/screenshots/` (the best are kept in `docs/`).
//! Without Chromium the tests fail saying what to install; they never skip.

#[path = "../browser/webdriver.rs"]
mod webdriver;

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Child;
use tests::Deployment;
use webdriver::{Driver, Session, ENTER, TAB};

const ADMIN: (&str, &str) = ("admin", "lifelong-demo");
const TOWNSHIP_ADMIN: (&str, &str) = ("t01-admin", "lifelong-demo");

/// The demo city served by the real binary; the server is killed on drop.
struct City {
    _dep: Deployment,
    child: Child,
    url: String,
}

impl Drop for City {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn city(dep: Deployment) -> City {
    let out = dep
        .command()
        .current_dir(dep.dir.path())
        .args(["demo", "--no-serve"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lifelong demo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (child, url) = dep.serve();
    City {
        _dep: dep,
        child,
        url,
    }
}

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots")
}

/// An API call with a bearer token: (status, JSON body, or the text).
async fn api(url: &str, token: &str, method: reqwest::Method, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .request(method, format!("{url}/api/v1{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn token(url: &str, who: (&str, &str)) -> String {
    let r: Value = reqwest::Client::new()
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({"login": who.0, "password": who.1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["token"].as_str().unwrap().to_string()
}

/// Go to `#/<hash>` and wait until that page has rendered.
async fn open(s: &Session, url: &str, hash: &str) {
    s.exec(
        "const m = document.getElementById('main'); if (m) m.dataset.ready = '';",
        vec![],
    )
    .await;
    // As a link would: a new hash renders through hashchange; the same hash
    // is rendered again (a WebDriver navigation to it would be a no-op).
    let _ = url;
    s.exec(
        "const h = '#/' + arguments[0]; if (location.hash === h) LL.render(); else location.hash = h;",
        vec![json!(hash)],
    )
    .await;
    let (path, query) = hash.split_once('?').unwrap_or((hash, ""));
    let (page, args) = path.split_once('/').unwrap_or((path, ""));
    let want = format!("{page}|{args}|{query}|");
    s.wait(
        &format!("page {hash}"),
        &format!(
            "const m = document.getElementById('main'); \
             return m && (m.dataset.ready || '').startsWith({}) && m.getAttribute('aria-busy') === 'false'",
            json!(want)
        ),
    )
    .await;
    assert_no_script_error(s).await;
}

async fn assert_no_script_error(s: &Session) {
    let err = s
        .exec(
            "const e = document.getElementById('js-error'); return e.hidden ? null : e.textContent",
            vec![],
        )
        .await;
    assert!(err.is_null(), "the console reported a script error: {err}");
}

/// Wait until the page's text contains `needle`.
async fn see(s: &Session, needle: &str) {
    s.wait(
        &format!("text {needle:?}"),
        &format!("return document.body.innerText.includes({})", json!(needle)),
    )
    .await;
}

/// Sign in through the form (keyboard only: type, Tab, type, Enter).
async fn sign_in(s: &Session, who: (&str, &str)) {
    let login = s.find("#login").await;
    s.click(&login).await;
    s.type_into(&login, who.0).await;
    s.keys(TAB).await;
    let focused = s.exec("return document.activeElement.id", vec![]).await;
    assert_eq!(
        focused,
        json!("password"),
        "Tab goes from login to password"
    );
    s.keys(who.1).await;
    s.keys(ENTER).await;
    s.wait(
        "the signed-in console",
        "return !document.getElementById('sign-out').hidden && document.getElementById('main').dataset.ready",
    )
    .await;
}

async fn sign_out(s: &Session) {
    let out = s.find("#sign-out").await;
    s.click(&out).await;
    s.find("#sign-in").await;
}

async fn story(dep: Deployment, shots: bool) {
    let packages = tokio::task::spawn_blocking(tests::cluster::packages)
        .await
        .unwrap();
    let city = tokio::task::spawn_blocking(move || city(dep))
        .await
        .unwrap();
    let url = city.url.clone();
    let driver = Driver::start().await;
    let s = Session::new(&driver, 1440, 900).await;
    let shot = |name: &str| screenshots().join(format!("{name}.png"));
    let pkg_dir = tempfile::tempdir().unwrap();
    let probe = pkg_dir.path().join("probe-1.0.0.llpkg");
    let probe_11 = pkg_dir.path().join("probe-1.1.0.llpkg");
    std::fs::write(&probe, &packages.probe).unwrap();
    std::fs::write(&probe_11, &packages.probe_1_1).unwrap();

    // --- The first page: Chinese, a skip link first in tab order, sign-in form.
    s.goto(&format!("{url}/")).await;
    s.find("#sign-in").await;
    assert_eq!(
        s.exec("return document.documentElement.lang", vec![]).await,
        json!("zh-CN")
    );
    see(&s, "管理员登录").await;
    if shots {
        s.screenshot(&shot("console-sign-in")).await;
    }
    // A wrong password shows the API's problem on the page.
    let login = s.find("#login").await;
    s.type_into(&login, "admin").await;
    let pw = s.find("#password").await;
    s.type_into(&pw, "wrong-password").await;
    s.click(&s.find("#sign-in-button").await).await;
    s.find("#sign-in .problem, .signin .problem").await;
    s.clear(&login).await;
    s.clear(&pw).await;
    sign_in(&s, ADMIN).await;
    // Keyboard: on a fresh load the first Tab reaches the skip link, and
    // Enter moves the focus to <main>.
    s.goto(&format!("{url}/?fresh#/audit")).await;
    s.wait(
        "the audit page",
        "return (document.getElementById('main').dataset.ready || '').startsWith('audit|')",
    )
    .await;
    s.keys(TAB).await;
    assert_eq!(
        s.exec("return document.activeElement.id", vec![]).await,
        json!("skip-link"),
        "the skip link comes first: {}",
        s.exec(
            "return document.activeElement.outerHTML.slice(0, 200)",
            vec![]
        )
        .await
    );
    s.keys(ENTER).await;
    assert_eq!(
        s.exec("return document.activeElement.id", vec![]).await,
        json!("main")
    );

    // --- Dashboard: the ten indicators, the charts, the map.
    open(&s, &url, "dashboard").await;
    let ids = s
        .exec(
            "return [...document.querySelectorAll('#indicators .ind-card')].map(e => e.dataset.indicator)",
            vec![],
        )
        .await;
    assert_eq!(
        ids,
        json!(["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]),
        "the dashboard shows the ten plan indicators; the page reads:\n{}",
        s.text().await
    );
    s.find("svg.progress-chart").await;
    s.find("svg.series-chart, .page .problem").await;
    s.find("svg.dot-map").await;
    if shots {
        s.screenshot(&shot("console-dashboard")).await;
    }

    // --- Modules (city admin): trust the publisher, install, then upgrade.
    open(&s, &url, "modules").await;
    let publisher = s.find("#trust-form input[name=publisher]").await;
    s.type_into(&publisher, "lifelong").await;
    let key = s.find("#trust-form input[name=public_key]").await;
    s.type_into(&key, &packages.public_key).await;
    s.click(&s.find("#trust-form button").await).await;
    see(&s, "已信任发布者 lifelong").await;
    s.find("#publishers").await;
    let file = s.find("#package-file").await;
    s.type_into(&file, probe.to_str().unwrap()).await;
    s.click(&s.find("#upload-button").await).await;
    see(&s, "已安装 probe 1.0.0").await;
    s.find("#plugin-registry tr[data-plugin=probe]").await;
    let file = s.find("#package-file").await;
    s.type_into(&file, probe_11.to_str().unwrap()).await;
    s.exec(
        "const m = document.getElementById('upload-mode'); m.value = 'probe';",
        vec![],
    )
    .await;
    s.click(&s.find("#upload-button").await).await;
    see(&s, "已将 probe 升级到 1.1.0").await;
    let admin = token(&url, ADMIN).await;
    let (_, info) = api(&url, &admin, reqwest::Method::GET, "/plugin-registry/probe").await;
    assert_eq!(info["version"], json!("1.1.0"));
    assert_eq!(info["previous"], json!("1.0.0"));
    // Roll back by clicking (after a confirmation), then upgrade again.
    s.click(
        &s.find("#plugin-registry tr[data-plugin=probe] [data-action=rollback]")
            .await,
    )
    .await;
    assert!(s.accept_dialog().await.contains("1.0.0"));
    see(&s, "已将 probe 回滚到 1.0.0").await;
    let (_, info) = api(&url, &admin, reqwest::Method::GET, "/plugin-registry/probe").await;
    assert_eq!(info["version"], json!("1.0.0"));
    let file = s.find("#package-file").await;
    s.type_into(&file, probe_11.to_str().unwrap()).await;
    s.exec(
        "document.getElementById('upload-mode').value = 'probe';",
        vec![],
    )
    .await;
    s.click(&s.find("#upload-button").await).await;
    see(&s, "已将 probe 升级到 1.1.0").await;
    // Uploading garbage shows the API's refusal.
    let junk = pkg_dir.path().join("junk.llpkg");
    std::fs::write(&junk, b"not a package").unwrap();
    let file = s.find("#package-file").await;
    s.type_into(&file, junk.to_str().unwrap()).await;
    s.exec("document.getElementById('upload-mode').value = '';", vec![])
        .await;
    s.click(&s.find("#upload-button").await).await;
    s.find("#registry-result .problem").await;

    // --- Enable the module at township T01 by clicking; it is served there.
    let (before, _) = api(
        &url,
        &admin,
        reqwest::Method::GET,
        "/plugins/probe/ok?site=T01",
    )
    .await;
    assert_ne!(before, 200, "not enabled yet");
    open(&s, &url, "modules?site=T01").await;
    let card = "article[data-plugin=probe]";
    see(&s, "未启用").await;
    s.click(&s.find(&format!("{card} [data-action=grant]")).await)
        .await;
    see(&s, "已在 T01 向").await;
    s.find(&format!(
        "{card} li[data-capability='accounts.record'] .badge.on"
    ))
    .await;
    s.click(&s.find(&format!("{card} [data-action=enable]")).await)
        .await;
    see(&s, "本站点已启用").await;
    if shots {
        s.screenshot(&shot("console-modules")).await;
    }
    let (after, body) = api(
        &url,
        &admin,
        reqwest::Method::GET,
        "/plugins/probe/ok?site=T01",
    )
    .await;
    assert_eq!(after, 200, "served at T01 after the click: {body}");
    assert_eq!(body, json!({"ok": true}));
    let (other, _) = api(
        &url,
        &admin,
        reqwest::Method::GET,
        "/plugins/probe/ok?site=T02",
    )
    .await;
    assert_ne!(other, 200, "still not served at T02");
    // A village under T01 inherits it.
    open(&s, &url, "modules?site=T01-V1").await;
    see(&s, "继承自 T01（已启用）").await;

    // --- Approval: a publisher bound to T01 whose plugins wait for the
    // city's approval, trusted with the console's form (site, capability
    // ceiling, approval); its plugin installed and enabled at T01 answers
    // 202, the page says it waits, and the city admin approves it in the
    // queue; then the plugin serves at T01.
    let t01_key = kernel::plugins::package::PublisherKey::generate("t01-pub").unwrap();
    let base = kernel::plugins::package::Package::decode(&packages.probe).unwrap();
    let mut p2 = kernel::plugins::package::Package::new(
        base.manifest_text
            .replacen("id = \"probe\"", "id = \"probe2\"", 1)
            .replacen("publisher = \"lifelong\"", "publisher = \"t01-pub\"", 1),
        base.component.clone(),
    )
    .unwrap();
    p2.sign(&t01_key).unwrap();
    let probe2 = pkg_dir.path().join("probe2-1.0.0.llpkg");
    std::fs::write(&probe2, p2.encode()).unwrap();
    open(&s, &url, "modules").await;
    let public = t01_key.public_hex();
    for (name, value) in [
        ("publisher", "t01-pub"),
        ("public_key", public.as_str()),
        ("site", "T01"),
        (
            "capabilities",
            "sites.read, identity.read, accounts.record, accounts.read",
        ),
    ] {
        let input = s.find(&format!("#trust-form input[name={name}]")).await;
        s.type_into(&input, value).await;
    }
    s.exec(
        "document.querySelector('#trust-form select[name=approval]').value = 'yes';",
        vec![],
    )
    .await;
    s.click(&s.find("#trust-form button").await).await;
    see(&s, "已信任发布者 t01-pub").await;
    s.find("#publishers tr[data-publisher='t01-pub'][data-status=trusted]")
        .await;
    let (_, pubs) = api(&url, &admin, reqwest::Method::GET, "/plugin-publishers").await;
    let bound = pubs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["publisher"] == json!("t01-pub"))
        .unwrap();
    assert_eq!(
        (&bound["site"], &bound["approval"], &bound["capabilities"]),
        (
            &json!("T01"),
            &json!(true),
            &json!([
                "accounts.read",
                "accounts.record",
                "identity.read",
                "sites.read"
            ])
        ),
        "the form's fields reached the trust store: {bound}"
    );
    let file = s.find("#package-file").await;
    s.type_into(&file, probe2.to_str().unwrap()).await;
    s.click(&s.find("#upload-button").await).await;
    see(&s, "已安装 probe2 1.0.0").await;
    open(&s, &url, "modules?site=T01").await;
    let card = "article[data-plugin=probe2]";
    s.click(&s.find(&format!("{card} [data-action=grant]")).await)
        .await;
    see(&s, "已在 T01 向").await;

    // --- Sites: a CSV with a bad row shows the per-row error, writes nothing.
    open(&s, &url, "sites").await;
    s.find("#site-tree li[data-site=CITY]").await;
    let header = "code,name_zh,name_en,kind,parent_code,address,latitude,longitude,operator,opened_on,status,closed_on";
    let good = "T01-BRW1,浏览器测试学校,Browser test school,community_school,T01,,24.5,117.6,public,2026-03-01,active,";
    let bad = "T01-BRW2,坏行,,no_such_kind,T01,,,,public,2026-03-01,active,";
    let text = s.find("#csv-text").await;
    s.type_into(&text, &format!("{header}\n{good}\n{bad}\n"))
        .await;
    s.click(&s.find("#import-button").await).await;
    s.find("#import-result .problem table.row-errors").await;
    let cells = s
        .exec(
            "return [...document.querySelectorAll('#import-result table.row-errors tbody tr')].map(r => [...r.cells].map(c => c.textContent))",
            vec![],
        )
        .await;
    let rows = cells.as_array().unwrap();
    assert_eq!(rows.len(), 1, "one row error: {cells}");
    assert_eq!(rows[0][0], json!("3"), "the bad row is line 3: {cells}");
    assert_eq!(rows[0][1], json!("kind"));
    assert!(rows[0][2].as_str().unwrap().contains("no_such_kind"));
    see(&s, "nothing was imported").await;
    if shots {
        s.screenshot(&shot("console-sites-import")).await;
    }
    let (status, _) = api(&url, &admin, reqwest::Method::GET, "/sites/T01-BRW1").await;
    assert_eq!(status, 404, "nothing was written");
    s.clear(&text).await;
    s.type_into(&text, &format!("{header}\n{good}\n")).await;
    s.click(&s.find("#import-button").await).await;
    see(&s, "导入完成：新建 1 个").await;
    // Export T01's subtree: the page offers the API's CSV as a download.
    let within = s.find("#export-form input[name=within]").await;
    s.clear(&within).await;
    s.type_into(&within, "T01").await;
    s.click(&s.find("#export-form button").await).await;
    s.find("a[download='sites-T01.csv']").await;
    let (_, direct) = api(
        &url,
        &admin,
        reqwest::Method::GET,
        "/sites/export?within=T01",
    )
    .await;
    let rows = direct.as_str().unwrap().trim().lines().count() - 1;
    see(&s, &format!("已生成 sites-T01.csv（{rows} 个站点）")).await;
    // Search, then the site's details.
    let q = s.find("#site-q").await;
    s.type_into(&q, "浏览器测试").await;
    s.click(&s.find("#site-search button").await).await;
    s.find("#site-results tr[data-site=T01-BRW1]").await;
    open(&s, &url, "sites/T01-BRW1").await;
    s.find("#site-fields").await;
    see(&s, "Browser test school").await;
    s.find("#site-tree li[data-site=T01] li[data-site=T01-BRW1]")
        .await;
    if shots {
        s.screenshot(&shot("console-sites")).await;
    }

    // Create a site under T01 with the form, then close it.
    open(&s, &url, "sites/T01").await;
    s.click(&s.find("#create-child summary").await).await;
    let kinds = s
        .exec(
            "return [...document.querySelectorAll('#create-site select[name=kind] option')].map(o => o.value)",
            vec![],
        )
        .await;
    assert!(
        !kinds.as_array().unwrap().contains(&json!("township")),
        "only kinds a township may hold: {kinds}"
    );
    for (name, value) in [("code", "T01-BRW3"), ("name_zh", "浏览器新建点")] {
        let input = s.find(&format!("#create-site input[name={name}]")).await;
        s.type_into(&input, value).await;
    }
    s.exec(
        "document.querySelector('#create-site select[name=kind]').value = 'museum';",
        vec![],
    )
    .await;
    s.click(&s.find("#create-site button[type=submit]").await)
        .await;
    s.wait(
        "the new site's page",
        "return location.hash === '#/sites/T01-BRW3' && document.getElementById('site-fields')",
    )
    .await;
    see(&s, "浏览器新建点").await;
    let (status, made) = api(&url, &admin, reqwest::Method::GET, "/sites/T01-BRW3").await;
    assert_eq!(
        (status, &made["kind"], &made["parent_code"]),
        (200, &json!("museum"), &json!("T01"))
    );
    s.click(&s.find("#close-site button").await).await;
    see(&s, "站点 T01-BRW3 已关闭").await;
    let (_, closed) = api(&url, &admin, reqwest::Method::GET, "/sites/T01-BRW3").await;
    assert_eq!(closed["status"], json!("closed"));

    // --- Persons: masked ID numbers only; a person's statement.
    open(&s, &url, "persons?site=T01").await;
    s.find("#persons tbody tr").await;
    let page = s.text().await;
    assert!(
        !page
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w.len() == 18 && w[..17].chars().all(|c| c.is_ascii_digit())),
        "no unmasked ID number on the persons page"
    );
    let first = s
        .exec(
            "return document.querySelector('#persons tbody tr').dataset.person",
            vec![],
        )
        .await;
    open(&s, &url, &format!("persons/{}", first.as_str().unwrap())).await;
    s.find("#person-fields").await;
    s.find("#statement, .page .muted").await;
    if shots {
        s.screenshot(&shot("console-person")).await;
    }

    // --- Audit log and plugin health.
    open(&s, &url, "audit").await;
    s.find("#audit tr[data-action='plugin.enable']").await;
    s.find("#audit tr[data-action='site.import'], #audit tr[data-action^='site.']")
        .await;
    if shots {
        s.screenshot(&shot("console-audit")).await;
    }
    open(&s, &url, "health").await;
    s.find(".card[data-plugin=probe] .version").await;
    let calls = s
        .exec(
            "return document.querySelector('.card[data-plugin=probe] .version[data-version=\"1.1.0\"] b.calls').textContent",
            vec![],
        )
        .await;
    assert_ne!(
        calls,
        json!("0"),
        "the health page counts the probe's calls"
    );
    // The probe's usage against its quotas: a row per quota, with its share.
    s.find(".card[data-plugin=probe] table.quota tr[data-quota=rows]")
        .await;
    s.find(".card[data-plugin=probe] table.quota tr[data-quota=calls_per_minute]")
        .await;
    s.find("#parked").await;
    if shots {
        s.screenshot(&shot("console-health")).await;
    }

    // --- English, remembered across a reload.
    open(&s, &url, "dashboard").await;
    s.click(&s.find("#lang-switch").await).await;
    see(&s, "Plan indicators").await;
    s.goto(&format!("{url}/#/sites")).await;
    s.exec("location.reload()", vec![]).await;
    see(&s, "The site tree").await;
    assert_eq!(
        s.exec("return document.documentElement.lang", vec![]).await,
        json!("en")
    );
    open(&s, &url, "dashboard").await;
    if shots {
        s.screenshot(&shot("console-dashboard-en")).await;
    }
    s.click(&s.find("#lang-switch").await).await;
    see(&s, "规划指标监测").await;

    // --- A township admin sees only their township.
    sign_out(&s).await;
    sign_in(&s, TOWNSHIP_ADMIN).await;
    open(&s, &url, "dashboard").await;
    assert_eq!(
        s.exec(
            "return document.querySelectorAll('#indicators .ind-card').length",
            vec![]
        )
        .await,
        json!(10)
    );
    let township = token(&url, TOWNSHIP_ADMIN).await;
    let (_, ind) = api(&url, &township, reqwest::Method::GET, "/indicators").await;
    assert_eq!(ind["site"], json!("T01"));
    see(&s, "T01").await;
    if shots {
        s.screenshot(&shot("console-township-dashboard")).await;
    }
    open(&s, &url, "sites").await;
    s.find("#site-tree li[data-site=T01]").await;
    assert!(s
        .exec(
            "return document.querySelector('#site-tree li[data-site=CITY]')",
            vec![]
        )
        .await
        .is_null());
    s.click(&s.find("#site-tree li[data-site=T01] button.toggle").await)
        .await;
    s.find("#site-tree li[data-site=T01] li[data-site='T01-V1']")
        .await;
    let tree = s
        .exec(
            "return [...document.querySelectorAll('#site-tree li[data-site]')].map(l => l.dataset.site)",
            vec![],
        )
        .await;
    assert!(
        tree.as_array()
            .unwrap()
            .iter()
            .all(|c| c.as_str().unwrap().starts_with("T01")),
        "only T01 in the tree: {tree}"
    );
    // Search for another township's code: the API answers nothing of it.
    open(&s, &url, "sites?q=T02").await;
    s.find("#site-results-empty, #site-results").await;
    assert!(s
        .exec(
            "return document.querySelector('#site-results tr[data-site^=T02]')",
            vec![]
        )
        .await
        .is_null());
    let (_, direct) = api(&url, &township, reqwest::Method::GET, "/sites?q=T02").await;
    assert_eq!(direct["items"], json!([]), "the API agrees: {direct}");
    // Direct navigation shows the API's refusal, not the site.
    let (status, _) = api(&url, &township, reqwest::Method::GET, "/sites/T02").await;
    assert!(status == 403 || status == 404);
    open(&s, &url, "sites/T02").await;
    s.find(&format!("#site-detail .problem[data-status='{status}']"))
        .await;
    assert!(s
        .exec("return document.getElementById('site-fields')", vec![])
        .await
        .is_null());
    if shots {
        s.screenshot(&shot("console-township-refused")).await;
    }
    open(&s, &url, "dashboard?site=T02").await;
    s.find(".page .problem").await;
    open(&s, &url, "modules?site=T02").await;
    s.find("#site-plugins .problem").await;
    // The module enabled at T01 shows as enabled here; the registry is
    // listed (the API lets any signed-in user read it), the trust store is
    // not (the API answers it to city admins only), and an upload by a
    // township admin gets the API's refusal on the page.
    open(&s, &url, "modules").await;
    s.find("article[data-plugin=probe]").await;
    see(&s, "本站点已启用").await;
    s.find("#plugin-registry tr[data-plugin=probe]").await;
    assert!(s
        .exec("return document.getElementById('trust-store')", vec![])
        .await
        .is_null());
    let file = s.find("#package-file").await;
    s.type_into(&file, probe.to_str().unwrap()).await;
    s.click(&s.find("#upload-button").await).await;
    s.find("#registry-result .problem[data-status='403']").await;
    // Plugin health is for city admins: the API's 403 is shown.
    open(&s, &url, "health").await;
    s.find(".page .problem[data-status='403']").await;
    open(&s, &url, "audit?site=T02").await;
    s.find(".page .problem").await;
    // The township admin enables the bound publisher's plugin at T01: it
    // waits for the city's approval (202), and the page says so.
    open(&s, &url, "modules?site=T01").await;
    let card = "article[data-plugin=probe2]";
    s.click(&s.find(&format!("{card} [data-action=enable]")).await)
        .await;
    let request = s
        .wait(
            "the waiting note",
            "const n = document.querySelector('.notice .pending'); return n && n.dataset.request",
        )
        .await;
    let request = request.as_str().unwrap().to_string();
    see(&s, &format!("等待市级审批（请求 #{request}）")).await;
    let (waiting, _) = api(
        &url,
        &admin,
        reqwest::Method::GET,
        "/plugins/probe2/ok?site=T01",
    )
    .await;
    assert_ne!(waiting, 200, "not served while the request waits");
    // The township admin follows the note's link: the request, pending,
    // with no decision buttons (deciding is the city's).
    s.click(&s.find(".notice .pending a").await).await;
    s.find(&format!(
        "#approvals article[data-approval='{request}'][data-status=pending]"
    ))
    .await;
    assert!(s
        .exec(
            "return document.querySelector('#approvals [data-action=approve]')",
            vec![]
        )
        .await
        .is_null());
    // The city admin sees the request in the queue, with the API's
    // capability meanings, and approves it.
    sign_out(&s).await;
    sign_in(&s, ADMIN).await;
    open(&s, &url, "modules").await;
    let queued = format!("#pending-approvals article[data-approval='{request}']");
    s.find(&format!("{queued} li[data-capability='accounts.record']"))
        .await;
    see(&s, "首次启用").await;
    if shots {
        s.screenshot(&shot("console-approvals")).await;
    }
    // Refusing needs a reason: without one the API's problem is shown there.
    s.click(&s.find(&format!("{queued} [data-action=refuse]")).await)
        .await;
    s.find(&format!("{queued} .problem[data-status='422']"))
        .await;
    see(&s, "say why the request is refused").await;
    s.click(&s.find(&format!("{queued} [data-action=approve]")).await)
        .await;
    see(&s, &format!("已批准请求 #{request}（probe2）")).await;
    s.find(&format!(
        "#decided-approvals article[data-approval='{request}'][data-status=approved]"
    ))
    .await;
    let (served, body) = api(
        &url,
        &admin,
        reqwest::Method::GET,
        "/plugins/probe2/ok?site=T01",
    )
    .await;
    assert_eq!(served, 200, "served at T01 once approved: {body}");
    // Revoking the publisher (after a confirmation) stops it serving.
    s.click(
        &s.find("#publishers tr[data-publisher='t01-pub'] [data-action=revoke]")
            .await,
    )
    .await;
    assert!(s.accept_dialog().await.contains("t01-pub"));
    see(&s, "已吊销发布者 t01-pub").await;
    s.find("#publishers tr[data-publisher='t01-pub'][data-status=revoked]")
        .await;
    let (revoked, _) = api(
        &url,
        &admin,
        reqwest::Method::GET,
        "/plugins/probe2/ok?site=T01",
    )
    .await;
    assert_ne!(revoked, 200, "not served once the publisher is revoked");

    sign_out(&s).await;
    s.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_browser_sqlite() {
    story(Deployment::sqlite(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_browser_postgres() {
    story(Deployment::postgres(), false).await;
}
