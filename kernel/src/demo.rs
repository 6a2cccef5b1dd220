//! First-run helpers: `admin bootstrap` and the demo city of `lifelong demo`.
//!
//! The demo goes through the same registry operations as the API (as the
//! system actor), so it exercises the real invariants. It is deterministic
//! (fixed seed) and does nothing if the database already has a city.

use crate::accounts::{self, ledger, rules};
use crate::authz::Actor;
use crate::error::Error;
use crate::identity::{self, NewPerson, Person};
use crate::idnumber::{synthesize, Sex};
use crate::kernel::Kernel;
use crate::sites::{self, NewSite, Site};
use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};

mod client;
pub mod dual;
pub mod elder;
pub mod volunteers;
pub mod worker;

/// The demo city admin's login and password (printed by `lifelong demo`).
pub const DEMO_ADMIN: (&str, &str) = ("admin", "lifelong-demo");

/// Create the city site if missing and a city admin holding `city_admin` there.
pub async fn bootstrap(
    k: &Kernel,
    login: &str,
    name: &str,
    id_number: &str,
    password: &str,
    city_code: &str,
    city_name: &str,
) -> Result<(Person, Site)> {
    let system = Actor::System("bootstrap");
    let (existing,): (i64,) = sqlx::query_as("SELECT CAST(COUNT(*) AS BIGINT) FROM role_grants WHERE role = 'city_admin' AND revoked_at IS NULL")
        .fetch_one(k.db.reader())
        .await?;
    if existing > 0 {
        anyhow::bail!("a city admin already exists; sign in as them to add more");
    }
    let city = match sqlx::query_as::<_, (i64,)>("SELECT id FROM sites WHERE kind = 'city'")
        .fetch_optional(k.db.reader())
        .await?
    {
        Some((id,)) => sites::fetch(k.db.reader(), id)
            .await?
            .context("city vanished")?,
        None => sites::create(
            &k.db,
            &system,
            NewSite {
                code: city_code.into(),
                name_zh: city_name.into(),
                kind: "city".into(),
                ..Default::default()
            },
        )
        .await
        .map_err(flatten)?,
    };
    let person = identity::create(
        k,
        &system,
        NewPerson {
            name: name.into(),
            id_number: id_number.into(),
            home_site: city.code.clone(),
            login: Some(login.into()),
            password: Some(password.into()),
            ..Default::default()
        },
    )
    .await
    .map_err(flatten)?;
    identity::grant(k, &system, person.id, "city_admin", &city.code)
        .await
        .map_err(flatten)?;
    Ok((person, city))
}

fn flatten(e: Error) -> anyhow::Error {
    match e {
        Error::Internal(cause) => cause,
        other => anyhow::anyhow!("{other}"),
    }
}

/// A demo site under `parent`; coordinates are added when it is created.
fn site(
    code: &str,
    name: &str,
    kind: &str,
    parent: &str,
    operator: &str,
    opened_on: &str,
) -> NewSite {
    NewSite {
        code: code.into(),
        name_zh: name.into(),
        kind: kind.into(),
        parent_code: Some(parent.into()),
        address: Some(format!("{name}路{}号", code.len() * 7)),
        operator: Some(operator.into()),
        opened_on: Some(opened_on.into()),
        ..Default::default()
    }
}

/// Build the demo city unless one exists. Returns a summary to print.
pub async fn build(k: &Kernel) -> Result<String> {
    let (cities,): (i64,) =
        sqlx::query_as("SELECT CAST(COUNT(*) AS BIGINT) FROM sites WHERE kind = 'city'")
            .fetch_one(k.db.reader())
            .await?;
    if cities > 0 {
        return Ok(format!(
            "the database already has a city; demo data left as it is. Sign in as {} / {} if it is the demo city.",
            DEMO_ADMIN.0, DEMO_ADMIN.1
        ));
    }
    let system = Actor::System("demo");
    let mut rng = rand::rngs::StdRng::seed_from_u64(20260101);
    let birth = |rng: &mut rand::rngs::StdRng, from: i32, to: i32| {
        chrono::NaiveDate::from_ymd_opt(
            rng.gen_range(from..to),
            rng.gen_range(1..=12),
            rng.gen_range(1..=28),
        )
        .expect("valid date")
    };
    let admin_id = synthesize(350602, birth(&mut rng, 1970, 1985), 11, Sex::Male);
    let (_, city) = bootstrap(
        k,
        DEMO_ADMIN.0,
        "王建国",
        &admin_id,
        DEMO_ADMIN.1,
        "CITY",
        "滨海市",
    )
    .await?;

    let townships = [
        "东湖街道",
        "西山镇",
        "南港街道",
        "北岭镇",
        "中心街道",
        "青溪镇",
    ];
    let villages = ["社区一", "社区二", "村一", "村二", "村三"];
    // City-level institutions: (code, name, English name, kind, operator, opened on).
    let city_sites = [
        (
            "CITY-EU",
            "滨海市老年大学",
            Some("Binhai Elder University"),
            "elder_university",
            "public",
            "2001-09-01",
        ),
        (
            "CITY-EU-SO",
            "滨海乐龄老年大学",
            Some("Leling Elder University"),
            "elder_university",
            "social_organisation",
            "2026-09-01",
        ),
        (
            "CITY-OU",
            "滨海开放大学",
            Some("Binhai Open University"),
            "open_university",
            "public",
            "1985-09-01",
        ),
        (
            "CITY-TTS",
            "滨海教师进修学校",
            None,
            "teacher_training_school",
            "public",
            "1990-09-01",
        ),
        (
            "CITY-MUS",
            "滨海博物馆",
            Some("Binhai Museum"),
            "museum",
            "public",
            "2010-09-01",
        ),
        (
            "CITY-SCI",
            "市民科学学习工坊",
            None,
            "science_workshop",
            "public",
            "2026-09-01",
        ),
    ];
    let mut specs: Vec<NewSite> = city_sites
        .iter()
        .map(|(code, name, en, kind, operator, opened_on)| NewSite {
            name_en: en.map(Into::into),
            ..site(code, name, kind, "CITY", operator, opened_on)
        })
        .collect();
    for (t, tname) in townships.iter().enumerate() {
        let tcode = format!("T{:02}", t + 1);
        specs.push(site(
            &tcode,
            tname,
            "township",
            "CITY",
            "public",
            "2000-01-01",
        ));
        let school_opened = match t {
            0 => "2026-03-15",
            1 => "2026-09-01",
            _ => "2015-09-01",
        };
        let mut institutions = vec![
            (
                "CS",
                "社区学校",
                "community_school",
                "public",
                school_opened,
            ),
            ("EU", "老年学校", "elder_university", "public", "2012-09-01"),
            ("CH", "文化馆", "culture_hall", "public", "2008-09-01"),
            (
                "ETC",
                "企业培训中心",
                "enterprise_training_centre",
                "enterprise",
                "2018-09-01",
            ),
        ];
        if t % 2 == 0 {
            institutions.push(("YC", "青少年宫", "youth_centre", "public", "2016-09-01"));
            institutions.push((
                "XB",
                "终身学习体验基地",
                "experience_base",
                "public",
                "2026-09-01",
            ));
        }
        for (suffix, name, kind, operator, opened_on) in institutions {
            let code = format!("{tcode}-{suffix}");
            specs.push(site(
                &code,
                &format!("{tname}{name}"),
                kind,
                &tcode,
                operator,
                opened_on,
            ));
        }
        for (v, vname) in villages.iter().enumerate() {
            let vcode = format!("{tcode}-V{}", v + 1);
            let vfull = format!("{tname}{vname}");
            specs.push(site(
                &vcode,
                &vfull,
                "village",
                &tcode,
                "public",
                "2000-01-01",
            ));
            let fifth_opened = format!("2026-{:02}-01", 4 + t);
            let point_opened = if v == 4 {
                fifth_opened.as_str()
            } else {
                "2019-09-01"
            };
            let point = format!("{vcode}-TP");
            specs.push(site(
                &point,
                &format!("{vfull}教学点"),
                "community_teaching_point",
                &vcode,
                "public",
                point_opened,
            ));
            // Walking points: one per township opened month by month from
            // February, and a second in every other township in October.
            let walk_opened = match v {
                0 => Some(format!("2026-{:02}-01", 2 + t)),
                2 if t % 2 == 0 => Some("2026-10-15".to_string()),
                _ => None,
            };
            if let Some(opened) = walk_opened {
                let walk = format!("{vcode}-WP");
                specs.push(site(
                    &walk,
                    &format!("{vfull}人文行走点"),
                    "walking_point",
                    &vcode,
                    "public",
                    &opened,
                ));
            }
        }
    }
    let site_count = specs.len() + 1;
    let base = (24.51, 117.65);
    let mut tx = k.db.begin().await?;
    for mut spec in specs {
        // The random draws are kept so the rest of the demo is unchanged;
        // the coordinates come from the planned map (`map_position`).
        let jitter = (rng.gen_range(-0.2..0.2), rng.gen_range(-0.2..0.2));
        let (lat, lon) = map_position(&spec.code).unwrap_or((base.0 + jitter.0, base.1 + jitter.1));
        spec.latitude = Some(lat);
        spec.longitude = Some(lon);
        sites::create_in(&mut tx, &system, spec)
            .await
            .map_err(flatten)?;
    }
    tx.commit().await?;
    targets(k).await?;

    for (code, name, per_unit, kind) in [
        (
            "elder-course-hours",
            "老年教育课程学时认定",
            0.05,
            "non_formal_learning",
        ),
        ("ce-hours", "继续教育学时转换", 0.1, "continuing_education"),
        (
            "skill-cert",
            "职业技能等级证书认定",
            4.0,
            "skill_certificate",
        ),
        (
            "volunteer-hours",
            "志愿服务时长认定",
            0.02,
            "volunteer_service",
        ),
    ] {
        rules::publish(
            k,
            &system,
            rules::NewRule {
                code: code.into(),
                name: name.into(),
                outcome_kind: kind.into(),
                credits_per_unit: per_unit,
                max_credits: None,
                valid_from: "2026-01-01".into(),
            },
        )
        .await
        .map_err(flatten)?;
    }

    let surnames = ["张", "李", "王", "陈", "林", "黄", "吴", "郑", "刘", "杨"];
    let given = [
        "秀英", "桂兰", "建华", "志强", "丽娟", "国庆", "美玲", "海峰", "玉珍", "明",
    ];
    let mut persons = 0;
    let mut entries = 0;
    for t in 1..=6 {
        let tcode = format!("T{t:02}");
        for v in 1..=5 {
            let home = format!("{tcode}-V{v}");
            for i in 0..10 {
                let elder = i < 6;
                let b = if elder {
                    birth(&mut rng, 1946, 1970)
                } else {
                    birth(&mut rng, 1975, 2004)
                };
                let sex = if rng.gen_bool(0.5) {
                    Sex::Male
                } else {
                    Sex::Female
                };
                let id = synthesize(350602 + t, b, (v * 100 + i * 7) as u32, sex);
                let name = format!(
                    "{}{}",
                    surnames[rng.gen_range(0..10)],
                    given[rng.gen_range(0..10)]
                );
                let is_admin = v == 1 && i == 9;
                let p = identity::create(
                    k,
                    &system,
                    NewPerson {
                        name,
                        id_number: id,
                        phone: Some(format!(
                            "13{}{:08}",
                            rng.gen_range(5..10),
                            rng.gen_range(0..100_000_000u32)
                        )),
                        home_site: home.clone(),
                        login: is_admin.then(|| format!("{}-admin", tcode.to_lowercase())),
                        password: is_admin.then(|| DEMO_ADMIN.1.to_string()),
                        ..Default::default()
                    },
                )
                .await
                .map_err(flatten)?;
                persons += 1;
                let role = match i {
                    9 if v == 1 => Some(("site_admin", tcode.clone())),
                    8 => Some(("teacher", format!("{tcode}-EU"))),
                    7 => Some(("volunteer", home.clone())),
                    6 if v == 2 => Some(("enterprise_mentor", format!("{tcode}-ETC"))),
                    _ => Some(("learner", home.clone())),
                };
                if let Some((role, site)) = role {
                    identity::grant(k, &system, p.id, role, &site)
                        .await
                        .map_err(flatten)?;
                }
                if rng.gen_bool(0.7) {
                    accounts::transition(k, &system, p.id, "activate")
                        .await
                        .map_err(flatten)?;
                    // Demo history only: the API activates today; the demo
                    // spreads activation days over the past eighteen months
                    // so indicator 3 has a baseline and a year of growth.
                    let mut tx = k.db.begin().await?;
                    sqlx::query("UPDATE accounts SET activated_on = $1 WHERE person_id = $2")
                        .bind(activation_day(persons))
                        .bind(p.id)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    let n = rng.gen_range(1..=3);
                    for j in 0..n {
                        let (kind, title, qty, rule, site) = if elder {
                            (
                                "non_formal_learning",
                                "书法与国画（春季班）",
                                32.0,
                                "elder-course-hours",
                                format!("{tcode}-EU"),
                            )
                        } else if j == 0 {
                            (
                                "continuing_education",
                                "专业技术人员继续教育公需科目",
                                24.0,
                                "ce-hours",
                                "CITY-OU".to_string(),
                            )
                        } else {
                            (
                                "volunteer_service",
                                "社区教育助学志愿服务",
                                12.0,
                                "volunteer-hours",
                                home.clone(),
                            )
                        };
                        ledger::record(
                            k,
                            &system,
                            "kernel",
                            ledger::NewEntry {
                                person_id: p.id,
                                kind: kind.into(),
                                title: title.into(),
                                quantity: qty,
                                unit: None,
                                occurred_on: "2026-06-30".into(),
                                source_site: site,
                                issuer: None,
                                reference: None,
                                evidence: None,
                                rule: Some(rule.into()),
                                idempotency_key: format!("demo-{}-{j}", p.id),
                            },
                        )
                        .await
                        .map_err(flatten)?;
                        entries += 1;
                    }
                }
            }
        }
    }
    Ok(format!(
        "demo city {} built: {} sites, {persons} persons, {entries} ledger entries.\n\
         Sign in: POST /api/v1/auth/login {{\"login\":\"{}\",\"password\":\"{}\"}} (township admins: t01-admin … t06-admin, same password)",
        city.name_zh,
        site_count,
        DEMO_ADMIN.0,
        DEMO_ADMIN.1
    ))
}

/// Where a demo site lies on the planned map. Townships sit 0.1° apart;
/// each has its five communities on a ring of 0.02° (about 2.2 km) around
/// its centre, its institutions at the centre (too far to cover them), and
/// a teaching point by each community: 220 m away (covered), except the
/// fourth and fifth communities of T02, T04 and T06, whose points are 1.3 km
/// out (uncovered). So T01, T03 and T05 become full 15-minute circles as
/// their fifth teaching points open (April, June, August 2026); the others
/// stay at 3 of 5.
fn map_position(code: &str) -> Option<(f64, f64)> {
    let centre = |t: usize| {
        (
            24.40 + (t / 3) as f64 * 0.10,
            117.55 + (t % 3) as f64 * 0.10,
        )
    };
    let parts: Vec<&str> = code.split('-').collect();
    if parts[0] == "CITY" {
        let suffix = code.strip_prefix("CITY-").unwrap_or("");
        let i = CITY_SUFFIXES.iter().position(|s| *s == suffix).unwrap_or(0);
        return Some((24.62 + 0.002 * i as f64, 117.80 + 0.002 * i as f64));
    }
    let t: usize = parts[0]
        .strip_prefix('T')?
        .parse::<usize>()
        .ok()?
        .checked_sub(1)?;
    let (clat, clon) = centre(t);
    let Some(second) = parts.get(1) else {
        return Some((clat, clon));
    };
    let Some(v) = second
        .strip_prefix('V')
        .and_then(|n| n.parse::<usize>().ok())
        .and_then(|n| n.checked_sub(1))
    else {
        let i = ["CS", "EU", "CH", "ETC", "YC", "XB"]
            .iter()
            .position(|s| s == second)
            .unwrap_or(0);
        return Some((clat + 0.001 * i as f64, clon - 0.001 * i as f64));
    };
    let angle = (v as f64 * 72.0).to_radians();
    let at = |r: f64| (clat + r * angle.cos(), clon + r * angle.sin());
    Some(match parts.get(2).copied() {
        None => at(0.02),
        Some("TP") if t % 2 == 1 && v >= 3 => at(0.032),
        Some("TP") => {
            let (a, b) = at(0.02);
            (a + 0.002, b)
        }
        Some(_) => {
            let (a, b) = at(0.02);
            (a - 0.003, b)
        }
    })
}

const CITY_SUFFIXES: [&str; 6] = ["EU", "EU-SO", "OU", "TTS", "MUS", "SCI"];

/// The demo's activation day of the `n`-th person: spread over the
/// eighteen months up to today (never after it).
fn activation_day(n: usize) -> String {
    let start = chrono::NaiveDate::from_ymd_opt(2025, 6, 1).expect("date");
    let day = start + chrono::Duration::days(((n * 37) % 540) as i64);
    let today = chrono::NaiveDate::parse_from_str(&sites::today(), "%Y-%m-%d").unwrap_or(day);
    day.min(today).format("%Y-%m-%d").to_string()
}

/// Yearly targets of the ten indicators for the city (the plan's 2030
/// targets) and the townships' shares of some, set as the city admin would.
async fn targets(k: &Kernel) -> Result<()> {
    use crate::indicators::{set_targets, Ctx, TargetsInput};
    let ctx = Ctx::new(k.clone(), None, Default::default());
    let system = Actor::System("demo");
    let steps = |y: [f64; 5]| -> std::collections::BTreeMap<String, f64> {
        (2026..=2030).map(|n| n.to_string()).zip(y).collect()
    };
    let city: [(&str, [f64; 5]); 10] = [
        ("1", [0.0, 0.0, 1.0, 1.0, 1.0]),
        ("2", [0.0, 1.0, 1.0, 1.0, 1.0]),
        ("3", [130.0, 170.0, 200.0, 220.0, 240.0]),
        ("4", [4.0, 8.0, 12.0, 14.0, 16.0]),
        ("5", [4.0, 8.0, 12.0, 14.0, 16.0]),
        ("6", [2.0, 6.0, 10.0, 13.0, 16.0]),
        ("7", [0.9, 0.95, 1.0, 1.0, 1.0]),
        ("8", [4.0, 8.0, 12.0, 14.0, 16.0]),
        ("9", [4.0, 8.0, 12.0, 14.0, 16.0]),
        ("10", [1.0, 1.0, 2.0, 2.0, 2.0]),
    ];
    for (key, y) in city {
        set_targets(
            &ctx,
            &system,
            key,
            TargetsInput {
                site: Some("CITY".into()),
                baseline: None,
                targets: steps(y),
            },
        )
        .await
        .map_err(flatten)?;
    }
    for t in 1..=6 {
        let code = format!("T{t:02}");
        let share = if t <= 4 { 3.0 } else { 2.0 };
        for (key, y) in [
            ("4", [1.0, 1.0, 2.0, share, share]),
            ("6", [0.0, 1.0, 2.0, 2.0, if t <= 4 { 3.0 } else { 2.0 }]),
            ("7", [0.9, 1.0, 1.0, 1.0, 1.0]),
        ] {
            set_targets(
                &ctx,
                &system,
                key,
                TargetsInput {
                    site: Some(code.clone()),
                    baseline: None,
                    targets: steps(y),
                },
            )
            .await
            .map_err(flatten)?;
        }
    }
    Ok(())
}

/// A year of indicator history: snapshots of the city and its townships on
/// the period's first day and at every month end since, up to yesterday
/// (plugin indicators through `registry`, when the plugins are installed).
/// Days already taken are kept, so running it again adds only new months.
pub async fn history(
    k: &Kernel,
    registry: Option<&crate::plugins::registry::Registry>,
) -> Result<String> {
    use chrono::Datelike;
    let ctx = crate::indicators::Ctx::new(k.clone(), registry.cloned(), Default::default());
    let Some(city) = sites::fetch_by_code(k.db.reader(), "CITY").await? else {
        return Ok("no demo city; no indicator history".into());
    };
    let today = chrono::NaiveDate::parse_from_str(&sites::today(), "%Y-%m-%d")?;
    let mut days = vec![chrono::NaiveDate::from_ymd_opt(2026, 1, 1).expect("date")];
    let mut month = chrono::NaiveDate::from_ymd_opt(2026, 2, 1).expect("date");
    while month <= today {
        days.push(month - chrono::Duration::days(1));
        month = if month.month() == 12 {
            chrono::NaiveDate::from_ymd_opt(month.year() + 1, 1, 1)
        } else {
            chrono::NaiveDate::from_ymd_opt(month.year(), month.month() + 1, 1)
        }
        .expect("date");
    }
    let mut stored = 0;
    for day in &days {
        let day = day.format("%Y-%m-%d").to_string();
        stored += crate::indicators::snapshots::take_for(&ctx, &city, &day, &Actor::System("demo"))
            .await
            .map_err(flatten)?
            .1;
    }
    Ok(format!(
        "indicator history: {stored} snapshots stored over {} days",
        days.len()
    ))
}

/// The plugin crates the demo installs, if it runs from a checkout: every
/// `plugins/*/` and `examples/*/` folder holding a `plugin.toml`.
pub fn plugin_crates(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for dir in ["plugins", "examples"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut found: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("plugin.toml").is_file() && p.join("Cargo.toml").is_file())
            .collect();
        found.sort();
        out.extend(found);
    }
    out
}

/// Build, sign (with a demo publisher key kept in `key_file`, trusted in
/// this database), install or upgrade, grant and enable at the city every
/// plugin crate in `crates` — the normal lifecycle, as an operator would.
/// Returns one line per plugin; a crate that fails to build is reported
/// and skipped.
pub async fn install_plugins(
    registry: &crate::plugins::registry::Registry,
    crates: &[std::path::PathBuf],
    key_file: &std::path::Path,
) -> Result<Vec<String>> {
    use crate::plugins::package::{self, PublisherKey};
    let system = Actor::System("demo");
    let mut lines = Vec::new();
    let mut keys: std::collections::BTreeMap<String, PublisherKey> = Default::default();
    let city: Option<(String,)> =
        sqlx::query_as("SELECT code FROM sites WHERE parent_id IS NULL ORDER BY id LIMIT 1")
            .fetch_optional(registry.kernel().db.reader())
            .await?;
    let Some((city,)) = city else {
        return Ok(lines);
    };
    for dir in crates {
        let built = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || crate::plugins::build::build(&dir)).await?
        };
        let mut pkg = match built {
            Ok(p) => p,
            Err(e) => {
                lines.push(format!(
                    "{}: not built: {}",
                    dir.display(),
                    e.to_string().lines().next().unwrap_or("")
                ));
                continue;
            }
        };
        let publisher = pkg.manifest.publisher.clone();
        if !keys.contains_key(&publisher) {
            let path = key_file.with_file_name(format!("demo-publisher-{publisher}.key"));
            let key = if path.exists() {
                PublisherKey::read(&path)?
            } else {
                let key = PublisherKey::generate(&publisher)?;
                key.write(&path)?;
                key
            };
            registry
                .trust(&system, &publisher, &key.public_hex())
                .await?;
            keys.insert(publisher.clone(), key);
        }
        pkg.sign(&keys[&publisher])?;
        let id = pkg.manifest.id.clone();
        let line = match registry.info(&id).await {
            Err(_) => {
                registry.install(&system, &pkg.encode()).await?;
                format!("{id} {}: installed", pkg.manifest.version)
            }
            Ok(info)
                if semver::Version::parse(&info.version)
                    .is_ok_and(|v| v < pkg.manifest.semver()) =>
            {
                registry.upgrade(&system, &pkg.encode()).await?;
                format!("{id}: upgraded {} → {}", info.version, pkg.manifest.version)
            }
            Ok(info) if info.sha256 != package::sha256_hex(&pkg.component) => format!(
                "{id} {}: already installed (this build differs: bump its version to upgrade)",
                info.version
            ),
            Ok(info) => format!("{id} {}: already installed", info.version),
        };
        if !pkg.manifest.capabilities.is_empty() {
            registry
                .grant(&system, &id, &city, &pkg.manifest.capabilities, true)
                .await?;
        }
        registry.set_enabled(&system, &id, &city, true).await?;
        lines.push(format!("{line}, enabled at {city}"));
    }
    Ok(lines)
}
