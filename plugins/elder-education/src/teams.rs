//! Learning teams: members, activities and the star rating with its history.

use crate::*;

// ------------------------------------------------------------------- teams

pub(crate) fn team(req: &Request, id: i64) -> Result<Row> {
    TEAMS
        .get(&[i(id)])?
        .filter(|r| text(r, "site") == req.site)
        .ok_or_else(|| Error::not_found(format!("no team {id} at this site")))
}

/// Stars from the criteria in settings: one for being founded, one for
/// reaching the member threshold and one more at twice it, one for regular
/// activity, one for at least one showcase; at most five.
pub(crate) fn recompute_stars(team_id: i64, reason: &str) -> Result<i64> {
    let members = count(&MEMBERS.aggregate(&[eq("team_id", i(team_id))], &[], None)?);
    let since = dates::add_days(&today(), -setting("team_active_days")?).unwrap_or_default();
    let recent = count(&ACTIVITIES.aggregate(
        &[eq("team_id", i(team_id)), cmp("on_date", Op::Ge, t(&since))],
        &[],
        None,
    )?);
    let showcases = count(&ACTIVITIES.aggregate(
        &[eq("team_id", i(team_id)), eq("kind", t("showcase"))],
        &[],
        None,
    )?);
    let threshold = setting("team_members_for_star")?.max(1);
    let stars = (1
        + i64::from(members >= threshold)
        + i64::from(members >= 2 * threshold)
        + i64::from(recent >= setting("team_active_min_activities")?)
        + i64::from(showcases > 0))
    .min(5);
    let current = TEAMS
        .get(&[i(team_id)])?
        .map(|r| int(&r, "stars"))
        .unwrap_or(0);
    if stars != current {
        TEAMS.update(&[i(team_id)], &[("stars", i(stars))])?;
        RATINGS.insert(&[
            ("team_id", i(team_id)),
            ("stars", i(stars)),
            ("reason", t(&format!("{reason}: {members} members, {recent} recent activities, {showcases} showcases"))),
            ("at", i(lifelong_sdk::clock::now_micros())),
        ])?;
    }
    Ok(stars)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTeam {
    name: String,
    /// The founding members (person ids), counted in the founding rating.
    #[serde(default)]
    members: Vec<i64>,
    /// When it was founded, if before today (recording an existing team).
    #[serde(default)]
    founded_on: Option<String>,
}

pub(crate) fn create_team(req: &Request) -> Result<Response> {
    staff(req)?;
    let n: NewTeam = req.json()?;
    if n.name.trim().is_empty() {
        return Err(invalid("name is required"));
    }
    let row = TEAMS.insert(&[
        ("site", t(&req.site)),
        ("name", t(&n.name)),
        ("founded_on", t(&started_on("founded_on", n.founded_on)?)),
        ("stars", i(0)),
    ])?;
    let id = int(&row, "id");
    let mut founders = n.members;
    founders.sort_unstable();
    founders.dedup();
    for person in founders {
        MEMBERS.insert(&[("team_id", i(id)), ("person_id", i(person))])?;
    }
    // Rated once its founders are in, so the history's first entry counts them.
    let stars = recompute_stars(id, "founded")?;
    Response::json(201, &json!({ "id": id, "stars": stars }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Member {
    person_id: i64,
}

pub(crate) fn add_member(req: &Request) -> Result<Response> {
    staff(req)?;
    let id = req.param_i64("id")?;
    team(req, id)?;
    let m: Member = req.json()?;
    if MEMBERS.get(&[i(id), i(m.person_id)])?.is_none() {
        MEMBERS.insert(&[("team_id", i(id)), ("person_id", i(m.person_id))])?;
    }
    let stars = recompute_stars(id, "member joined")?;
    Response::json(200, &json!({ "team_id": id, "stars": stars }))
}

pub(crate) fn remove_member(req: &Request) -> Result<Response> {
    staff(req)?;
    let id = req.param_i64("id")?;
    team(req, id)?;
    let person = req.param_i64("person")?;
    if !MEMBERS.delete(&[i(id), i(person)])? {
        return Err(Error::not_found(format!(
            "person {person} is not in team {id}"
        )));
    }
    let stars = recompute_stars(id, "member left")?;
    Response::json(200, &json!({ "team_id": id, "stars": stars }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewActivity {
    on_date: String,
    /// "activity" or "showcase".
    kind: String,
    #[serde(default)]
    note: String,
}

pub(crate) fn log_activity(req: &Request) -> Result<Response> {
    staff(req)?;
    let id = req.param_i64("id")?;
    team(req, id)?;
    let a: NewActivity = req.json()?;
    if dates::parse(&a.on_date).is_none() {
        return Err(invalid("on_date is a date, YYYY-MM-DD"));
    }
    if a.kind != "activity" && a.kind != "showcase" {
        return Err(invalid("kind is activity or showcase"));
    }
    ACTIVITIES.insert(&[
        ("team_id", i(id)),
        ("on_date", t(&a.on_date)),
        ("kind", t(&a.kind)),
        ("note", t(&a.note)),
    ])?;
    let stars = recompute_stars(id, &format!("{} logged", a.kind))?;
    Response::json(201, &json!({ "team_id": id, "stars": stars }))
}

/// A team, its rating history and how many members it has; who the members
/// are (person ids) only for its members and the site's staff.
pub(crate) fn team_view(req: &Request) -> Result<Response> {
    let id = req.param_i64("id")?;
    let r = team(req, id)?;
    let members: Vec<i64> = all(MEMBERS, vec![eq("team_id", i(id))], vec![])?
        .iter()
        .map(|m| int(m, "person_id"))
        .collect();
    let history: Vec<_> = all(RATINGS, vec![eq("team_id", i(id))], vec![asc("id")])?
        .iter()
        .map(|h| json!({ "stars": int(h, "stars"), "reason": text(h, "reason"), "at": int(h, "at") }))
        .collect();
    let mut out = json!({ "id": id, "name": text(&r, "name"), "founded_on": text(&r, "founded_on"), "stars": int(&r, "stars"), "member_count": members.len(), "ratings": history });
    let insider = match req.caller.person_id {
        Some(me) => members.contains(&me) || is_staff(me, &req.site)?,
        None => false,
    };
    if insider {
        out["members"] = json!(members);
    }
    Response::json(200, &out)
}

pub(crate) fn list_teams(req: &Request) -> Result<Response> {
    let rows = all(TEAMS, vec![eq("site", t(site(req)?))], vec![])?;
    let items: Vec<_> = rows
        .iter()
        .map(|r| json!({ "id": int(r, "id"), "name": text(r, "name"), "stars": int(r, "stars") }))
        .collect();
    Response::json(200, &json!({ "items": items }))
}
