//! Routing by method and path pattern (`/courses/{id}/seats`).

use crate::bindings::exports::lifelong::plugin::handler as wit;
use crate::{Caller, Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// An incoming request, with the path parameters of the matched route.
#[derive(Debug)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path below the plugin's prefix, starting with `/`.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Request headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// Raw body.
    pub body: Vec<u8>,
    /// The authenticated caller.
    pub caller: Caller,
    /// Code of the site the request is made in.
    pub site: String,
    /// The kernel's request id.
    pub request_id: String,
    params: Vec<(String, String)>,
}

impl Request {
    pub(crate) fn from_wit(r: wit::Request) -> Request {
        Request {
            method: r.method,
            path: r.path,
            query: r.query,
            headers: r.headers,
            body: r.body,
            caller: r.caller,
            site: r.site,
            request_id: r.request_id,
            params: Vec::new(),
        }
    }

    /// A path parameter of the matched route (empty if the route has none by that name).
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// A path parameter parsed as an integer, or a 400 naming it.
    pub fn param_i64(&self, name: &str) -> Result<i64> {
        self.param(name)
            .parse()
            .map_err(|_| Error::bad_request(format!("{name} must be an integer")))
    }

    /// The body parsed as JSON into `T`, or a 400 that says why.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// The caller's person id, or a 401-style error for anonymous calls.
    pub fn person(&self) -> Result<i64> {
        self.caller.person_id.ok_or_else(|| {
            Error::new(
                401,
                "unauthenticated",
                "Authentication required",
                "sign in first",
            )
        })
    }

    /// True if the caller holds `role` at `site`.
    pub fn has_role(&self, role: &str, site: &str) -> bool {
        self.caller
            .roles
            .iter()
            .any(|(r, s)| r == role && s == site)
    }
}

/// An outgoing response.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response.
    pub fn json<T: Serialize>(status: u16, body: &T) -> Result<Response> {
        Ok(Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(body).map_err(|e| Error::internal(e.to_string()))?,
        })
    }

    /// An empty response.
    pub fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
}

impl From<Error> for Response {
    fn from(e: Error) -> Response {
        Response {
            status: e.status,
            headers: vec![("content-type".into(), "application/problem+json".into())],
            body: e.body(),
        }
    }
}

type Handler = Box<dyn Fn(&Request) -> Result<Response>>;

/// Routes: method + path pattern → handler. `{name}` matches one segment.
///
/// Building a router allocates almost nothing (patterns are `'static` and
/// handlers are usually zero-sized closures): it is built afresh for every
/// call, because every call runs on a fresh instance.
#[derive(Default)]
pub struct Router {
    routes: Vec<(&'static str, &'static str, Handler)>,
}

impl Router {
    /// No routes.
    pub fn new() -> Router {
        Router::default()
    }

    /// Add a route for `method`.
    pub fn route(
        mut self,
        method: &'static str,
        pattern: &'static str,
        handler: impl Fn(&Request) -> Result<Response> + 'static,
    ) -> Router {
        self.routes.push((method, pattern, Box::new(handler)));
        self
    }

    /// A GET route.
    pub fn get(
        self,
        pattern: &'static str,
        h: impl Fn(&Request) -> Result<Response> + 'static,
    ) -> Router {
        self.route("GET", pattern, h)
    }

    /// A POST route.
    pub fn post(
        self,
        pattern: &'static str,
        h: impl Fn(&Request) -> Result<Response> + 'static,
    ) -> Router {
        self.route("POST", pattern, h)
    }

    /// A PUT route.
    pub fn put(
        self,
        pattern: &'static str,
        h: impl Fn(&Request) -> Result<Response> + 'static,
    ) -> Router {
        self.route("PUT", pattern, h)
    }

    /// A DELETE route.
    pub fn delete(
        self,
        pattern: &'static str,
        h: impl Fn(&Request) -> Result<Response> + 'static,
    ) -> Router {
        self.route("DELETE", pattern, h)
    }

    /// Run the handler of the first matching route; 404 or 405 otherwise.
    pub fn dispatch(&self, mut req: Request) -> Response {
        let full = std::mem::take(&mut req.path);
        let path: Vec<&str> = split(&full).collect();
        let mut method_mismatch = false;
        for (method, pattern, handler) in &self.routes {
            let Some(params) = matches(pattern, &path) else {
                continue;
            };
            if !method.eq_ignore_ascii_case(&req.method) {
                method_mismatch = true;
                continue;
            }
            req.params = params;
            req.path = full.clone();
            return handler(&req).unwrap_or_else(Response::from);
        }
        if method_mismatch {
            Error::new(
                405,
                "method-not-allowed",
                "Method not allowed",
                format!("{} is not allowed on {full}", req.method),
            )
            .into()
        } else {
            Error::not_found(format!("no route for {full}")).into()
        }
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

fn matches(pattern: &str, path: &[&str]) -> Option<Vec<(String, String)>> {
    let mut params = Vec::new();
    let mut segments = split(pattern);
    for s in path {
        let p = segments.next()?;
        match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) => params.push((name.to_string(), s.to_string())),
            None if p == *s => {}
            None => return None,
        }
    }
    if segments.next().is_some() {
        return None;
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_bind_parameters() {
        let p = "/courses/{id}/seats";
        assert_eq!(
            matches(p, &["courses", "7", "seats"]),
            Some(vec![("id".into(), "7".into())])
        );
        assert_eq!(matches(p, &["courses", "7"]), None);
        assert_eq!(matches(p, &["courses", "7", "seats", "x"]), None);
        assert_eq!(matches(p, &["terms", "7", "seats"]), None);
    }
}
