//! `GET /reports?site=CODE` for staff over the site's subtree:
//! specialities (and new distance-education ones, the plan's indicator 2),
//! partner enterprises, teachers by kind, learners by stage, pass rates per
//! job type, certificates and credits recognised.

use crate::*;
use std::collections::BTreeMap;

pub(crate) fn report(req: &Request) -> Result<Response> {
    let here = site(req)?.to_string();
    staff_at(req, &here)?;
    let since = setting_text("indicator_since")?;
    let (mut specialities, mut distance, mut new_distance) = (0i64, 0i64, 0i64);
    let mut partners: BTreeMap<String, i64> = BTreeMap::new();
    let mut enterprises = std::collections::BTreeSet::new();
    let mut teachers: BTreeMap<String, i64> = BTreeMap::new();
    let mut stages: BTreeMap<String, i64> = BTreeMap::new();
    // job type → (completed, ended)
    let mut by_job: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut certificates: BTreeMap<String, i64> = BTreeMap::new();
    let (mut credits, mut conversions) = (0.0f64, 0i64);
    let mut sites = 0;
    for code in subtree(&here)? {
        sites += 1;
        for s in all(SPECIALITIES, vec![eq("school", t(&code))], vec![])? {
            specialities += 1;
            if flag(&s, "distance") {
                distance += 1;
                new_distance += i64::from(text(&s, "created_on") >= since.as_str());
            }
        }
        for p in all(PARTNERS, vec![eq("school", t(&code))], vec![])? {
            *partners.entry(text(&p, "status").to_string()).or_default() += 1;
            if text(&p, "status") == "approved" {
                enterprises.insert(text(&p, "enterprise").to_string());
            }
        }
        for tch in all(TEACHERS, vec![eq("school", t(&code))], vec![])? {
            *teachers.entry(text(&tch, "kind").to_string()).or_default() += 1;
        }
        for a in all(AGREEMENTS, vec![eq("school", t(&code))], vec![])? {
            let status = text(&a, "status").to_string();
            let job = by_job.entry(text(&a, "job_type").to_string()).or_default();
            match status.as_str() {
                "completed" => job.0 += 1,
                "ended" => job.1 += 1,
                _ => {}
            }
            *stages.entry(status).or_default() += 1;
        }
        for c in all(COMPLETIONS, vec![eq("school", t(&code))], vec![])? {
            *certificates
                .entry(text(&c, "certificate_kind").to_string())
                .or_default() += 1;
            credits += real(&c, "credits");
            conversions += i64::from(opt_int(&c, "conversion_entry").is_some());
        }
    }
    let pass_rates: serde_json::Map<_, _> = by_job
        .iter()
        .map(|(job, (done, ended))| {
            let rate = if done + ended > 0 {
                json!(*done as f64 / (done + ended) as f64)
            } else {
                json!(null)
            };
            (
                job.clone(),
                json!({"completed": done, "ended": ended, "pass_rate": rate}),
            )
        })
        .collect();
    Response::json(
        200,
        &json!({
            "site": here,
            "sites": sites,
            "specialities": {"total": specialities, "distance": distance, "new_distance_since": since, "new_distance": new_distance},
            "partners": partners,
            "partner_enterprises": enterprises.len(),
            "teachers": teachers,
            "learners_by_stage": stages,
            "job_types": pass_rates,
            "recognised": {"certificates": certificates, "credits": credits, "conversions": conversions},
        }),
    )
}
