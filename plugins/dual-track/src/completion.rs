//! Completion: when every required module is recorded or waived and every
//! required assessment item passed under the agreement's standard version,
//! the school records the certificate and the academic credits in the
//! learner's account, each once, and asks the credit bank for the
//! conversion the standard names; all in the one call's transaction.

use crate::agreements::{agreement, progress, standard_for, waived};
use crate::*;
use lifelong_sdk::accounts::{self, Conversion, Outcome};

/// Complete an agreement (staff at its school, called there).
pub(crate) fn complete(req: &Request) -> Result<Response> {
    let a = agreement(req.param_i64("id")?)?;
    let id = int(&a, "id");
    let school = text(&a, "school").to_string();
    if site(req)? != school {
        return Err(Error::bad_request(format!(
            "completion is recorded at the school: ?site={school}"
        )));
    }
    staff_at(req, &school)?;
    if COMPLETIONS.get(&[i(id)])?.is_some() {
        return Err(Error::conflict(format!(
            "agreement {id} is completed already"
        )));
    }
    if text(&a, "status") != "active" {
        return Err(Error::conflict(format!(
            "agreement {id} is {}; only an active agreement is completed",
            text(&a, "status")
        )));
    }
    let std = standard_for(&a)?;
    let (done, passed, _) = progress(id)?;
    let (modules, items) = std.missing(&done, &waived(&a), &passed);
    if !modules.is_empty() || !items.is_empty() {
        let mut why = Vec::new();
        if !modules.is_empty() {
            why.push(format!("modules not complete: {}", modules.join(", ")));
        }
        if !items.is_empty() {
            why.push(format!("assessment items not passed: {}", items.join(", ")));
        }
        return Err(Error::conflict(format!(
            "agreement {id} cannot be completed under standard version {}: {}",
            int(&a, "version"),
            why.join("; ")
        )));
    }
    let learner = int(&a, "learner");
    let on = today();
    let outcome = |kind: &str, title: &str, quantity: f64, key: &str| Outcome {
        person_id: learner,
        kind: kind.into(),
        title: title.into(),
        quantity,
        occurred_on: on.clone(),
        source_site: school.clone(),
        issuer: Some(school.clone()),
        reference: Some(format!(
            "dual-track agreement {id}, standard version {}",
            int(&a, "version")
        )),
        evidence: None,
        rule: None,
        idempotency_key: format!("agreement/{id}/{key}"),
    };
    let cert = accounts::record_outcome(&outcome(
        &std.certificate.kind,
        &std.certificate.title,
        1.0,
        "certificate",
    ))?;
    let speciality = crate::specialities::speciality(int(&a, "speciality_id"))?;
    let credits = accounts::record_outcome(&outcome(
        "academic_credit",
        &format!("{} ({})", text(&speciality, "name"), std.job_type),
        std.credits,
        "credits",
    ))?;
    // The conversion as far as the published standard allows: a cap
    // reached or a lapsed standard leaves the completion without one, said.
    let (conversion, note) = match &std.conversion {
        None => (None, None),
        Some(code) => match accounts::convert(&Conversion {
            person_id: learner,
            standard: code.clone(),
            sources: vec![cert.entry_id],
            idempotency_key: format!("agreement/{id}/conversion"),
        }) {
            Ok(c) => (Some(c), None),
            Err(accounts::Error::Conflict(m) | accounts::Error::Invalid(m)) => (None, Some(m)),
            Err(e) => return Err(e.into()),
        },
    };
    COMPLETIONS.insert(&[
        ("agreement_id", i(id)),
        ("school", t(&school)),
        ("job_type", t(&std.job_type)),
        ("learner", i(learner)),
        ("certificate_kind", t(&std.certificate.kind)),
        ("certificate_entry", i(cert.entry_id)),
        ("credits", Value::Real(std.credits)),
        ("credit_entry", i(credits.entry_id)),
        (
            "conversion_entry",
            conversion.as_ref().map_or(Value::Null, |c| i(c.entry_id)),
        ),
        ("conversion_note", opt_t(note.as_deref())),
        ("on_date", t(&on)),
    ])?;
    AGREEMENTS.update(&[i(id)], &[("status", t("completed"))])?;
    Response::json(
        201,
        &json!({
            "agreement_id": id,
            "certificate": {"kind": std.certificate.kind, "title": std.certificate.title, "entry": cert.entry_id},
            "credits": {"quantity": std.credits, "entry": credits.entry_id},
            "conversion": conversion.map(|c| json!({
                "entry": c.entry_id, "kind": c.kind, "quantity": c.quantity,
                "standard": std.conversion, "version": c.standard_version,
            })),
            "conversion_note": note,
        }),
    )
}
