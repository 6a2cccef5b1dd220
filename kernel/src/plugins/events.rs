//! Delivering published events to subscribing plugins.
//!
//! A publishing call writes the event to `plugin_outbox` and one
//! `plugin_deliveries` row per subscriber in its own transaction. A delivery
//! runs the subscriber's `handle-event` on a fresh instance and marks the
//! row done inside that same call's transaction, so the subscriber's writes
//! and "delivered" commit together: each subscriber sees each event exactly
//! once, across restarts and across nodes (a second worker's mark finds the
//! row done and rolls back). A failed delivery backs off exponentially and
//! after `max_attempts` is parked (`dead_at`) until an admin replays it.
//!
//! Kernel events (`kernel.<action>` for the audited changes in
//! [`crate::audit::EVENTS`]) are written by the registries in the same
//! transaction as the change, and given their delivery rows by [`fan_out`].

use super::failure::FailureKind;
use super::runtime::Event;
use super::Loaded;
use crate::kernel::Kernel;
use crate::storage::now_micros;
use serde::Serialize;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    pub delivered: usize,
    pub failed: usize,
    pub parked: usize,
    /// Deliveries to subscribers not enabled at the event's site.
    pub skipped: usize,
    /// Deliveries to subscribers not loaded here, put off for a minute.
    pub waiting: usize,
    /// Deliveries refused by a rate quota (calls, events or log lines per
    /// minute), put off to the quota's next window; no attempt is counted,
    /// since waiting heals them.
    pub deferred: usize,
}

/// A parked (dead-lettered) delivery.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Parked {
    pub event_id: i64,
    pub subscriber: String,
    pub name: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub dead_at: i64,
}

/// Give kernel events (written by the registries with the change they
/// describe) a delivery row per current subscriber; returns how many events.
pub async fn fan_out(
    k: &Kernel,
    subscribers: impl Fn(&str) -> Vec<String>,
) -> Result<usize, sqlx::Error> {
    let pending: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, name FROM plugin_outbox WHERE fanned = 0 ORDER BY id LIMIT 500")
            .fetch_all(k.db.reader())
            .await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let now = now_micros();
    let mut tx = k.db.begin().await?;
    for (id, name) in &pending {
        for s in subscribers(name) {
            sqlx::query(
                "INSERT INTO plugin_deliveries (event_id, subscriber, attempts, next_attempt_at) VALUES ($1, $2, 0, $3) \
                 ON CONFLICT (event_id, subscriber) DO NOTHING",
            )
            .bind(id)
            .bind(s)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE plugin_outbox SET fanned = 1 WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(pending.len())
}

/// Where one delivery goes.
pub enum Route {
    /// Run it on this plugin version (restricted to the site's grants).
    Deliver(Box<Loaded>),
    /// The subscriber is not enabled at the event's site: mark the delivery
    /// done without running it (enabling a module later does not replay
    /// what happened before).
    Skip,
    /// Not this pass's concern (the test harness delivers to some
    /// subscribers only): leave it as it is.
    Wait,
    /// The subscriber is not installed or not loadable here: leave it
    /// pending and look again in a minute.
    Absent,
}

/// Deliver every due delivery once. `route` decides, from the subscriber
/// and the event's site path, where each delivery goes.
pub async fn deliver_due(
    k: &Kernel,
    route: impl Fn(&str, Option<&str>) -> Route,
    max_attempts: i64,
) -> Result<Pass, sqlx::Error> {
    let now = now_micros();
    type Due = (
        i64,
        String,
        i64,
        String,
        String,
        Option<String>,
        Option<String>,
    );
    let due: Vec<Due> = sqlx::query_as(
        // `o.site` is the site's path; rows written by earlier kernels held a
        // plugin event's site code instead, resolved through `c`.
        "SELECT d.event_id, d.subscriber, d.attempts, o.name, o.payload, \
                COALESCE(s.code, c.code, o.site), COALESCE(s.path, c.path) \
         FROM plugin_deliveries d JOIN plugin_outbox o ON o.id = d.event_id \
         LEFT JOIN sites s ON s.path = o.site \
         LEFT JOIN sites c ON c.code = o.site \
         WHERE d.delivered_at IS NULL AND d.dead_at IS NULL AND d.next_attempt_at <= $1 \
         ORDER BY d.next_attempt_at, d.event_id LIMIT 200",
    )
    .bind(now)
    .fetch_all(k.db.reader())
    .await?;
    let mut pass = Pass::default();
    for (event_id, subscriber, attempts, name, payload, site, path) in due {
        let loaded = match route(&subscriber, path.as_deref().filter(|p| !p.is_empty())) {
            Route::Deliver(l) => *l,
            Route::Wait => continue,
            Route::Absent => {
                // Not served here (removed, or not loadable on this node):
                // look again in a minute, so such rows never crowd the
                // head of the queue ahead of deliverable ones.
                let mut tx = k.db.begin().await?;
                sqlx::query(
                    "UPDATE plugin_deliveries SET next_attempt_at = $1 \
                     WHERE event_id = $2 AND subscriber = $3 AND delivered_at IS NULL",
                )
                .bind(now_micros() + 60_000_000)
                .bind(event_id)
                .bind(&subscriber)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                pass.waiting += 1;
                continue;
            }
            Route::Skip => {
                let mut tx = k.db.begin().await?;
                sqlx::query(
                    "UPDATE plugin_deliveries SET delivered_at = $1, last_error = 'skipped: not enabled at the event''s site' \
                     WHERE event_id = $2 AND subscriber = $3 AND delivered_at IS NULL",
                )
                .bind(now_micros())
                .bind(event_id)
                .bind(&subscriber)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                pass.skipped += 1;
                continue;
            }
        };
        let ev = Event {
            name,
            payload,
            site: site.filter(|s| !s.is_empty()),
            id: event_id,
        };
        let error = match loaded.event(k, ev).await {
            Ok(Ok(true)) => {
                pass.delivered += 1;
                loaded.metrics.delivered();
                continue;
            }
            Ok(Ok(false)) => continue,
            Ok(Err(e)) => format!("the handler returned an error: {e}"),
            Err(e) if matches!(e.kind, FailureKind::Quota(q) if super::quota::is_rate(q)) => {
                // A rate quota heals in the next window: put the delivery
                // off until then, counting no attempt, so a flood of calls
                // at the site never parks its deliveries. (A stored rows or
                // bytes quota does not heal by waiting: it counts as any
                // failure below, and parks after the last attempt.)
                let wait = loaded.until_next_rate_window().as_micros() as i64;
                tracing::info!(plugin = %subscriber, event_id, "event delivery put off to the next quota window: {e}");
                let mut tx = k.db.begin().await?;
                sqlx::query(
                    "UPDATE plugin_deliveries SET last_error = $1, next_attempt_at = $2 \
                     WHERE event_id = $3 AND subscriber = $4 AND delivered_at IS NULL",
                )
                .bind(e.to_string().chars().take(2000).collect::<String>())
                .bind(now_micros() + wait.max(1_000))
                .bind(event_id)
                .bind(&subscriber)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                pass.deferred += 1;
                continue;
            }
            Err(e) => e.to_string(),
        };
        pass.failed += 1;
        let next = attempts + 1;
        let parked = next >= max_attempts;
        pass.parked += usize::from(parked);
        if parked {
            loaded.metrics.dead_lettered();
        }
        let backoff = 1_000_000i64.saturating_mul(1 << next.min(12));
        tracing::warn!(plugin = %subscriber, event_id, attempt = next, parked, "event delivery failed: {error}");
        let mut tx = k.db.begin().await?;
        sqlx::query(
            "UPDATE plugin_deliveries SET attempts = $1, last_error = $2, next_attempt_at = $3, dead_at = $4 \
             WHERE event_id = $5 AND subscriber = $6 AND delivered_at IS NULL",
        )
        .bind(next)
        .bind(error.chars().take(2000).collect::<String>())
        .bind(now_micros() + backoff)
        .bind(parked.then(now_micros))
        .bind(event_id)
        .bind(&subscriber)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    Ok(pass)
}

/// Parked deliveries, newest first.
pub async fn parked(k: &Kernel, limit: i64) -> Result<Vec<Parked>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.event_id, d.subscriber, o.name, d.attempts, d.last_error, d.dead_at \
         FROM plugin_deliveries d JOIN plugin_outbox o ON o.id = d.event_id \
         WHERE d.dead_at IS NOT NULL ORDER BY d.dead_at DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(k.db.reader())
    .await
}

/// Put a parked delivery back in line; false if there is no such parked delivery.
pub async fn replay(k: &Kernel, event_id: i64, subscriber: &str) -> Result<bool, sqlx::Error> {
    let mut tx = k.db.begin().await?;
    let r = sqlx::query(
        "UPDATE plugin_deliveries SET dead_at = NULL, attempts = 0, next_attempt_at = $1 \
         WHERE event_id = $2 AND subscriber = $3 AND dead_at IS NOT NULL AND delivered_at IS NULL",
    )
    .bind(now_micros())
    .bind(event_id)
    .bind(subscriber)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(r.rows_affected() > 0)
}
