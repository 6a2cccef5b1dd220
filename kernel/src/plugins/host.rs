//! The host side of every import of the `lifelong:plugin` world, each run
//! against the call's [`CallState`].
//!
//! **Invariant:** every import runs inside the call's own transaction and
//! can only name the calling plugin's tables (the namespace is taken from
//! the loaded plugin). A refused call returns a typed `error`; only a kernel
//! failure (the database went away) traps, and that is reported as such.

use super::call::CallState;
use super::runtime::lifelong::plugin::{
    accounts as waccounts, clock, events, identity as widentity, log, settings as wsettings,
    sites as wsites, tables as wit, types,
};
use super::tables::{Change, Condition, Op, Operand, TableError, Value};
use crate::kernel::Kernel;
use crate::storage::now_micros;

/// Log lines one call may write.
const LOG_LINES: u32 = 200;

fn value_in(v: types::Value) -> Value {
    match v {
        types::Value::Null => Value::Null,
        types::Value::Integer(i) => Value::Integer(i),
        types::Value::Real(f) => Value::Real(f),
        types::Value::Text(s) => Value::Text(s),
        types::Value::Boolean(b) => Value::Boolean(b),
        types::Value::Blob(b) => Value::Blob(b),
    }
}

fn value_out(v: Value) -> types::Value {
    match v {
        Value::Null => types::Value::Null,
        Value::Integer(i) => types::Value::Integer(i),
        Value::Real(f) => types::Value::Real(f),
        Value::Text(s) => types::Value::Text(s),
        Value::Boolean(b) => types::Value::Boolean(b),
        Value::Blob(b) => types::Value::Blob(b),
    }
}

fn row_in(r: wit::Row) -> Vec<(String, Value)> {
    r.into_iter().map(|(c, v)| (c, value_in(v))).collect()
}

fn row_out(r: Vec<(String, Value)>) -> wit::Row {
    r.into_iter().map(|(c, v)| (c, value_out(v))).collect()
}

fn conds_in(w: Vec<wit::Condition>) -> Vec<Condition> {
    w.into_iter()
        .map(|c| Condition {
            column: c.column,
            op: match c.op {
                wit::Op::Eq => Op::Eq,
                wit::Op::Ne => Op::Ne,
                wit::Op::Lt => Op::Lt,
                wit::Op::Le => Op::Le,
                wit::Op::Gt => Op::Gt,
                wit::Op::Ge => Op::Ge,
            },
            operand: match c.operand {
                wit::Operand::Value(v) => Operand::Value(value_in(v)),
                wit::Operand::Column(c) => Operand::Column(c),
            },
        })
        .collect()
}

impl types::Host for CallState {}

impl log::Host for CallState {
    async fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        // A call may write at most LOG_LINES lines of at most 4 KiB; a flood
        // is cut off with one notice instead of filling the kernel's log.
        self.log_lines += 1;
        if self.log_lines > LOG_LINES {
            if self.log_lines == LOG_LINES + 1 {
                tracing::warn!(plugin = %self.manifest.id, request_id = %self.request_id, "plugin log lines beyond {LOG_LINES} in one call dropped");
            }
            return Ok(());
        }
        // Past the plugin's log lines per minute the call fails as `quota`.
        self.take_rate(super::quota::Rate::Logs)?;
        let message: String = message.chars().take(4096).collect();
        let (plugin, version, site, req) = (
            &self.manifest.id,
            &self.manifest.version,
            &self.site,
            &self.request_id,
        );
        self.obs.log(super::metrics::LogLine {
            at: now_micros(),
            level: match level {
                log::Level::Trace => "trace",
                log::Level::Debug => "debug",
                log::Level::Info => "info",
                log::Level::Warn => "warn",
                log::Level::Error => "error",
            },
            plugin: plugin.clone(),
            version: version.clone(),
            site: site.clone(),
            request_id: req.clone(),
            message: message.clone(),
        });
        match level {
            log::Level::Trace => {
                tracing::trace!(plugin, version, site, request_id = req, "{message}")
            }
            log::Level::Debug => {
                tracing::debug!(plugin, version, site, request_id = req, "{message}")
            }
            log::Level::Info => {
                tracing::info!(plugin, version, site, request_id = req, "{message}")
            }
            log::Level::Warn => {
                tracing::warn!(plugin, version, site, request_id = req, "{message}")
            }
            log::Level::Error => {
                tracing::error!(plugin, version, site, request_id = req, "{message}")
            }
        }
        Ok(())
    }

    async fn panicked(&mut self, message: String) -> wasmtime::Result<()> {
        self.panic = Some(message.chars().take(4096).collect());
        Ok(())
    }
}

impl clock::Host for CallState {
    async fn now_micros(&mut self) -> wasmtime::Result<i64> {
        Ok(now_micros())
    }

    async fn today(&mut self) -> wasmtime::Result<String> {
        Ok(crate::sites::today())
    }
}

impl wit::Host for CallState {
    async fn get(
        &mut self,
        table: String,
        key: Vec<types::Value>,
    ) -> wasmtime::Result<Result<Option<wit::Row>, types::Error>> {
        let key: Vec<Value> = key.into_iter().map(value_in).collect();
        let tables = self.tables.clone();
        let r = tables.get(&mut *self.tx().await?, &table, &key).await;
        self.table_result(r.map(|o| o.map(row_out)))
    }

    async fn insert(
        &mut self,
        table: String,
        row: wit::Row,
    ) -> wasmtime::Result<Result<wit::Row, types::Error>> {
        if let Err(e) = self.writable("insert") {
            return Ok(Err(e));
        }
        let tables = self.tables.clone();
        let r = tables
            .insert(&mut *self.tx().await?, &table, &row_in(row))
            .await;
        if let Ok(stored) = &r {
            self.count_stored(1, super::tables::row_bytes(stored))
                .await?;
        }
        self.table_result(r.map(row_out))
    }

    async fn update(
        &mut self,
        table: String,
        key: Vec<types::Value>,
        set: wit::Row,
    ) -> wasmtime::Result<Result<bool, types::Error>> {
        if let Err(e) = self.writable("update") {
            return Ok(Err(e));
        }
        let key: Vec<Value> = key.into_iter().map(value_in).collect();
        let tables = self.tables.clone();
        let r = tables
            .update(&mut *self.tx().await?, &table, &key, &row_in(set))
            .await;
        if let Ok((_, bytes)) = &r {
            self.count_stored(0, *bytes).await?;
        }
        self.table_result(r.map(|(updated, _)| updated))
    }

    async fn delete(
        &mut self,
        table: String,
        key: Vec<types::Value>,
    ) -> wasmtime::Result<Result<bool, types::Error>> {
        if let Err(e) = self.writable("delete") {
            return Ok(Err(e));
        }
        let key: Vec<Value> = key.into_iter().map(value_in).collect();
        let tables = self.tables.clone();
        let r = tables.delete(&mut *self.tx().await?, &table, &key).await;
        if let Ok(Some(bytes)) = &r {
            self.count_stored(-1, -*bytes).await?;
        }
        self.table_result(r.map(|deleted| deleted.is_some()))
    }

    async fn select(&mut self, q: wit::Query) -> wasmtime::Result<Result<wit::Page, types::Error>> {
        let order: Vec<(String, bool)> = q
            .order
            .into_iter()
            .map(|o| (o.column, o.descending))
            .collect();
        let tables = self.tables.clone();
        let r = tables
            .select(
                &mut *self.tx().await?,
                &q.table,
                &conds_in(q.where_),
                &order,
                q.limit,
                q.cursor.as_deref(),
            )
            .await;
        self.table_result(r.map(|(rows, next)| wit::Page {
            rows: rows.into_iter().map(row_out).collect(),
            next_cursor: next,
        }))
    }

    async fn update_where(
        &mut self,
        table: String,
        where_: Vec<wit::Condition>,
        changes: Vec<wit::Assignment>,
    ) -> wasmtime::Result<Result<u64, types::Error>> {
        if let Err(e) = self.writable("update-where") {
            return Ok(Err(e));
        }
        let changes: Vec<(String, Change)> = changes
            .into_iter()
            .map(|a| {
                (
                    a.column,
                    match a.change {
                        wit::Change::Set(v) => Change::Set(value_in(v)),
                        wit::Change::Add(n) => Change::Add(n),
                    },
                )
            })
            .collect();
        let tables = self.tables.clone();
        let r = tables
            .update_where(&mut *self.tx().await?, &table, &conds_in(where_), &changes)
            .await;
        if let Ok((_, bytes)) = &r {
            self.count_stored(0, *bytes).await?;
        }
        self.table_result(r.map(|(n, _)| n))
    }

    async fn aggregate(
        &mut self,
        table: String,
        where_: Vec<wit::Condition>,
        group_by: Vec<String>,
        sum: Option<String>,
    ) -> wasmtime::Result<Result<Vec<wit::Group>, types::Error>> {
        let tables = self.tables.clone();
        let r = tables
            .aggregate(
                &mut *self.tx().await?,
                &table,
                &conds_in(where_),
                &group_by,
                sum.as_deref(),
            )
            .await;
        self.table_result(r.map(|groups| {
            groups
                .into_iter()
                .map(|(key, count, sum)| wit::Group {
                    key: key.into_iter().map(value_out).collect(),
                    count,
                    sum,
                })
                .collect()
        }))
    }
}

fn site_out(s: crate::sites::Site) -> wsites::Site {
    wsites::Site {
        code: s.code,
        name_zh: s.name_zh,
        name_en: s.name_en,
        kind: s.kind,
        level: s.level,
        parent: s.parent_code,
        status: s.status,
        opened_on: s.opened_on,
    }
}

impl CallState {
    /// Run a site-registry read for a plugin holding `sites.read`.
    async fn sites_read<T, F, Fut>(&mut self, read: F) -> wasmtime::Result<Result<T, types::Error>>
    where
        F: FnOnce(Kernel) -> Fut,
        Fut: std::future::Future<Output = crate::error::Result<T>>,
    {
        if let Err(e) = self.capable("sites.read") {
            return Ok(Err(e));
        }
        let k = self.kernel()?;
        let r = read(k).await;
        self.kernel_result(r)
    }
}

impl wsites::Host for CallState {
    async fn get(&mut self, code: String) -> wasmtime::Result<Result<wsites::Site, types::Error>> {
        self.sites_read(
            |k| async move { crate::sites::get(&k.db, &SYSTEM, &code).await.map(site_out) },
        )
        .await
    }

    async fn children(
        &mut self,
        code: String,
    ) -> wasmtime::Result<Result<Vec<wsites::Site>, types::Error>> {
        self.sites_read(|k| async move {
            let v = crate::sites::children(&k.db, &SYSTEM, &code).await?;
            Ok(v.into_iter().map(site_out).collect())
        })
        .await
    }

    async fn ancestors(
        &mut self,
        code: String,
    ) -> wasmtime::Result<Result<Vec<wsites::Site>, types::Error>> {
        self.sites_read(|k| async move {
            let v = crate::sites::ancestors(&k.db, &SYSTEM, &code).await?;
            Ok(v.into_iter().map(site_out).collect())
        })
        .await
    }

    async fn subtree(
        &mut self,
        code: String,
    ) -> wasmtime::Result<Result<Vec<wsites::Site>, types::Error>> {
        self.sites_read(|k| async move {
            let v = crate::sites::list(
                &k.db,
                &SYSTEM,
                crate::sites::ListQuery {
                    within: Some(code),
                    limit: 10_000,
                    ..Default::default()
                },
            )
            .await?;
            Ok(v.into_iter().map(site_out).collect())
        })
        .await
    }

    async fn operator(&mut self, code: String) -> wasmtime::Result<Result<String, types::Error>> {
        self.sites_read(|k| async move {
            crate::sites::get(&k.db, &SYSTEM, &code)
                .await
                .map(|s| s.operator)
        })
        .await
    }

    async fn module_enabled(
        &mut self,
        code: String,
    ) -> wasmtime::Result<Result<bool, types::Error>> {
        let plugin = self.manifest.id.clone();
        self.sites_read(|k| async move {
            let site = crate::sites::get(&k.db, &SYSTEM, &code).await?;
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT s.path, e.enabled FROM plugin_enablement e JOIN sites s ON s.id = e.site_id \
                 WHERE e.plugin = $1",
            )
            .bind(&plugin)
            .fetch_all(k.db.reader())
            .await?;
            Ok(rows
                .iter()
                .filter(|(p, _)| site.path.starts_with(p.as_str()))
                .max_by_key(|(p, _)| p.len())
                .is_some_and(|(_, e)| *e != 0))
        })
        .await
    }
}

impl waccounts::Host for CallState {
    async fn get_account(
        &mut self,
        person_id: i64,
    ) -> wasmtime::Result<Result<waccounts::Account, types::Error>> {
        self.account_read(person_id, |k| async move {
            let st =
                crate::accounts::ledger::statement(&k, &SYSTEM, person_id, i64::MAX, 1).await?;
            Ok(waccounts::Account {
                person_id,
                status: st.account.status,
                activated_on: st.account.activated_on,
                entry_count: st.account.entry_count,
                total_credits: st.total_credits,
            })
        })
        .await
    }

    async fn statement(
        &mut self,
        person_id: i64,
        after: i64,
        limit: u32,
    ) -> wasmtime::Result<Result<Vec<waccounts::Entry>, types::Error>> {
        self.account_read(person_id, |k| async move {
            let st = crate::accounts::ledger::statement(
                &k,
                &SYSTEM,
                person_id,
                after.max(0),
                i64::from(limit.clamp(1, 200)),
            )
            .await?;
            Ok(st
                .entries
                .into_iter()
                .map(|e| waccounts::Entry {
                    seq: e.seq,
                    kind: e.kind,
                    title: e.title,
                    quantity: e.quantity,
                    unit: e.unit,
                    credits: e.credits,
                    occurred_on: e.occurred_on,
                    origin: e.origin,
                })
                .collect())
        })
        .await
    }

    async fn record_outcome(
        &mut self,
        o: waccounts::Outcome,
    ) -> wasmtime::Result<Result<waccounts::Recorded, types::Error>> {
        if let Err(e) = self.capable("accounts.record") {
            return Ok(Err(e));
        }
        if let Err(e) = self.writable("record-outcome") {
            return Ok(Err(e));
        }
        let k = self.kernel()?;
        // Only for a person the call may see (`persons.rs`), and only a
        // plausible outcome; a refusal is audited whatever the call does next.
        let (plugin, site) = (self.manifest.id.clone(), self.site.clone());
        let seen = super::persons::visible(&k, &plugin, self.caller, &site, o.person_id).await;
        let person =
            match seen {
                Ok(Some(p)) => p,
                Ok(None) => {
                    super::persons::audit_refusal(&k, super::persons::refusal(self, &o)).await;
                    return Ok(Err(types::Error::Denied(format!(
                    "plugin {} may not record outcomes for person {} at {}: only for the caller, \
                     residents of the area the site serves and persons who have called the \
                     plugin at this site",
                    self.manifest.id,
                    o.person_id,
                    if self.site.is_empty() { "no site" } else { &self.site },
                ))));
                }
                Err(e) => return self.kernel_result(Err(e)),
            };
        if let Err(e) = super::persons::plausible(
            &k.outcome_maxima,
            &person,
            &o.kind,
            o.quantity,
            &o.occurred_on,
        ) {
            return self.kernel_result(Err(e));
        }
        let origin = format!("plugin:{}", self.manifest.id);
        let actor = crate::authz::Actor::System("plugin");
        let entry = crate::accounts::ledger::NewEntry {
            person_id: o.person_id,
            kind: o.kind,
            title: o.title,
            quantity: o.quantity,
            unit: None,
            occurred_on: o.occurred_on,
            source_site: o.source_site,
            issuer: o.issuer,
            reference: o.reference,
            evidence: o.evidence,
            rule: o.rule,
            idempotency_key: o.idempotency_key,
        };
        let tx = self.tx().await?;
        let r = crate::accounts::ledger::record_in(tx, &k, &actor, &origin, entry).await;
        let r = r.map(|(e, how)| waccounts::Recorded {
            entry_id: e.id,
            credits: e.credits,
            replayed: how == crate::accounts::ledger::Recorded::Replayed,
        });
        self.kernel_result(r)
    }

    async fn reverse_outcome(
        &mut self,
        idempotency_key: String,
        reason: String,
    ) -> wasmtime::Result<Result<waccounts::Recorded, types::Error>> {
        self.reverse_own_outcome(idempotency_key, reason).await
    }

    async fn convert(
        &mut self,
        c: waccounts::Conversion,
    ) -> wasmtime::Result<Result<waccounts::Converted, types::Error>> {
        self.convert_outcomes(c).await
    }
}

impl CallState {
    /// A read of the credit bank for a plugin holding `accounts.read`, about
    /// a person the call may see.
    async fn account_read<T, F, Fut>(
        &mut self,
        person_id: i64,
        read: F,
    ) -> wasmtime::Result<Result<T, types::Error>>
    where
        F: FnOnce(Kernel) -> Fut,
        Fut: std::future::Future<Output = crate::error::Result<T>>,
    {
        if let Err(e) = self.capable("accounts.read") {
            return Ok(Err(e));
        }
        let k = self.kernel()?;
        let r = match in_view(&k, self.whom(), person_id).await {
            Ok(_) => read(k).await,
            Err(e) => Err(e),
        };
        self.kernel_result(r)
    }
}

impl widentity::Host for CallState {
    async fn get(
        &mut self,
        person_id: i64,
    ) -> wasmtime::Result<Result<widentity::Person, types::Error>> {
        if let Err(e) = self.capable("identity.read") {
            return Ok(Err(e));
        }
        let k = self.kernel()?;
        let r = in_view(&k, self.whom(), person_id).await.map(|p| {
            // Fields outside the plugin's declared `identity.read`
            // fields come back empty.
            let fields = self.manifest.identity_fields.as_deref();
            let keep = |f: &str, v: String| match fields {
                Some(list) if !list.iter().any(|x| x == f) => String::new(),
                _ => v,
            };
            widentity::Person {
                id: p.id,
                name: keep("name", p.name),
                id_number_masked: keep("id_number_masked", p.id_number),
                birth_date: keep("birth_date", p.birth_date),
                sex: keep("sex", p.sex),
                home_site: keep("home_site", p.home_site_code),
            }
        });
        self.kernel_result(r)
    }

    async fn has_role(
        &mut self,
        person_id: i64,
        role: String,
        site: String,
    ) -> wasmtime::Result<Result<bool, types::Error>> {
        if let Err(e) = self.capable("identity.read") {
            return Ok(Err(e));
        }
        let k = self.kernel()?;
        let r = async {
            let role = crate::authz::Role::parse(&role)?;
            let site = crate::sites::get(&k.db, &SYSTEM, &site).await?;
            let person = crate::identity::get(&k, &SYSTEM, person_id).await?;
            let actor = crate::authz::Actor::Person(
                crate::identity::caller(&k, person.id, person.home_path).await?,
            );
            Ok(actor.covers(&[role], &site.path))
        }
        .await;
        self.kernel_result(r)
    }

    async fn grant_role(
        &mut self,
        person_id: i64,
        role: String,
        site: String,
    ) -> wasmtime::Result<Result<bool, types::Error>> {
        self.grant_declared_role(person_id, role, site).await
    }
}

impl CallState {
    /// Who the call is for, where: what decides which persons it may see.
    fn whom(&self) -> (String, Option<i64>, String) {
        (self.manifest.id.clone(), self.caller, self.site.clone())
    }
}

/// A person the call may see (see `persons.rs`); anyone else is "not found".
/// Takes the call's plugin, caller and site rather than the (non-`Sync`)
/// call state, which a host call's future may not hold across an await.
async fn in_view(
    k: &Kernel,
    (plugin, caller, site): (String, Option<i64>, String),
    person_id: i64,
) -> crate::error::Result<crate::identity::Person> {
    super::persons::visible(k, &plugin, caller, &site, person_id)
        .await?
        .ok_or_else(|| crate::error::Error::NotFound(format!("person {person_id}")))
}

/// The path of the site a call is made in (None if no site).
async fn site_path(k: &Kernel, site: String) -> Option<String> {
    if site.is_empty() {
        return None;
    }
    crate::sites::fetch_by_code(k.db.reader(), &site)
        .await
        .ok()
        .flatten()
        .map(|s| s.path)
}

impl wsettings::Host for CallState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<types::Value, types::Error>> {
        let k = self.kernel()?;
        let path = site_path(&k, self.site.clone()).await;
        let r = super::settings::effective(&k, &self.manifest, path.as_deref(), &name).await;
        let r = r.and_then(|v| {
            v.ok_or_else(|| {
                crate::error::Error::NotFound(format!(
                    "plugin {} declares no setting {name:?}",
                    self.manifest.id
                ))
            })
        });
        let r = r.map(|v| match v {
            serde_json::Value::Bool(b) => types::Value::Boolean(b),
            serde_json::Value::Number(n) if n.is_i64() => {
                types::Value::Integer(n.as_i64().unwrap_or_default())
            }
            serde_json::Value::Number(n) => types::Value::Real(n.as_f64().unwrap_or_default()),
            serde_json::Value::String(s) => types::Value::Text(s),
            _ => types::Value::Null,
        });
        self.kernel_result(r)
    }
}

/// Sites are readable by every plugin granted `sites.read`, whole-city.
const SYSTEM: crate::authz::Actor = crate::authz::Actor::System("plugin");

impl events::Host for CallState {
    async fn publish(
        &mut self,
        name: String,
        payload: String,
    ) -> wasmtime::Result<Result<(), types::Error>> {
        if !self.manifest.publishes.contains(&name) {
            return Ok(Err(types::Error::Denied(format!(
                "plugin {} does not declare the event {name:?} in publishes",
                self.manifest.id
            ))));
        }
        if let Err(e) = self.writable("publish") {
            return Ok(Err(e));
        }
        if serde_json::from_str::<serde_json::Value>(&payload).is_err() {
            return Ok(Err(types::Error::Invalid(
                "the payload must be JSON".into(),
            )));
        }
        if payload.len() > 64 << 10 {
            return Ok(Err(types::Error::Invalid(
                "the payload is larger than 64 KiB".into(),
            )));
        }
        // Counted when published (a call that then fails still counted it).
        self.take_rate(super::quota::Rate::Events)?;
        let full = format!("{}.{name}", self.manifest.id);
        let site = self.site.clone();
        let subscribers: Vec<String> = {
            let subs = self.subscriptions.read().unwrap_or_else(|e| e.into_inner());
            subs.get(&full)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default()
        };
        let now = now_micros();
        let tx = self.tx().await?;
        let r = async {
            let (id,): (i64,) = sqlx::query_as(
                // The outbox keeps the site's path (as kernel events do), by
                // which deliveries are routed; a call without a site has none.
                "INSERT INTO plugin_outbox (name, payload, site, published_at) \
                 VALUES ($1, $2, (SELECT path FROM sites WHERE code = $3), $4) RETURNING id",
            )
            .bind(&full)
            .bind(payload)
            .bind(site)
            .bind(now)
            .fetch_one(&mut **tx)
            .await?;
            for s in subscribers {
                sqlx::query("INSERT INTO plugin_deliveries (event_id, subscriber, attempts, next_attempt_at) VALUES ($1, $2, 0, $3)")
                    .bind(id)
                    .bind(s)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
            }
            Ok::<(), sqlx::Error>(())
        }
        .await;
        self.table_result(r.map_err(TableError::from))
    }
}

// ------------------------------------------------------------ since 1.2.0

impl CallState {
    /// `identity.grant-role`: a role the manifest names under
    /// `identity.grant`, at the call's site or below it, to a person the
    /// call may see, through the kernel's grant path in the call's
    /// transaction.
    async fn grant_declared_role(
        &mut self,
        person_id: i64,
        role: String,
        site: String,
    ) -> wasmtime::Result<Result<bool, types::Error>> {
        if let Err(e) = self.capable("identity.grant") {
            return Ok(Err(e));
        }
        if let Err(e) = self.writable("grant-role") {
            return Ok(Err(e));
        }
        if !self.manifest.grantable_roles.contains(&role) {
            return Ok(Err(types::Error::Denied(format!(
                "plugin {} may grant only {} (identity.grant roles), not {role:?}",
                self.manifest.id,
                if self.manifest.grantable_roles.is_empty() {
                    "no roles".to_string()
                } else {
                    self.manifest.grantable_roles.join(", ")
                }
            ))));
        }
        let k = self.kernel()?;
        let here = site_path(&k, self.site.clone()).await;
        let target = crate::sites::fetch_by_code(k.db.reader(), &site)
            .await
            .ok()
            .flatten();
        let within = match (&here, &target) {
            (Some(h), Some(t)) => t.path.starts_with(h.as_str()),
            _ => false,
        };
        if !within {
            return Ok(Err(types::Error::Denied(format!(
                "plugin {} may grant roles only at the call's site or below it, not at {site:?}",
                self.manifest.id
            ))));
        }
        if let Err(e) = in_view(&k, self.whom(), person_id).await {
            return self.kernel_result(Err(e));
        }
        let actor = crate::authz::Actor::System("plugin");
        let (plugin, caller, _) = self.whom();
        let tx = self.tx().await?;
        let r =
            crate::identity::grant_in(tx, &k, &actor, (&plugin, caller), person_id, &role, &site)
                .await;
        self.kernel_result(r.map(|g| g.is_some()))
    }

    /// `accounts.reverse-outcome`: reverse an outcome this plugin recorded,
    /// in the call's transaction.
    async fn reverse_own_outcome(
        &mut self,
        idempotency_key: String,
        reason: String,
    ) -> wasmtime::Result<Result<waccounts::Recorded, types::Error>> {
        if let Err(e) = self.capable("accounts.record") {
            return Ok(Err(e));
        }
        if let Err(e) = self.writable("reverse-outcome") {
            return Ok(Err(e));
        }
        let origin = format!("plugin:{}", self.manifest.id);
        let actor = crate::authz::Actor::System("plugin");
        let tx = self.tx().await?;
        let r = crate::accounts::ledger::reverse_in(tx, &actor, &origin, &idempotency_key, &reason)
            .await
            .map(|(e, how)| waccounts::Recorded {
                entry_id: e.id,
                credits: e.credits,
                replayed: how == crate::accounts::ledger::Recorded::Replayed,
            });
        self.kernel_result(r)
    }
}

// ------------------------------------------------------------ since 1.3.0

impl CallState {
    /// `accounts.convert`: a conversion under a published standard, for a
    /// person the call may see, at the call's site, in the call's
    /// transaction (`accounts/conversion.rs` keeps every source consumed
    /// at most as far as the standard allows).
    async fn convert_outcomes(
        &mut self,
        c: waccounts::Conversion,
    ) -> wasmtime::Result<Result<waccounts::Converted, types::Error>> {
        if let Err(e) = self.capable("accounts.convert") {
            return Ok(Err(e));
        }
        if let Err(e) = self.writable("convert") {
            return Ok(Err(e));
        }
        if self.site.is_empty() {
            return Ok(Err(types::Error::Invalid(
                "a conversion is made at a site; this call has none".into(),
            )));
        }
        let k = self.kernel()?;
        if let Err(e) = in_view(&k, self.whom(), c.person_id).await {
            return self.kernel_result(Err(e));
        }
        let origin = format!("plugin:{}", self.manifest.id);
        let actor = crate::authz::Actor::System("plugin");
        let n = crate::accounts::conversion::NewConversion {
            person_id: c.person_id,
            standard: c.standard,
            sources: c.sources,
            source_site: self.site.clone(),
            idempotency_key: c.idempotency_key,
        };
        let tx = self.tx().await?;
        let r = crate::accounts::conversion::convert_in(tx, &k, &actor, &origin, n)
            .await
            .map(|(e, how)| waccounts::Converted {
                entry_id: e.id,
                kind: e.kind,
                quantity: e.quantity,
                credits: e.credits,
                standard_version: e.rule_version.unwrap_or_default(),
                replayed: how == crate::accounts::ledger::Recorded::Replayed,
            });
        self.kernel_result(r)
    }
}
