//! The Lifelong plugin SDK.
//!
//! A plugin is a `cdylib` crate that implements [`Plugin`] and calls
//! [`export!`]. It is compiled to a WebAssembly component that imports only
//! the kernel's interfaces (see `sdk/wit/plugin.wit`); the kernel runs a
//! fresh instance of it for every request and event, inside one database
//! transaction. See `sdk/README.md` for a tutorial.
//!
//! ```ignore
//! use lifelong_sdk::{export, Plugin, Request, Response, Result, Router};
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn router() -> Router {
//!         Router::new().get("/hello/{name}", |req| {
//!             Response::json(200, &serde_json::json!({ "hello": req.param("name") }))
//!         })
//!     }
//! }
//!
//! export!(Hello);
//! ```

#[doc(hidden)]
#[allow(missing_docs)]
pub mod __bindings {
    // World `provider` (= `plugin` + the `indicators` export, host API
    // 1.4): every plugin built with this SDK exports `indicators`; one that
    // declares no `[[indicators]]` is never asked (see `Plugin::indicators`).
    wit_bindgen::generate!({
        path: "wit",
        world: "provider",
        pub_export_macro: true,
        default_bindings_module: "lifelong_sdk::__bindings",
    });
}

use __bindings as bindings;

mod error;
mod indicators;
mod router;
pub mod tables;

/// The credit bank (needs the `accounts.record` capability).
pub use bindings::lifelong::plugin::accounts;
pub use bindings::lifelong::plugin::clock;
/// Persons and roles (needs the `identity.read` capability).
pub use bindings::lifelong::plugin::identity;
/// The plugin's per-site settings, as declared in its manifest.
pub use bindings::lifelong::plugin::settings;
/// The kernel's site registry (needs the `sites.read` capability).
pub use bindings::lifelong::plugin::sites;
pub use bindings::lifelong::plugin::types::{Caller, Value};
pub use error::{Error, Result};
pub use indicators::{is_date, Indicators, Query as IndicatorQuery};
pub use router::{Request, Response, Router};

use bindings::exports::lifelong::plugin::handler as wit;

/// An event delivered to a subscribing plugin.
pub use wit::Event;

/// What a plugin implements.
pub trait Plugin {
    /// The plugin's HTTP routes (below `/api/v1/plugins/<id>`).
    fn router() -> Router;

    /// Handle an event the manifest subscribes to. An error makes the
    /// kernel roll the delivery back and retry it later.
    fn on_event(event: &Event) -> std::result::Result<(), String> {
        let _ = event;
        Ok(())
    }

    /// The indicators the plugin provides, by key — each also declared in
    /// the manifest's `[[indicators]]` (host API 1.4). The kernel asks for a
    /// value at a site as of a date; see [`Indicators`]. None by default.
    fn indicators() -> Indicators {
        Indicators::new()
    }
}

/// Export `$plugin` (a type implementing [`Plugin`]) as the component's
/// handler. The generated glue lives in this SDK: the plugin crate itself
/// stays free of `unsafe`.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        type __LifelongExports = $crate::Adapter<$plugin>;
        $crate::__export_provider_impl!(__LifelongExports with_types_in $crate::__bindings);
    };
}

/// The bridge from the generated bindings to a [`Plugin`]. Not for direct use.
#[doc(hidden)]
pub struct Adapter<P>(std::marker::PhantomData<P>);

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = match info.payload().downcast_ref::<&str>() {
            Some(s) => s.to_string(),
            None => match info.payload().downcast_ref::<String>() {
                Some(s) => s.clone(),
                None => "panic".to_string(),
            },
        };
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        bindings::lifelong::plugin::log::panicked(&format!("{msg}{at}"));
    }));
}

impl<P: Plugin> wit::Guest for Adapter<P> {
    fn handle_request(req: wit::Request) -> wit::Response {
        install_panic_hook();
        let resp = P::router().dispatch(Request::from_wit(req));
        wit::Response {
            status: resp.status,
            headers: resp.headers,
            body: resp.body,
        }
    }

    fn handle_event(ev: wit::Event) -> std::result::Result<(), String> {
        install_panic_hook();
        P::on_event(&ev)
    }
}

impl<P: Plugin> bindings::exports::lifelong::plugin::indicators::Guest for Adapter<P> {
    fn value(
        q: bindings::exports::lifelong::plugin::indicators::Query,
    ) -> std::result::Result<Option<f64>, String> {
        install_panic_hook();
        P::indicators().value(&Query::from_wit(q))
    }
}

use indicators::Query;

/// Write a log line (tagged by the kernel with plugin, version, site and request id).
pub mod log {
    use crate::bindings::lifelong::plugin::log::{write, Level};

    /// Informational line.
    pub fn info(message: &str) {
        write(Level::Info, message);
    }

    /// Warning.
    pub fn warn(message: &str) {
        write(Level::Warn, message);
    }

    /// Error.
    pub fn error(message: &str) {
        write(Level::Error, message);
    }
}

/// Publish an event `<plugin id>.<name>` with a JSON payload; it is
/// delivered only if the current call commits.
pub fn publish<T: serde::Serialize>(name: &str, payload: &T) -> Result<()> {
    let json = serde_json::to_string(payload).map_err(|e| Error::internal(e.to_string()))?;
    bindings::lifelong::plugin::events::publish(name, &json).map_err(Error::from)
}
