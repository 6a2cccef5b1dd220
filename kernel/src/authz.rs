//! Authorisation: who is acting, and what their role grants cover.
//!
//! Roles are granted at a site and hold for that site's whole subtree, so a
//! check is "does any of the actor's grants of these roles sit at an ancestor
//! of (or at) the object's site". Site ancestry is the materialised `path`
//! ('/1/7/42/'), so covering is a string-prefix test.
//!
//! **Invariant:** every registry operation takes an [`Actor`] and checks it
//! before touching data; HTTP handlers never decide access themselves.
//! `Actor::System` is the operator at the console (CLI) or the kernel itself.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// A role a person can hold at a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A citizen learning at the site.
    Learner,
    /// A full-time or certified part-time teacher.
    Teacher,
    /// A registered volunteer.
    Volunteer,
    /// An enterprise mentor (dual-track courses).
    EnterpriseMentor,
    /// Administers the site and its subtree.
    SiteAdmin,
    /// Administers the whole city; granted only at the root.
    CityAdmin,
    /// May install, upgrade, roll back and remove the packages of a
    /// publisher the city bound to this site or one below it
    /// (`plugins/registry/publishers.rs`); grants nothing else.
    PluginPublisher,
    /// May read full (unmasked) ID numbers in the subtree; every read is audited.
    PiiReader,
}

/// Every role, for validation messages and the OpenAPI document.
pub const ROLES: &[&str] = &[
    "learner",
    "teacher",
    "volunteer",
    "enterprise_mentor",
    "site_admin",
    "city_admin",
    "plugin_publisher",
    "pii_reader",
];

impl Role {
    /// The stored and JSON form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Learner => "learner",
            Role::Teacher => "teacher",
            Role::Volunteer => "volunteer",
            Role::EnterpriseMentor => "enterprise_mentor",
            Role::SiteAdmin => "site_admin",
            Role::CityAdmin => "city_admin",
            Role::PluginPublisher => "plugin_publisher",
            Role::PiiReader => "pii_reader",
        }
    }

    /// Parse the stored form, with a message listing the valid ones.
    pub fn parse(s: &str) -> Result<Role> {
        Ok(match s {
            "learner" => Role::Learner,
            "teacher" => Role::Teacher,
            "volunteer" => Role::Volunteer,
            "enterprise_mentor" => Role::EnterpriseMentor,
            "site_admin" => Role::SiteAdmin,
            "city_admin" => Role::CityAdmin,
            "plugin_publisher" => Role::PluginPublisher,
            "pii_reader" => Role::PiiReader,
            other => {
                return Err(Error::invalid(
                    "role",
                    format!(
                        "unknown role {other:?}; expected one of {}",
                        ROLES.join(", ")
                    ),
                ))
            }
        })
    }
}

/// One live grant of a role at a site.
#[derive(Debug, Clone, Serialize)]
pub struct Grant {
    /// The role.
    pub role: Role,
    /// The site it was granted at.
    pub site_id: i64,
    /// That site's path; the grant covers every path with this prefix.
    #[serde(skip)]
    pub site_path: String,
    /// That site's code (what plugins see).
    #[serde(skip)]
    pub site_code: String,
}

/// An authenticated person with their live grants.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The person.
    pub person_id: i64,
    /// The path of the person's home site.
    pub home_path: String,
    /// Live role grants.
    pub grants: Vec<Grant>,
}

/// Who performs an operation.
#[derive(Debug, Clone)]
pub enum Actor {
    /// The console operator or the kernel itself, with full authority.
    System(&'static str),
    /// A person authenticated by a token.
    Person(Caller),
}

const ADMINS: &[Role] = &[Role::SiteAdmin, Role::CityAdmin];

impl Actor {
    /// The person id, if a person acts.
    pub fn person_id(&self) -> Option<i64> {
        match self {
            Actor::System(_) => None,
            Actor::Person(c) => Some(c.person_id),
        }
    }

    /// How the audit log names the actor.
    pub fn label(&self) -> String {
        match self {
            Actor::System(what) => format!("system:{what}"),
            Actor::Person(c) => format!("person:{}", c.person_id),
        }
    }

    /// True if one of `roles` is held at `path` or an ancestor of it.
    pub fn covers(&self, roles: &[Role], path: &str) -> bool {
        match self {
            Actor::System(_) => true,
            Actor::Person(c) => c
                .grants
                .iter()
                .any(|g| roles.contains(&g.role) && path.starts_with(&g.site_path)),
        }
    }

    /// True if the actor is a city admin (or the system).
    pub fn is_city_admin(&self) -> bool {
        match self {
            Actor::System(_) => true,
            Actor::Person(c) => c.grants.iter().any(|g| g.role == Role::CityAdmin),
        }
    }

    /// True if the actor administers `path` (site or city admin above it).
    pub fn is_admin_over(&self, path: &str) -> bool {
        self.covers(ADMINS, path)
    }

    /// Require an admin role covering `path`.
    pub fn require_admin(&self, path: &str, action: &str) -> Result<()> {
        if self.is_admin_over(path) {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "{action} needs the site_admin role at this site or one above it"
            )))
        }
    }

    /// Require the city admin role.
    pub fn require_city_admin(&self, action: &str) -> Result<()> {
        if self.is_city_admin() {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "{action} needs the city_admin role"
            )))
        }
    }

    /// True if the actor may see the site at `path`: inside one of their
    /// grants' subtrees, or on the way from the root to one of their grants
    /// or their home site (context they need to see where they are).
    pub fn can_see_site(&self, path: &str) -> bool {
        match self {
            Actor::System(_) => true,
            Actor::Person(c) => {
                c.home_path.starts_with(path)
                    || c.grants
                        .iter()
                        .any(|g| path.starts_with(&g.site_path) || g.site_path.starts_with(path))
            }
        }
    }

    /// The subtree roots (paths) an admin actor manages, outermost only.
    /// `None` means everything (system or city admin).
    pub fn admin_scopes(&self) -> Option<Vec<String>> {
        match self {
            Actor::System(_) => None,
            Actor::Person(_) if self.is_city_admin() => None,
            Actor::Person(c) => Some(outermost(
                c.grants
                    .iter()
                    .filter(|g| ADMINS.contains(&g.role))
                    .map(|g| g.site_path.clone()),
            )),
        }
    }

    /// The subtree roots an actor may see in site listings.
    pub fn visible_scopes(&self) -> Option<Vec<String>> {
        match self {
            Actor::System(_) => None,
            Actor::Person(_) if self.is_city_admin() => None,
            Actor::Person(c) => Some(outermost(
                c.grants
                    .iter()
                    .map(|g| g.site_path.clone())
                    .chain(std::iter::once(c.home_path.clone())),
            )),
        }
    }
}

/// Keep only paths that are not inside another one of the set.
fn outermost(paths: impl Iterator<Item = String>) -> Vec<String> {
    let mut all: Vec<String> = paths.collect();
    all.sort();
    all.dedup();
    let mut out: Vec<String> = Vec::new();
    for p in all {
        if !out.iter().any(|o| p.starts_with(o.as_str())) {
            out.push(p);
        }
    }
    out
}

/// The exclusive upper bound of a path prefix range: every path starting
/// with `prefix` sorts in `[prefix, upper(prefix))`. Paths end with '/',
/// and '0' is the byte after '/'.
pub fn path_upper(prefix: &str) -> String {
    let mut s = prefix.to_string();
    if s.ends_with('/') {
        s.pop();
        s.push('0');
    } else {
        s.push('\u{7f}');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(grants: &[(Role, &str)]) -> Actor {
        Actor::Person(Caller {
            person_id: 9,
            home_path: "/1/2/3/".into(),
            grants: grants
                .iter()
                .map(|(r, p)| Grant {
                    role: *r,
                    site_id: 0,
                    site_path: p.to_string(),
                    site_code: String::new(),
                })
                .collect(),
        })
    }

    #[test]
    fn grants_cover_their_subtree_only() {
        let a = person(&[(Role::SiteAdmin, "/1/2/")]);
        assert!(a.covers(&[Role::SiteAdmin], "/1/2/"));
        assert!(a.covers(&[Role::SiteAdmin], "/1/2/30/"));
        assert!(
            !a.covers(&[Role::SiteAdmin], "/1/20/"),
            "a sibling with a longer id is outside"
        );
        assert!(!a.covers(&[Role::SiteAdmin], "/1/"));
        assert!(a.require_admin("/1/5/", "editing").is_err());
        assert!(a.can_see_site("/1/"), "ancestors are visible as context");
        assert!(!a.can_see_site("/1/5/"));
    }

    #[test]
    fn path_ranges() {
        assert_eq!(path_upper("/1/2/"), "/1/20");
        assert!(*"/1/2/99/" < *path_upper("/1/2/"));
        assert!(*"/1/20/" >= *path_upper("/1/2/"));
        assert_eq!(
            outermost(
                [
                    "/1/2/5/".to_string(),
                    "/1/2/".to_string(),
                    "/1/3/".to_string()
                ]
                .into_iter()
            ),
            vec!["/1/2/", "/1/3/"]
        );
    }
}
