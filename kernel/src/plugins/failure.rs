//! Why a plugin call failed: the structured error every failure becomes
//! (plugin, version, kind, message, wasm backtrace), and how a trap, a limit
//! or a kernel error is told apart.

use super::call::{CallState, CONFLICT};
use super::manifest::Manifest;
use wasmtime::Trap;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    Deadline,
    Memory,
    Stack,
    Panic,
    Trap,
    /// The kernel could not run the call (database, pool exhausted).
    Kernel,
    /// The call lost a write race on every attempt (serialization failure
    /// or deadlock); nothing it wrote was kept.
    Conflict,
    /// The plugin already runs as many calls as it may, and this one waited
    /// in its queue for longer than the kernel allows.
    Busy,
    /// The call would pass one of the plugin's quotas (named: see
    /// `quota.rs`); nothing it wrote was kept.
    Quota(&'static str),
}

impl FailureKind {
    /// Stable name used in problem types, logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            FailureKind::Deadline => "deadline",
            FailureKind::Memory => "memory",
            FailureKind::Stack => "stack",
            FailureKind::Panic => "panic",
            FailureKind::Trap => "trap",
            FailureKind::Kernel => "kernel",
            FailureKind::Conflict => "conflict",
            FailureKind::Busy => "busy",
            FailureKind::Quota(_) => "quota",
        }
    }

    /// Failures that say "try again shortly" (HTTP 503 with Retry-After)
    /// rather than "this plugin is broken" (500).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            FailureKind::Deadline | FailureKind::Conflict | FailureKind::Busy
        )
    }
}

/// A failed call: which plugin, what kind, and what the guest was doing.
#[derive(Debug, Clone)]
pub struct CallError {
    pub plugin: String,
    pub version: String,
    pub kind: FailureKind,
    /// The panic message, the trap description or the kernel error.
    pub message: String,
    /// Wasm frames, innermost first.
    pub backtrace: Vec<String>,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "plugin {} {} failed ({}): {}",
            self.plugin,
            self.version,
            self.kind.as_str(),
            self.message
        )
    }
}

/// A failure of the kernel under the call (database, pool exhausted). A
/// lost write race (PostgreSQL serialization failure or deadlock, SQLite
/// busy) keeps the [`CONFLICT`] marker wherever it surfaced (a host call, the
/// commit), so the runtime re-runs the call.
pub(super) fn kernel_error(m: &Manifest, e: impl std::fmt::Display) -> CallError {
    let message = e.to_string();
    // A quota found passed when the call was about to commit.
    if let Some(q) = super::quota::ALL
        .iter()
        .find(|q| message.contains(&format!("quota {q} reached")))
    {
        return CallError {
            plugin: m.id.clone(),
            version: m.version.clone(),
            kind: FailureKind::Quota(q),
            message: format!("{message}; nothing the call wrote was kept"),
            backtrace: vec![],
        };
    }
    let message = if is_conflict_text(&message) && !message.contains(CONFLICT) {
        format!("{CONFLICT}: {message}")
    } else {
        message
    };
    CallError {
        plugin: m.id.clone(),
        version: m.version.clone(),
        kind: FailureKind::Kernel,
        message,
        backtrace: vec![],
    }
}

/// The call was refused a place: its plugin runs as many calls as it may.
pub(super) fn busy(m: &Manifest, limit: usize, waited: std::time::Duration) -> CallError {
    CallError {
        plugin: m.id.clone(),
        version: m.version.clone(),
        kind: FailureKind::Busy,
        message: format!(
            "plugin {} already runs {limit} calls at once on this node; this one waited {} ms for a place",
            m.id,
            waited.as_millis()
        ),
        backtrace: vec![],
    }
}

/// The call would pass a quota (refused before it ran, or by a host call).
pub(super) fn quota(m: &Manifest, e: &super::quota::Exceeded) -> CallError {
    CallError {
        plugin: m.id.clone(),
        version: m.version.clone(),
        kind: FailureKind::Quota(e.quota),
        message: format!("{e}; nothing the call wrote was kept"),
        backtrace: vec![],
    }
}

/// Whether a kernel error is a lost write race worth re-running the call for.
pub(super) fn is_conflict_text(m: &str) -> bool {
    // PostgreSQL serialization failure / deadlock; SQLite busy.
    m.contains(CONFLICT)
        || m.contains("40001")
        || m.contains("40P01")
        || m.contains("database is locked")
        || m.contains("could not serialize")
        || m.contains("deadlock detected")
}

/// The call ran past its deadline while waiting (a host call, the pool).
pub(super) fn deadline(m: &Manifest, s: &CallState) -> CallError {
    fail(
        m,
        s,
        FailureKind::Deadline,
        format!(
            "the call ran past its deadline (last: {})",
            s.phase.lock().map(|p| *p).unwrap_or("unknown")
        ),
        vec![],
    )
}

/// A failure of `kind`; a trap after the SDK reported a panic is that panic.
fn fail(
    m: &Manifest,
    s: &CallState,
    kind: FailureKind,
    message: String,
    backtrace: Vec<String>,
) -> CallError {
    let (kind, message) = match (&s.panic, kind) {
        (Some(p), FailureKind::Trap) => (FailureKind::Panic, p.clone()),
        (_, k) => (k, message),
    };
    CallError {
        plugin: m.id.clone(),
        version: m.version.clone(),
        kind,
        message,
        backtrace,
    }
}

/// Classify an error out of the guest.
pub(super) fn classify(m: &Manifest, s: &CallState, e: wasmtime::Error) -> CallError {
    let backtrace: Vec<String> = e
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(|bt| {
            bt.frames()
                .iter()
                .map(|f| {
                    f.func_name()
                        .map_or_else(|| format!("func[{}]", f.func_index()), |n| n.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(q) = &s.quota_exceeded {
        return CallError {
            backtrace,
            ..quota(m, q)
        };
    }
    if let Some(k) = s.kernel_failure.clone() {
        return CallError {
            backtrace,
            ..kernel_error(m, k)
        };
    }
    if s.limits.denied {
        return fail(
            m,
            s,
            FailureKind::Memory,
            "the plugin asked for more memory than its cap".into(),
            backtrace,
        );
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => fail(
            m,
            s,
            FailureKind::Deadline,
            "the call ran past its deadline".into(),
            backtrace,
        ),
        Some(Trap::StackOverflow) => fail(
            m,
            s,
            FailureKind::Stack,
            "the call overflowed its stack".into(),
            backtrace,
        ),
        // Rust guests keep locals on a stack in linear memory placed below
        // their data; running it out faults just below address 0. A fault
        // inside a deep run of one function is that, not a bug.
        Some(Trap::MemoryOutOfBounds) if recursing(&backtrace) => fail(
            m,
            s,
            FailureKind::Stack,
            "the call overflowed its stack (deep recursion ran out of the plugin's stack memory)"
                .into(),
            backtrace,
        ),
        Some(t) => fail(m, s, FailureKind::Trap, t.to_string(), backtrace),
        None if s.panic.is_some() => fail(m, s, FailureKind::Trap, e.to_string(), backtrace),
        None => kernel_error(m, format!("{e:#}")),
    }
}

/// True when the innermost frames repeat one function many times.
fn recursing(frames: &[String]) -> bool {
    let mut counts = std::collections::HashMap::new();
    for f in frames {
        *counts.entry(f.as_str()).or_insert(0) += 1;
    }
    counts.values().any(|n| *n >= 16)
}
