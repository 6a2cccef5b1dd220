//! Needs at sites: fixed shifts and flexible windows, posted by a site's
//! coordinators or opened by an elder-education course that wants teaching
//! assistants (once per course, however often the event is redelivered).

use crate::*;

pub(crate) fn need(id: i64) -> Result<Row> {
    NEEDS
        .get(&[i(id)])?
        .ok_or_else(|| Error::not_found(format!("no need {id}")))
}

/// The need `id` at the request's site (404 elsewhere).
pub(crate) fn need_here(req: &Request, id: i64) -> Result<Row> {
    let r = need(id)?;
    if text(&r, "site") == site(req)? {
        Ok(r)
    } else {
        Err(Error::not_found(format!("no need {id} at this site")))
    }
}

pub(crate) fn need_json(r: &Row) -> serde_json::Value {
    json!({
        "id": int(r, "id"),
        "site": text(r, "site"),
        "project": text(r, "project"),
        "role": text(r, "role"),
        "title": text(r, "title"),
        "starts_at": time::fmt_at(int(r, "starts_at")),
        "ends_at": time::fmt_at(int(r, "ends_at")),
        "flexible": flag(r, "flexible"),
        "duration_minutes": int(r, "duration_minutes"),
        "min_wanted": int(r, "min_wanted"),
        "max_wanted": int(r, "max_wanted"),
        "confirmed": int(r, "confirmed"),
        "requires_training": opt_text(r, "requires_training"),
        "adult_only": flag(r, "adult_only"),
        "public": flag(r, "public"),
        "auto_confirm": flag(r, "auto_confirm"),
        "status": text(r, "status"),
        "source": opt_text(r, "source"),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewNeed {
    #[serde(default)]
    project: String,
    role: String,
    title: String,
    /// `YYYY-MM-DDTHH:MM` on the city's wall clock.
    starts_at: String,
    ends_at: String,
    /// A window to log hours in rather than a shift.
    #[serde(default)]
    flexible: bool,
    /// Flexible needs: minutes wanted from each volunteer.
    #[serde(default)]
    duration_minutes: i64,
    #[serde(default = "one")]
    min_wanted: i64,
    max_wanted: i64,
    #[serde(default)]
    requires_training: Option<String>,
    #[serde(default)]
    adult_only: bool,
    #[serde(default = "yes")]
    public: bool,
    #[serde(default = "yes")]
    auto_confirm: bool,
}

fn one() -> i64 {
    1
}

fn yes() -> bool {
    true
}

/// Insert a checked need at `site`; returns the row.
fn insert_need(site: &str, n: NewNeed, source: Option<&str>) -> Result<Row> {
    let starts =
        time::parse_at(&n.starts_at).ok_or_else(|| invalid("starts_at is YYYY-MM-DDTHH:MM"))?;
    let ends = time::parse_at(&n.ends_at).ok_or_else(|| invalid("ends_at is YYYY-MM-DDTHH:MM"))?;
    if ends <= starts {
        return Err(invalid("a need ends after it starts"));
    }
    if !n.flexible && ends - starts > 24 * 60 {
        return Err(invalid(
            "a shift lasts at most 24 hours; use a flexible need for a window",
        ));
    }
    if n.flexible && (n.duration_minutes < 0 || n.duration_minutes > ends - starts) {
        return Err(invalid("duration_minutes fits inside the window"));
    }
    if n.role.trim().is_empty() || n.title.trim().is_empty() {
        return Err(invalid("role and title are required"));
    }
    if n.min_wanted < 0 || n.max_wanted < 1 || n.min_wanted > n.max_wanted {
        return Err(invalid("0 <= min_wanted <= max_wanted, max_wanted >= 1"));
    }
    NEEDS.insert(&[
        ("site", t(site)),
        ("project", t(n.project.trim())),
        ("role", t(n.role.trim())),
        ("title", t(n.title.trim())),
        ("starts_at", i(starts)),
        ("ends_at", i(ends)),
        ("flexible", b(n.flexible)),
        ("duration_minutes", i(n.duration_minutes)),
        ("min_wanted", i(n.min_wanted)),
        ("max_wanted", i(n.max_wanted)),
        ("confirmed", i(0)),
        (
            "requires_training",
            opt_t(
                n.requires_training
                    .as_deref()
                    .map(str::trim)
                    .filter(|s| !s.is_empty()),
            ),
        ),
        ("adult_only", b(n.adult_only)),
        ("public", b(n.public)),
        ("auto_confirm", b(n.auto_confirm)),
        ("status", t("open")),
        ("source", opt_t(source)),
    ])
}

pub(crate) fn create_need(req: &Request) -> Result<Response> {
    staff(req)?;
    let n: NewNeed = req.json()?;
    let row = insert_need(&req.site, n, None)?;
    Response::json(201, &need_json(&row))
}

/// Open needs at the site: public ones for everyone, all for coordinators.
pub(crate) fn list_needs(req: &Request) -> Result<Response> {
    let site = site(req)?;
    let coordinator = match req.caller.person_id {
        Some(p) => is_staff(p, site)?,
        None => false,
    };
    let status = query(req, "status").unwrap_or("open");
    let rows = all(
        NEEDS,
        vec![eq("site", t(site)), eq("status", t(status))],
        vec![],
    )?;
    let items: Vec<_> = rows
        .iter()
        .filter(|r| coordinator || flag(r, "public"))
        .map(need_json)
        .collect();
    Response::json(200, &json!({ "items": items }))
}

pub(crate) fn need_view(req: &Request) -> Result<Response> {
    let r = need_here(req, req.param_i64("id")?)?;
    if !flag(&r, "public") {
        staff(req)?;
    }
    Response::json(200, &need_json(&r))
}

pub(crate) fn close_need(req: &Request) -> Result<Response> {
    staff(req)?;
    let id = req.param_i64("id")?;
    need_here(req, id)?;
    NEEDS.update(&[i(id)], &[("status", t("closed"))])?;
    Response::json(200, &json!({"id": id, "status": "closed"}))
}

#[derive(Deserialize)]
struct AssistantsWanted {
    course_id: i64,
    site: String,
    title: String,
    #[serde(default)]
    schedule: String,
}

/// `elder-education.assistants-wanted`: open one teaching-assistant window
/// at the course's site, once per course (the source is the key).
pub(crate) fn assistants_wanted(ev: &Event) -> Result<()> {
    let a: AssistantsWanted = serde_json::from_str(&ev.payload)?;
    let source = format!("elder-education/course/{}", a.course_id);
    if NEED_SOURCES.get(&[t(&source)])?.is_some() {
        return Ok(());
    }
    let site = ev.site.clone().unwrap_or(a.site);
    let now = now_minutes()?;
    let start = now.div_euclid(1440) * 1440;
    let end = start + setting("assistant_need_days")?.max(1) * 1440;
    let schedule = if a.schedule.is_empty() {
        String::new()
    } else {
        format!("（{}）", a.schedule)
    };
    let row = insert_need(
        &site,
        NewNeed {
            project: "elder-education".into(),
            role: "teaching_assistant".into(),
            title: format!("教学助理：{}{schedule}", a.title),
            starts_at: time::fmt_at(start),
            ends_at: time::fmt_at(end),
            flexible: true,
            duration_minutes: 0,
            min_wanted: 1,
            max_wanted: setting("assistants_per_course")?.max(1),
            requires_training: None,
            adult_only: false,
            public: true,
            auto_confirm: false,
        },
        Some(&source),
    )?;
    NEED_SOURCES.insert(&[("source", t(&source)), ("need_id", i(int(&row, "id")))])?;
    Ok(())
}
