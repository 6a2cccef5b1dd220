//! Service proofs: issued by a coordinator for the hours verified at the
//! site's subtree ("whoever records, certifies"), with a certificate
//! number anyone can check. A proof names the volunteer by name and
//! volunteer number only, never by ID number.

use crate::*;

/// FNV-1a, for the unguessable part of a certificate number.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProofRequest {
    number: String,
    /// `YYYY-MM-DD`, inclusive; default everything.
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

/// Issue a proof of service for a volunteer (coordinators).
pub(crate) fn issue_proof(req: &Request) -> Result<Response> {
    let coordinator = staff(req)?;
    let p: ProofRequest = req.json()?;
    for d in [&p.from, &p.to].into_iter().flatten() {
        if time::parse_date(d).is_none() {
            return Err(invalid("from and to are dates, YYYY-MM-DD"));
        }
    }
    let v = registry::by_number(&p.number)?;
    let person = int(&v, "person_id");
    let sites = subtree(&req.site)?;
    let rows = all(
        HOURS,
        vec![eq("person_id", i(person)), eq("status", t("verified"))],
        vec![asc("check_in")],
    )?;
    let mut by_period: std::collections::BTreeMap<(String, String), i64> = Default::default();
    let mut total = 0;
    let mut entries = Vec::new();
    for r in &rows {
        let day = time::date_at(int(r, "check_in"));
        if !sites.iter().any(|s| s == text(r, "site"))
            || p.from.as_ref().is_some_and(|f| day < *f)
            || p.to.as_ref().is_some_and(|to| day > *to)
        {
            continue;
        }
        *by_period
            .entry((text(r, "month").to_string(), text(r, "content").to_string()))
            .or_default() += int(r, "minutes");
        total += int(r, "minutes");
        entries.push(int(r, "id").to_string());
    }
    if total == 0 {
        return Err(Error::conflict(format!(
            "{} has no verified hours to certify here",
            p.number
        )));
    }
    let issuer = lifelong_sdk::sites::get(&req.site)?;
    let coordinator_name = lifelong_sdk::identity::get(coordinator)?.name;
    let on = today();
    let serial = next("proof")?;
    let check = fnv(&format!(
        "{}/{}/{serial}/{person}",
        req.request_id,
        lifelong_sdk::clock::now_micros()
    ));
    let cert = format!(
        "VSP-{}-{serial:06}-{:08X}",
        on.replace('-', ""),
        check as u32
    );
    let body = json!({
        "certificate_number": cert,
        "volunteer": {"name": text(&v, "name"), "number": text(&v, "number")},
        "hours_total": total as f64 / 60.0,
        "hours": by_period.iter().map(|((month, content), m)| json!({"period": month, "content": content, "hours": *m as f64 / 60.0})).collect::<Vec<_>>(),
        "from": p.from,
        "to": p.to,
        "issuing_site": {"code": issuer.code, "name": issuer.name_zh},
        "coordinator": coordinator_name,
        "issued_on": on,
    });
    PROOFS.insert(&[
        ("number", t(&cert)),
        ("person_id", i(person)),
        ("site", t(&req.site)),
        ("issued_on", t(&on)),
        ("body", t(&body.to_string())),
        ("entries", t(&entries.join(","))),
    ])?;
    Response::json(201, &body)
}

/// The proof as issued, with what has happened to its hours since: the
/// hours of certified entries reversed after issue, and whether all still
/// stand (`current`).
fn proof(number: &str) -> Result<serde_json::Value> {
    let r = PROOFS
        .get(&[t(number)])?
        .ok_or_else(|| Error::not_found(format!("no service proof {number}: it is not genuine")))?;
    let mut p: serde_json::Value = serde_json::from_str(text(&r, "body"))?;
    let mut reversed = 0;
    for id in opt_text(&r, "entries")
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| s.parse::<i64>().ok())
    {
        if let Some(h) = HOURS.get(&[i(id)])? {
            if text(&h, "status") == "reversed" {
                reversed += int(&h, "minutes");
            }
        }
    }
    p["hours_reversed_since"] = json!(reversed as f64 / 60.0);
    p["current"] = json!(reversed == 0);
    Ok(p)
}

/// Anyone with the certificate number checks it is genuine (and whether
/// any of its hours have been reversed since it was issued).
pub(crate) fn proof_view(req: &Request) -> Result<Response> {
    let mut p = proof(req.param("number"))?;
    p["genuine"] = json!(true);
    Response::json(200, &p)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The proof as a printable page (HTML with a print stylesheet).
pub(crate) fn proof_print(req: &Request) -> Result<Response> {
    let p = proof(req.param("number"))?;
    let s = |v: &serde_json::Value| esc(v.as_str().unwrap_or(""));
    let rows: String = p["hours"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|h| {
                    format!(
                        "<tr><td>{}</td><td>{}</td><td class=n>{:.1}</td></tr>",
                        s(&h["period"]),
                        s(&h["content"]),
                        h["hours"].as_f64().unwrap_or(0.0)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let html = format!(
        "<!doctype html><html lang=zh-CN><meta charset=utf-8><title>志愿服务证明 {cert}</title>\
<style>body{{font-family:serif;max-width:42em;margin:2em auto}}h1{{text-align:center}}table{{width:100%;border-collapse:collapse}}\
td,th{{border:1px solid #444;padding:.3em}}.n{{text-align:right}}@media print{{body{{margin:0}}@page{{size:A4;margin:2cm}}.noprint{{display:none}}}}</style>\
<h1>志愿服务证明</h1><p>证书编号：{cert}</p><p>志愿者：{name}（志愿者编号 {number}）</p>\
<table><tr><th>期间</th><th>服务内容</th><th>时长（小时）</th></tr>{rows}\
<tr><th colspan=2>合计</th><th class=n>{total:.1}</th></tr></table>\
<p>出具单位：{site}（{code}）　经办人：{coord}　出具日期：{on}</p>{reversed}\
<p class=noprint>凭证书编号可查验真伪：GET /api/v1/plugins/volunteers/proofs/{cert}</p></html>",
        cert = s(&p["certificate_number"]),
        name = s(&p["volunteer"]["name"]),
        number = s(&p["volunteer"]["number"]),
        total = p["hours_total"].as_f64().unwrap_or(0.0),
        site = s(&p["issuing_site"]["name"]),
        code = s(&p["issuing_site"]["code"]),
        coord = s(&p["coordinator"]),
        on = s(&p["issued_on"]),
        reversed = match p["hours_reversed_since"].as_f64() {
            Some(h) if h > 0.0 => format!("<p><strong>注意：本证明所载时长中 {h:.1} 小时已于出具后撤销。</strong></p>"),
            _ => String::new(),
        },
    );
    Ok(Response {
        status: 200,
        headers: vec![("content-type".into(), "text/html; charset=utf-8".into())],
        body: html.into_bytes(),
    })
}
