//! Scale benchmark (reported, never asserted): builds persons, sites and
//! ledger entries on a fresh SQLite file and times the operations the plan
//! cares about. Run: `cargo bench -p kernel --bench scale -- [persons] [sites] [entries]`
//! (defaults 1,000,000 / 5,000 / 10,000,000).

use kernel::accounts::ledger;
use kernel::authz::Actor;
use kernel::config::Limits;
use kernel::crypto::PiiKeys;
use kernel::identity;
use kernel::idnumber::{synthesize, Sex};
use kernel::sites::{self, NewSite};
use kernel::storage::Db;
use kernel::Kernel;
use std::time::{Duration, Instant};

fn pct(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e3
}

/// 15-minute circles over `n` sites held in memory (half communities, half
/// learning sites, in townships of 50 communities, over a 60 km square):
/// the grid (`circles::compute`) against the O(communities × learning
/// sites) loop it replaces, same input, same run; medians of 9.
/// Run alone: `cargo bench -p kernel --bench scale -- circles [sites]`.
fn circles(n: usize) {
    use kernel::indicators::circles::{self, MapSite, Params};
    let mut x: u64 = 20260101;
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    let site = |id: i64, kind: &str, parent: Option<i64>, at: Option<(f64, f64)>| MapSite {
        id,
        code: format!("S{id}"),
        name_zh: String::new(),
        name_en: None,
        kind: kind.into(),
        parent_id: parent,
        path: String::new(),
        latitude: at.map(|a| a.0),
        longitude: at.map(|a| a.1),
    };
    let mut sites = vec![site(1, "city", None, None)];
    let communities = (n - 1) / 2;
    let townships = communities.div_ceil(50);
    for t in 0..townships {
        sites.push(site(2 + t as i64, "township", Some(1), None));
    }
    let mut id = 10_000;
    for c in 0..communities {
        let at = (24.3 + next() * 0.54, 117.4 + next() * 0.6);
        sites.push(site(id, "village", Some(2 + (c / 50) as i64), Some(at)));
        id += 1;
        // A learning site within about 1.5 km of each community.
        let near = (at.0 + (next() - 0.5) * 0.027, at.1 + (next() - 0.5) * 0.03);
        sites.push(site(id, "museum", Some(2 + (c / 50) as i64), Some(near)));
        id += 1;
    }
    let p = Params::default();
    let time = |f: &dyn Fn() -> circles::Coverage| {
        let mut v: Vec<f64> = (0..9)
            .map(|_| {
                let t0 = Instant::now();
                std::hint::black_box(f());
                t0.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v[4]
    };
    let (grid, naive) = (
        circles::compute(&sites, p),
        circles::compute_naive(&sites, p),
    );
    let same = grid
        .communities
        .iter()
        .zip(&naive.communities)
        .all(|(a, b)| a.covered == b.covered && a.nearest.map(|n| n.0) == b.nearest.map(|n| n.0));
    assert!(same, "the grid and the naive loop disagree");
    let covered = grid.communities.iter().filter(|c| c.covered).count();
    let g = time(&|| circles::compute(&sites, p));
    let b = time(&|| circles::compute_naive(&sites, p));
    println!(
        "circles: {} sites ({communities} communities, {covered} covered, {townships} townships): grid {g:.2} ms; \
         baseline, same run: naive all-pairs loop {b:.2} ms; grid/naive time ratio {:.3}",
        sites.len(),
        g / b
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    let n_persons = *args.first().unwrap_or(&1_000_000);
    let n_sites = *args.get(1).unwrap_or(&5_000);
    circles(n_sites);
    if std::env::args().any(|a| a == "circles") {
        return;
    }
    let n_entries = *args.get(2).unwrap_or(&10_000_000);
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ))
    .await
    .unwrap();
    let k = Kernel {
        db,
        pii: PiiKeys::from_hex(&"5a".repeat(32)).unwrap(),
        token_ttl_secs: 3600,
        outcome_maxima: Default::default(),
    };
    let sys = Actor::System("bench");
    println!(
        "scale: {n_persons} persons, {n_sites} sites, {n_entries} ledger entries (SQLite, {})",
        dir.path().display()
    );

    // Sites: city, townships of ~50 villages each.
    let t0 = Instant::now();
    let mut tx = k.db.begin().await.unwrap();
    let mk = |code: String, kind: &str, parent: Option<String>| NewSite {
        code: code.clone(),
        name_zh: code,
        kind: kind.into(),
        parent_code: parent,
        ..Default::default()
    };
    sites::create_in(&mut tx, &sys, mk("C".into(), "city", None))
        .await
        .unwrap();
    let townships = (n_sites / 51).max(1);
    let mut villages = Vec::new();
    let mut made = 1;
    'outer: for t in 0..townships {
        sites::create_in(
            &mut tx,
            &sys,
            mk(format!("T{t}"), "township", Some("C".into())),
        )
        .await
        .unwrap();
        made += 1;
        for v in 0..50 {
            if made >= n_sites {
                break 'outer;
            }
            let s = sites::create_in(
                &mut tx,
                &sys,
                mk(format!("T{t}-V{v}"), "village", Some(format!("T{t}"))),
            )
            .await
            .unwrap();
            villages.push(s.id);
            made += 1;
        }
    }
    tx.commit().await.unwrap();
    println!(
        "sites: {made} created in {:.2}s",
        t0.elapsed().as_secs_f64()
    );

    // Persons through the CSV import's bulk path (validation done up front, as the import does).
    let ids: Vec<String> = (0..n_persons)
        .map(|i| {
            let birth = chrono::NaiveDate::from_ymd_opt(
                1940 + (i % 60) as i32,
                1 + (i % 12) as u32,
                1 + (i % 28) as u32,
            )
            .unwrap();
            synthesize(
                110000 + (i / 1000) as u32 % 900_000,
                birth,
                (i % 1000) as u32,
                if i % 2 == 0 { Sex::Male } else { Sex::Female },
            )
        })
        .collect();
    // The CSV an admin would upload, with every row's home site spelled out.
    let mut csv = String::from("name,id_number,phone,home_site\n");
    for (i, id) in ids.iter().enumerate() {
        let v = i % villages.len();
        csv.push_str(&format!(
            "测试{i},{id},139{:08},T{}-V{}\n",
            i % 100_000_000,
            v / 50,
            v % 50
        ));
    }
    let t0 = Instant::now();
    let created = identity::csv::import(&k, &sys, &csv, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(created, n_persons);
    let import = t0.elapsed();
    println!("import: {n_persons} persons in {:.2}s = {:.0} persons/s (CSV parse, validate, de-duplicate, encrypt, hash, insert, open accounts, one transaction)", import.as_secs_f64(), n_persons as f64 / import.as_secs_f64());
    let floor = insert_floor(&dir.path().join("floor.db"), n_persons);
    println!(
        "  baseline, same run: bare SQLite insert of {n_persons} person-sized rows + accounts, prepared, one transaction: {:.2}s = {:.0} rows/s; import/baseline time ratio {:.2}",
        floor.as_secs_f64(),
        n_persons as f64 / floor.as_secs_f64(),
        import.as_secs_f64() / floor.as_secs_f64()
    );

    // Look-ups by ID number.
    let mut lat = Vec::new();
    for i in 0..2000 {
        let id = &ids[(i * 7919) % ids.len()];
        let t = Instant::now();
        identity::find_by_id_number(&k, &sys, id).await.unwrap();
        lat.push(t.elapsed());
    }
    println!(
        "lookup by ID number: p50 {:.3} ms, p99 {:.3} ms",
        pct(lat.clone(), 0.5),
        pct(lat, 0.99)
    );

    // Subtree listing of a township (~50 villages).
    let mut lat = Vec::new();
    for t in 0..200 {
        let q = sites::ListQuery {
            within: Some(format!("T{}", t % townships)),
            limit: 500,
            ..Default::default()
        };
        let s = Instant::now();
        sites::list(&k.db, &sys, q).await.unwrap();
        lat.push(s.elapsed());
    }
    println!(
        "subtree listing (township): p50 {:.3} ms, p99 {:.3} ms",
        pct(lat.clone(), 0.5),
        pct(lat, 0.99)
    );

    // Ledger entries, chained, in bulk.
    let t0 = Instant::now();
    let accounts = n_persons.max(1) as i64;
    let per_batch = 50_000;
    let mut written = 0usize;
    while written < n_entries {
        let n = per_batch.min(n_entries - written);
        let items: Vec<ledger::BulkEntry> = (0..n)
            .map(|j| {
                let g = written + j;
                ledger::BulkEntry {
                    account_id: 1 + (g as i64 % accounts),
                    kind: "non_formal_learning",
                    title: "课程".to_string(),
                    quantity_milli: 2000,
                    credits_milli: 100,
                    key: format!("b{g}"),
                }
            })
            .collect();
        ledger::bulk_append(&k.db, "kernel", 1, items)
            .await
            .unwrap();
        written += n;
    }
    println!(
        "ledger load: {n_entries} entries in {:.2}s",
        t0.elapsed().as_secs_f64()
    );

    let mut lat = Vec::new();
    for i in 0..1000 {
        let t = Instant::now();
        ledger::statement(&k, &sys, 1 + (i * 7919) as i64 % accounts, 0, 50)
            .await
            .unwrap();
        lat.push(t.elapsed());
    }
    println!(
        "account statement: p50 {:.3} ms, p99 {:.3} ms",
        pct(lat.clone(), 0.5),
        pct(lat, 0.99)
    );

    let t0 = Instant::now();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let report = ledger::verify(&k.db, workers).await.unwrap();
    assert!(report.broken.is_empty());
    let verify = t0.elapsed();
    println!(
        "ledger verify: {} entries in {:.2}s ({workers} threads)",
        report.entries,
        verify.as_secs_f64()
    );
    let scan = scan_floor(&dir.path().join("bench.db"));
    println!(
        "  baseline, same run: bare scan of every ledger column, no hashing, 1 thread: {:.2}s; verify/baseline time ratio {:.2}",
        scan.as_secs_f64(),
        verify.as_secs_f64() / scan.as_secs_f64()
    );

    // HTTP read throughput: a site endpoint vs a trivial axum route, same server, same client.
    let limits = Limits {
        max_concurrent_requests: 10_000,
        ..Limits::default()
    };
    let state = kernel::http::AppState::new(k.clone(), &limits);
    let (token, _) = {
        let p = identity::create(
            &k,
            &sys,
            identity::NewPerson {
                name: "a".into(),
                id_number: synthesize(
                    999999,
                    chrono::NaiveDate::from_ymd_opt(1980, 1, 1).unwrap(),
                    1,
                    Sex::Male,
                ),
                home_site: "C".into(),
                login: Some("benchadmin".into()),
                password: Some("benchmark-pass".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        identity::grant(&k, &sys, p.id, "city_admin", "C")
            .await
            .unwrap();
        (
            identity::login(&k, "benchadmin", "benchmark-pass")
                .await
                .unwrap()
                .token,
            p.id,
        )
    };
    let app = kernel::http::app(state, &limits).route(
        "/trivial",
        axum::routing::get(|| async { axum::Json(serde_json::json!({"ok": true})) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let trivial = throughput(&format!("http://{addr}/trivial"), None).await;
    let site = throughput(&format!("http://{addr}/api/v1/sites/T0-V1"), Some(&token)).await;
    println!(
        "http: trivial {trivial:.0} req/s, GET /sites/{{code}} {site:.0} req/s, ratio {:.2}",
        site / trivial
    );
}

async fn throughput(url: &str, token: Option<&str>) -> f64 {
    let client = reqwest::Client::new();
    let dur = Duration::from_secs(3);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (client, url, token) = (client.clone(), url.to_string(), token.map(str::to_string));
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while start.elapsed() < dur {
                let mut r = client.get(&url);
                if let Some(t) = &token {
                    r = r.bearer_auth(t);
                }
                let res = r.send().await.unwrap();
                assert!(res.status().is_success());
                res.bytes().await.unwrap();
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// The storage floor of an import: rows of the same shape and indexes as
/// `persons` (random bytes where the import has ciphertext and hashes) plus
/// an account row each, through one prepared statement in one transaction.
fn insert_floor(path: &std::path::Path, n: usize) -> Duration {
    use rand::RngCore;
    let mut conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA cache_size = -1048576;
         CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT NOT NULL, id_hash BLOB NOT NULL UNIQUE,
           id_cipher BLOB NOT NULL, id_masked TEXT NOT NULL, birth_date TEXT NOT NULL, sex TEXT NOT NULL,
           phone_cipher BLOB, phone_masked TEXT, home_site_id INTEGER NOT NULL, login TEXT UNIQUE,
           password_hash TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
         CREATE INDEX p_home ON p(home_site_id, id);
         CREATE TABLE a (id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL UNIQUE REFERENCES p(id),
           status TEXT NOT NULL, opened_at INTEGER NOT NULL, entry_count INTEGER NOT NULL, head_hash BLOB NOT NULL);",
    )
    .unwrap();
    let mut rng = rand::thread_rng();
    let rows: Vec<([u8; 32], [u8; 58], [u8; 51])> = (0..n)
        .map(|_| {
            let (mut h, mut c, mut p) = ([0u8; 32], [0u8; 58], [0u8; 51]);
            rng.fill_bytes(&mut h);
            rng.fill_bytes(&mut c);
            rng.fill_bytes(&mut p);
            (h, c, p)
        })
        .collect();
    let t0 = Instant::now();
    let tx = conn.transaction().unwrap();
    {
        let mut ins = tx
            .prepare("INSERT INTO p (name, id_hash, id_cipher, id_masked, birth_date, sex, phone_cipher, phone_masked, home_site_id, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)")
            .unwrap();
        let mut acc = tx
            .prepare("INSERT INTO a (person_id, status, opened_at, entry_count, head_hash) VALUES (?1, 'open', ?2, 0, ?3)")
            .unwrap();
        for (i, (h, c, p)) in rows.iter().enumerate() {
            ins.execute(rusqlite::params![
                format!("测试{i}"),
                &h[..],
                &c[..],
                "3506**********123X",
                "1960-01-01",
                "male",
                &p[..],
                "139****5678",
                (i % 5000) as i64,
                1_i64
            ])
            .unwrap();
            acc.execute(rusqlite::params![
                tx.last_insert_rowid(),
                1_i64,
                &[0u8; 32][..]
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
    t0.elapsed()
}

/// The storage floor of verify: step through every ledger row and touch
/// every column verify reads, without hashing, on one connection.
fn scan_floor(path: &std::path::Path) -> Duration {
    let conn = kernel::storage::open_native(&path.display().to_string()).unwrap();
    let t0 = Instant::now();
    let mut st = conn.prepare("SELECT id, account_id, seq, kind, title, quantity_milli, unit, credits_milli, rule_code, \
        rule_version, occurred_on, source_site_id, issuer, origin, reference, evidence, idempotency_key, \
        content_hash, reverses_entry_id, recorded_at, prev_hash, entry_hash FROM ledger_entries ORDER BY id").unwrap();
    let mut rows = st.query([]).unwrap();
    let mut bytes = 0usize;
    while let Some(r) = rows.next().unwrap() {
        for i in 0..22 {
            bytes += match r.get_ref(i).unwrap() {
                rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => t.len(),
                _ => 8,
            };
        }
    }
    std::hint::black_box(bytes);
    t0.elapsed()
}
