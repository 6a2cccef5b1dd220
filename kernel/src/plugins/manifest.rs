//! The part of a plugin's manifest (`plugin.toml`) the runtime needs: its
//! identity, declared tables, events and limits.
//!
//! **Invariant:** every identifier that reaches SQL (table, column and index
//! names) has passed [`ident`] here, once, at load time.

use serde::Deserialize;
use std::collections::BTreeSet;

/// Errors in a manifest; each names what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("plugin.toml is not valid TOML: {0}")]
    Toml(String),
    #[error("{0}")]
    Invalid(String),
}

/// A plugin manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Lower-case id, e.g. `elder-education`.
    pub id: String,
    /// Semantic version.
    pub version: String,
    /// Who publishes it; packages are signed with this publisher's key.
    pub publisher: String,
    /// The host-API versions it works with, a semver requirement (`"^1.0"`).
    pub host_api: String,
    /// Human names.
    #[serde(default)]
    pub name: Names,
    /// What it does, for admins deciding to enable it.
    #[serde(default)]
    pub description: String,
    /// Other plugins it needs, by id, with a semver requirement each.
    #[serde(default)]
    pub dependencies: std::collections::BTreeMap<String, String>,
    /// Tables the plugin owns.
    #[serde(default)]
    pub tables: Vec<TableDef>,
    /// Event names (without the plugin prefix) the plugin publishes.
    #[serde(default)]
    pub publishes: Vec<String>,
    /// Full event names (`kernel.person.created`, `other-plugin.name`) it receives.
    #[serde(default)]
    pub subscribes: Vec<String>,
    /// Kernel capabilities the plugin asks for (see [`CAPABILITIES`]), each
    /// a name or `{ name = "identity.read", fields = [...] }` narrowing it.
    #[serde(default, rename = "capabilities")]
    declared: Vec<CapabilityDecl>,
    /// The capability names (from `capabilities`).
    #[serde(skip)]
    pub capabilities: Vec<String>,
    /// The person fields `identity.read` is narrowed to (None: all of them).
    #[serde(skip)]
    pub identity_fields: Option<Vec<String>>,
    /// The roles `identity.grant` may grant (`roles = [...]`; empty: none).
    #[serde(skip)]
    pub grantable_roles: Vec<String>,
    /// Limits the plugin asks for (lower than the kernel's caps).
    #[serde(default)]
    pub limits: AskedLimits,
    /// Per-site settings with their types and defaults.
    #[serde(default)]
    pub settings: Vec<SettingDef>,
    /// Indicators the plugin provides (host API 1.4.0, the `indicators`
    /// export): plan indicators it computes and its own.
    #[serde(default)]
    pub indicators: Vec<IndicatorDef>,
}

/// A declared indicator (`[[indicators]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndicatorDef {
    /// `"1"`..`"10"` for a plan indicator the plugin provides (only those in
    /// [`PLUGIN_PLAN_INDICATORS`]), else `"<plugin id>.<name>"`.
    pub key: String,
    pub name: Names,
    pub unit: Names,
    /// Bumped whenever the formula changes, so a stored snapshot says which
    /// formula computed it.
    pub formula_version: u32,
    /// How the value is computed, for admins.
    #[serde(default)]
    pub description: String,
}

/// The plan indicators a plugin may provide; the others (3, 4, 6, 7, 10)
/// are computed by the kernel from its own data.
pub const PLUGIN_PLAN_INDICATORS: &[&str] = &["1", "2", "5", "8", "9"];

/// One entry of `capabilities`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum CapabilityDecl {
    Name(String),
    WithArgs(CapabilityArgs),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CapabilityArgs {
    name: String,
    fields: Option<Vec<String>>,
    roles: Option<Vec<String>>,
}

/// The roles `identity.grant` can name: none with administrative power.
pub const GRANTABLE_ROLES: &[&str] = &["learner", "teacher", "volunteer", "enterprise_mentor"];

/// The person fields `identity.read` can be narrowed to (`id` is always given).
pub const IDENTITY_FIELDS: &[&str] =
    &["name", "id_number_masked", "birth_date", "sex", "home_site"];

/// A declared per-site setting.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingDef {
    pub name: String,
    /// `integer`, `real`, `text` or `boolean`.
    #[serde(rename = "type")]
    pub ty: ColumnType,
    pub default: toml::Value,
    #[serde(default)]
    pub description: String,
}

impl SettingDef {
    /// `v` as this setting's JSON value, if it has the declared type.
    pub fn json(&self, v: &serde_json::Value) -> Option<serde_json::Value> {
        let ok = match self.ty {
            ColumnType::Integer => v.is_i64(),
            ColumnType::Real => v.is_number(),
            ColumnType::Text => v.is_string(),
            ColumnType::Boolean => v.is_boolean(),
            ColumnType::Blob => false,
        };
        ok.then(|| v.clone())
    }

    /// The declared default as JSON.
    pub fn default_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.default).unwrap_or(serde_json::Value::Null)
    }
}

/// The versions of the `lifelong:plugin` host API this kernel serves.
/// A component built against an older minor version of the same major
/// links too (the linker matches semver-compatible names).
pub const HOST_APIS: &[&str] = &["1.4.0"];

/// Capabilities a plugin can ask for. Host calls outside the plugin's own
/// tables, events and logs need one.
pub const CAPABILITIES: &[&str] = &[
    "sites.read",
    "identity.read",
    "accounts.read",
    "accounts.record",
    "identity.grant",
    "accounts.convert",
];

/// Display names.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Names {
    #[serde(default, rename = "zh-CN")]
    pub zh_cn: String,
    #[serde(default)]
    pub en: String,
}

/// Limits a plugin asks for; absent fields take the kernel's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskedLimits {
    pub deadline_ms: Option<u64>,
    pub memory_mib: Option<u64>,
    /// Calls of this plugin running at once on a node (at most the kernel's).
    pub max_concurrent_calls: Option<u64>,
    /// Largest request body this plugin accepts (at most the kernel's cap).
    pub max_body_bytes: Option<u64>,
    /// Quotas lower than the city's (`quota.rs`; a higher value changes nothing).
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
    pub site_rows: Option<u64>,
    pub site_bytes: Option<u64>,
    pub calls_per_minute: Option<u64>,
    pub events_per_minute: Option<u64>,
    pub log_lines_per_minute: Option<u64>,
}

/// A declared table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDef {
    pub name: String,
    pub columns: Vec<ColumnDef>,
    /// Primary-key columns; `["id"]` with an integer `id` column makes the
    /// kernel generate ids.
    pub primary_key: Vec<String>,
    #[serde(default)]
    pub unique: Vec<Vec<String>>,
    #[serde(default)]
    pub indexes: Vec<Vec<String>>,
}

/// A declared column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDef {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    #[serde(default)]
    pub nullable: bool,
}

/// Column types a plugin can declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Integer,
    Real,
    Text,
    Boolean,
    Blob,
}

impl ColumnType {
    /// The type's name in plugin-facing messages.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Integer => "integer",
            ColumnType::Real => "real",
            ColumnType::Text => "text",
            ColumnType::Boolean => "boolean",
            ColumnType::Blob => "blob",
        }
    }
}

impl TableDef {
    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// True when the kernel generates the key (`primary_key = ["id"]`, integer).
    pub fn generated_id(&self) -> bool {
        self.primary_key.len() == 1
            && self.primary_key[0] == "id"
            && self
                .column("id")
                .is_some_and(|c| c.ty == ColumnType::Integer)
    }

    /// Every column list a query may use as its access path: the primary
    /// key, the unique constraints and the indexes.
    pub fn access_paths(&self) -> impl Iterator<Item = &Vec<String>> {
        std::iter::once(&self.primary_key)
            .chain(self.unique.iter())
            .chain(self.indexes.iter())
    }
}

/// Parse and check a manifest.
pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
    let mut m: Manifest =
        toml::from_str(text).map_err(|e| ManifestError::Toml(e.message().to_string()))?;
    for d in &m.declared {
        match d {
            CapabilityDecl::Name(n) => m.capabilities.push(n.clone()),
            CapabilityDecl::WithArgs(a) => {
                m.capabilities.push(a.name.clone());
                if let Some(roles) = &a.roles {
                    if a.name != "identity.grant" {
                        return Err(bad(format!(
                            "capability {} takes no roles; only identity.grant names roles",
                            a.name
                        )));
                    }
                    if let Some(r) = roles
                        .iter()
                        .find(|r| !GRANTABLE_ROLES.contains(&r.as_str()))
                    {
                        return Err(bad(format!(
                            "identity.grant cannot grant {r:?}; it grants {}",
                            GRANTABLE_ROLES.join(", ")
                        )));
                    }
                    m.grantable_roles = roles.clone();
                }
                if let Some(fields) = &a.fields {
                    if a.name != "identity.read" {
                        return Err(bad(format!(
                            "capability {} takes no fields; only identity.read is narrowed by fields",
                            a.name
                        )));
                    }
                    if let Some(f) = fields
                        .iter()
                        .find(|f| !IDENTITY_FIELDS.contains(&f.as_str()))
                    {
                        return Err(bad(format!(
                            "identity.read has no field {f:?}; its fields are {}",
                            IDENTITY_FIELDS.join(", ")
                        )));
                    }
                    m.identity_fields = Some(fields.clone());
                }
            }
        }
    }
    check(&m)?;
    Ok(m)
}

impl Manifest {
    /// The newest host-API version this kernel serves that the plugin's
    /// `host_api` requirement accepts.
    pub fn host_api_served(&self) -> Option<semver::Version> {
        let req = semver::VersionReq::parse(&self.host_api).ok()?;
        HOST_APIS
            .iter()
            .filter_map(|v| semver::Version::parse(v).ok())
            .filter(|v| req.matches(v))
            .max()
    }

    /// The version as semver (checked by [`parse`]).
    pub fn semver(&self) -> semver::Version {
        semver::Version::parse(&self.version).unwrap_or(semver::Version::new(0, 0, 0))
    }
}

fn bad(msg: impl Into<String>) -> ManifestError {
    ManifestError::Invalid(msg.into())
}

/// A plugin, table, column or event identifier: `[a-z][a-z0-9_]*` (plugin ids
/// and event names may also use `-` and `.`), at most 48 characters.
pub fn ident(s: &str, extra: &[char]) -> bool {
    !s.is_empty()
        && s.len() <= 48
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || extra.contains(&c))
}

/// Words PostgreSQL reserves or SQLite cannot take as a bare column name.
/// Column names reach SQL unquoted, so these are refused at install.
const SQL_KEYWORDS: &[&str] = &[
    "add",
    "all",
    "alter",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "autoincrement",
    "between",
    "binary",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "commit",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "delete",
    "desc",
    "distinct",
    "do",
    "drop",
    "else",
    "end",
    "escape",
    "except",
    "exists",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "if",
    "ilike",
    "in",
    "index",
    "initially",
    "inner",
    "insert",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "not",
    "nothing",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "references",
    "returning",
    "right",
    "select",
    "session_user",
    "set",
    "similar",
    "some",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "transaction",
    "true",
    "union",
    "unique",
    "update",
    "user",
    "using",
    "values",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];

fn check(m: &Manifest) -> Result<(), ManifestError> {
    // No '_' in ids: table namespaces map '-' to '_', so `a-b` and `a_b`
    // would share one.
    if !ident(&m.id, &['-']) || m.id.ends_with('-') || m.id.contains('_') || m.id.contains("--") {
        return Err(bad(format!(
            "id {:?} must be lower-case letters, digits and '-', starting with a letter",
            m.id
        )));
    }
    if semver::Version::parse(&m.version).is_err() {
        return Err(bad(format!(
            "version {:?} is not a semantic version (MAJOR.MINOR.PATCH)",
            m.version
        )));
    }
    if !ident(&m.publisher, &['-']) {
        return Err(bad(format!(
            "publisher {:?} must be lower-case letters, digits and '-', starting with a letter",
            m.publisher
        )));
    }
    if semver::VersionReq::parse(&m.host_api).is_err() {
        return Err(bad(format!(
            "host_api {:?} is not a semver requirement (e.g. \"^1.0\")",
            m.host_api
        )));
    }
    for (dep, req) in &m.dependencies {
        if !ident(dep, &['-']) {
            return Err(bad(format!("dependency {dep:?} is not a plugin id")));
        }
        if dep == &m.id {
            return Err(bad(format!("plugin {} cannot depend on itself", m.id)));
        }
        if semver::VersionReq::parse(req).is_err() {
            return Err(bad(format!(
                "dependency {dep} = {req:?} is not a semver requirement"
            )));
        }
    }
    let mut tables = BTreeSet::new();
    for t in &m.tables {
        if !ident(&t.name, &[]) {
            return Err(bad(format!(
                "table name {:?} must match [a-z][a-z0-9_]*",
                t.name
            )));
        }
        if !tables.insert(&t.name) {
            return Err(bad(format!("table {} is declared twice", t.name)));
        }
        let mut cols = BTreeSet::new();
        for c in &t.columns {
            if !ident(&c.name, &[]) {
                return Err(bad(format!(
                    "column {}.{:?} must match [a-z][a-z0-9_]*",
                    t.name, c.name
                )));
            }
            if SQL_KEYWORDS.contains(&c.name.as_str()) {
                return Err(bad(format!(
                    "column {}.{} is an SQL keyword; choose another name",
                    t.name, c.name
                )));
            }
            if !cols.insert(&c.name) {
                return Err(bad(format!(
                    "column {}.{} is declared twice",
                    t.name, c.name
                )));
            }
        }
        if t.primary_key.is_empty() {
            return Err(bad(format!("table {} needs a primary_key", t.name)));
        }
        for list in t.access_paths() {
            if list.is_empty() {
                return Err(bad(format!(
                    "table {} has an empty unique or index column list",
                    t.name
                )));
            }
            for c in list {
                if t.column(c).is_none() {
                    return Err(bad(format!("table {} names unknown column {c:?}", t.name)));
                }
            }
        }
        for c in &t.primary_key {
            if t.column(c).is_some_and(|c| c.nullable) {
                return Err(bad(format!(
                    "primary-key column {}.{c} cannot be nullable",
                    t.name
                )));
            }
        }
    }
    let mut names = BTreeSet::new();
    for st in &m.settings {
        if !ident(&st.name, &[]) {
            return Err(bad(format!(
                "setting name {:?} must match [a-z][a-z0-9_]*",
                st.name
            )));
        }
        if !names.insert(&st.name) {
            return Err(bad(format!("setting {} is declared twice", st.name)));
        }
        if st.json(&st.default_json()).is_none() {
            return Err(bad(format!(
                "the default of setting {} is not a {}",
                st.name,
                st.ty.name()
            )));
        }
    }
    let mut seen = BTreeSet::new();
    for c in &m.capabilities {
        if !seen.insert(c) {
            return Err(bad(format!("capability {c} is asked for twice")));
        }
        if !CAPABILITIES.contains(&c.as_str()) {
            return Err(bad(format!(
                "unknown capability {c:?}; this kernel offers {}",
                CAPABILITIES.join(", ")
            )));
        }
    }
    let mut keys = BTreeSet::new();
    for i in &m.indicators {
        check_indicator(m, i)?;
        if !keys.insert(&i.key) {
            return Err(bad(format!("indicator {} is declared twice", i.key)));
        }
    }
    for e in &m.publishes {
        if !ident(e, &['-', '.']) {
            return Err(bad(format!(
                "event name {e:?} must be lower-case letters, digits, '_', '-', '.'"
            )));
        }
    }
    for e in &m.subscribes {
        if !e.contains('.') || !ident(e, &['-', '.']) {
            return Err(bad(format!(
                "subscription {e:?} must be <publisher>.<event>"
            )));
        }
    }
    Ok(())
}

fn check_indicator(m: &Manifest, i: &IndicatorDef) -> Result<(), ManifestError> {
    let key = &i.key;
    if let Ok(n) = key.parse::<u32>() {
        if !(1..=10).contains(&n) || key != &n.to_string() {
            return Err(bad(format!(
                "indicator key {key:?}: the plan's indicators are numbered 1 to 10"
            )));
        }
        if !PLUGIN_PLAN_INDICATORS.contains(&key.as_str()) {
            return Err(bad(format!(
                "indicator {key} is computed by the kernel from its own data; a plugin may provide plan indicators {} only",
                PLUGIN_PLAN_INDICATORS.join(", ")
            )));
        }
    } else {
        let own = key
            .strip_prefix(m.id.as_str())
            .and_then(|rest| rest.strip_prefix('.'));
        match own {
            Some(name) if ident(name, &[]) => {}
            _ => {
                return Err(bad(format!(
                    "indicator key {key:?} must be a plan indicator's number or \"{}.<name>\" with <name> matching [a-z][a-z0-9_]*",
                    m.id
                )))
            }
        }
    }
    for (what, v) in [
        ("name.zh-CN", &i.name.zh_cn),
        ("name.en", &i.name.en),
        ("unit.zh-CN", &i.unit.zh_cn),
        ("unit.en", &i.unit.en),
    ] {
        if v.trim().is_empty() || v.len() > 200 {
            return Err(bad(format!(
                "indicator {key} needs a {what} of 1 to 200 characters"
            )));
        }
    }
    if i.formula_version == 0 {
        return Err(bad(format!("indicator {key}: formula_version starts at 1")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_unsafe_identifiers_and_unknown_columns() {
        let base = |table: &str, col: &str, idx: &str| {
            format!(
                "id = \"p\"\nversion = \"1.0.0\"\npublisher = \"x\"\nhost_api = \"^1.0\"\n[[tables]]\nname = \"{table}\"\nprimary_key = [\"id\"]\nindexes = [[\"{idx}\"]]\n[[tables.columns]]\nname = \"{col}\"\ntype = \"integer\"\n"
            )
        };
        assert!(parse(&base("t", "id", "id")).is_ok());
        let e = parse(&base("t; DROP TABLE x", "id", "id"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("must match"), "{e}");
        let e = parse(&base("t", "id", "id").replace("id = \"p\"", "id = \"p_q\""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("must be lower-case letters, digits and '-'"),
            "{e}"
        );
        let e =
            parse(&base("t", "id", "id").replace("name = \"id\"\ntype", "name = \"order\"\ntype"))
                .unwrap_err()
                .to_string();
        assert_eq!(e, "column t.order is an SQL keyword; choose another name");
        let e = parse(&base("t", "id", "nope")).unwrap_err().to_string();
        assert_eq!(e, "table t names unknown column \"nope\"");
        let e = parse("id = \"p\"\nversion = \"1.0\"\npublisher = \"x\"\nhost_api = \"^1\"")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "version \"1.0\" is not a semantic version (MAJOR.MINOR.PATCH)"
        );
    }

    #[test]
    fn indicator_keys_are_plan_numbers_a_plugin_may_provide_or_its_own() {
        let with = |key: &str| {
            parse(&format!(
                "id = \"p\"\nversion = \"1.0.0\"\npublisher = \"x\"\nhost_api = \"^1.4\"\n\
                 [[indicators]]\nkey = \"{key}\"\nname = {{ zh-CN = \"指标\", en = \"Indicator\" }}\n\
                 unit = {{ zh-CN = \"个\", en = \"items\" }}\nformula_version = 1\n"
            ))
        };
        for ok in ["1", "2", "5", "8", "9", "p.hours", "p.rate_2"] {
            assert!(with(ok).is_ok(), "{ok}");
        }
        for kernel_owned in ["3", "4", "6", "7", "10"] {
            let e = with(kernel_owned).unwrap_err().to_string();
            assert!(e.contains("computed by the kernel"), "{e}");
        }
        for bad_key in ["0", "11", "01", "q.hours", "p.", "p.Hours", "hours", ""] {
            let e = with(bad_key).unwrap_err().to_string();
            assert!(e.contains("indicator key"), "{bad_key}: {e}");
        }
        let twice = with("1").map(|_| ()).and_then(|_| {
            parse(
                "id = \"p\"\nversion = \"1.0.0\"\npublisher = \"x\"\nhost_api = \"^1.4\"\n\
                 [[indicators]]\nkey = \"1\"\nname = { zh-CN = \"a\", en = \"a\" }\nunit = { zh-CN = \"a\", en = \"a\" }\nformula_version = 1\n\
                 [[indicators]]\nkey = \"1\"\nname = { zh-CN = \"a\", en = \"a\" }\nunit = { zh-CN = \"a\", en = \"a\" }\nformula_version = 1\n",
            )
            .map(|_| ())
        });
        assert_eq!(
            twice.unwrap_err().to_string(),
            "indicator 1 is declared twice"
        );
    }
}
