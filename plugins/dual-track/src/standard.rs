//! A job-type standard as published (a pure value, checked here and kept as
//! JSON): the framework plan of modules with their place, hours and
//! content; practical-skill requirements; assessment items per post; the
//! certificate and credits a pass records; the credit bank's conversion
//! standard. And the one rule over it: what is still missing before a
//! learner passes. No host calls here, so the rules are testable natively.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A version of a speciality's job-type standard.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Standard {
    /// The job type (工种) it trains for.
    pub job_type: String,
    /// The framework plan.
    pub modules: Vec<Module>,
    /// Practical-skill requirements, as text.
    #[serde(default)]
    pub skills: Vec<String>,
    /// Assessment items per post.
    pub items: Vec<Item>,
    /// What a pass records.
    pub certificate: Certificate,
    /// Academic credits a pass records (at most 30).
    pub credits: f64,
    /// The credit bank's conversion standard applied to the certificate.
    #[serde(default)]
    pub conversion: Option<String>,
}

/// A module of the framework plan.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Module {
    /// Code, unique in the standard.
    pub code: String,
    /// Name.
    pub name: String,
    /// `school` (theory) or `enterprise` (practice).
    pub place: String,
    /// Hours.
    pub hours: i64,
    /// Content.
    #[serde(default)]
    pub content: String,
    /// Not needed for a pass.
    #[serde(default)]
    pub optional: bool,
}

/// An assessment item.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Code, unique in the standard.
    pub code: String,
    /// Name.
    pub name: String,
    /// The post (岗位) it assesses.
    pub post: String,
    /// `midterm` or `final`.
    pub stage: String,
    /// `theory` or `practice`.
    pub kind: String,
    /// `school`, `enterprise` or `committee`: which committee members assess it.
    pub assessor: String,
    /// The least score that passes (0-100).
    pub pass_mark: f64,
    /// Not needed for a pass.
    #[serde(default)]
    pub optional: bool,
}

/// The certificate a pass records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// `skill_certificate` or `vocational_qualification`.
    pub kind: String,
    /// Its title.
    pub title: String,
}

fn unique<'a>(what: &str, codes: impl Iterator<Item = &'a str>) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for c in codes {
        if c.trim().is_empty() || c.len() > 40 {
            return Err(format!("{what} codes must be 1-40 characters"));
        }
        if !seen.insert(c) {
            return Err(format!("{what} code {c:?} appears twice"));
        }
    }
    Ok(())
}

impl Standard {
    /// Check a standard before it is published; the message names the fault.
    pub fn check(&self) -> Result<(), String> {
        if self.job_type.trim().is_empty() {
            return Err("job_type must not be empty".into());
        }
        unique("module", self.modules.iter().map(|m| m.code.as_str()))?;
        unique("item", self.items.iter().map(|m| m.code.as_str()))?;
        for m in &self.modules {
            if !matches!(m.place.as_str(), "school" | "enterprise") {
                return Err(format!(
                    "module {}: place must be school or enterprise",
                    m.code
                ));
            }
            if !(1..=2000).contains(&m.hours) {
                return Err(format!("module {}: hours must be 1-2000", m.code));
            }
        }
        let places: BTreeSet<&str> = self.modules.iter().map(|m| m.place.as_str()).collect();
        if places.len() != 2 {
            return Err(
                "a dual-track plan joins theory and practice: at least one school and one enterprise module"
                    .into(),
            );
        }
        for it in &self.items {
            if !matches!(it.stage.as_str(), "midterm" | "final") {
                return Err(format!("item {}: stage must be midterm or final", it.code));
            }
            if !matches!(it.kind.as_str(), "theory" | "practice") {
                return Err(format!("item {}: kind must be theory or practice", it.code));
            }
            if !matches!(it.assessor.as_str(), "school" | "enterprise" | "committee") {
                return Err(format!(
                    "item {}: assessor must be school, enterprise or committee",
                    it.code
                ));
            }
            if !(0.0..=100.0).contains(&it.pass_mark) {
                return Err(format!("item {}: pass_mark must be 0-100", it.code));
            }
            if it.post.trim().is_empty() {
                return Err(format!("item {}: post must not be empty", it.code));
            }
        }
        if !self.items.iter().any(|i| i.stage == "final" && !i.optional) {
            return Err("at least one required final assessment item".into());
        }
        if !matches!(
            self.certificate.kind.as_str(),
            "skill_certificate" | "vocational_qualification"
        ) {
            return Err(
                "certificate.kind must be skill_certificate or vocational_qualification".into(),
            );
        }
        if self.certificate.title.trim().is_empty() {
            return Err("certificate.title must not be empty".into());
        }
        if !(self.credits > 0.0 && self.credits <= 30.0) || (self.credits * 1000.0).fract() != 0.0 {
            return Err("credits must be more than 0 and at most 30".into());
        }
        Ok(())
    }

    /// The module with this code.
    pub fn module(&self, code: &str) -> Option<&Module> {
        self.modules.iter().find(|m| m.code == code)
    }

    /// The item with this code.
    pub fn item(&self, code: &str) -> Option<&Item> {
        self.items.iter().find(|m| m.code == code)
    }

    /// Hours of the whole plan.
    pub fn hours(&self) -> i64 {
        self.modules.iter().map(|m| m.hours).sum()
    }

    /// What still stands between a learner and a pass: required modules
    /// neither recorded nor waived, and required items not passed.
    pub fn missing(
        &self,
        done: &BTreeSet<String>,
        waived: &BTreeSet<String>,
        passed: &BTreeSet<String>,
    ) -> (Vec<String>, Vec<String>) {
        let modules = self
            .modules
            .iter()
            .filter(|m| !m.optional && !done.contains(&m.code) && !waived.contains(&m.code))
            .map(|m| m.code.clone())
            .collect();
        let items = self
            .items
            .iter()
            .filter(|i| !i.optional && !passed.contains(&i.code))
            .map(|i| i.code.clone())
            .collect();
        (modules, items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Standard {
        serde_json::from_value(serde_json::json!({
            "job_type": "维修电工",
            "modules": [
                {"code": "T1", "name": "电工基础", "place": "school", "hours": 40},
                {"code": "P1", "name": "现场实操", "place": "enterprise", "hours": 80},
                {"code": "X", "name": "选修", "place": "school", "hours": 10, "optional": true}
            ],
            "items": [
                {"code": "F-T", "name": "结业理论", "post": "维修电工", "stage": "final", "kind": "theory", "assessor": "school", "pass_mark": 60},
                {"code": "F-P", "name": "结业实操", "post": "维修电工", "stage": "final", "kind": "practice", "assessor": "enterprise", "pass_mark": 60}
            ],
            "certificate": {"kind": "skill_certificate", "title": "电工证"},
            "credits": 12
        }))
        .unwrap()
    }

    #[test]
    fn a_pass_needs_every_required_module_and_item() {
        let s = sample();
        assert_eq!(s.check(), Ok(()));
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            s.missing(&set(&["T1"]), &set(&["P1"]), &set(&["F-T"])),
            (vec![], vec!["F-P".to_string()])
        );
        assert_eq!(
            s.missing(&set(&["T1", "P1"]), &set(&[]), &set(&["F-T", "F-P"])),
            (vec![], vec![])
        );
    }

    #[test]
    fn theory_and_practice_are_both_required() {
        let mut s = sample();
        s.modules.retain(|m| m.place == "school");
        assert!(s.check().unwrap_err().contains("theory and practice"));
        let mut s = sample();
        s.credits = 31.0;
        assert!(s.check().is_err());
    }
}
