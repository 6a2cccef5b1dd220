//! Providing indicators (host API 1.4): the values the kernel asks a plugin
//! for, by key, at a site as of a date.

use crate::Result;

/// The kernel's question: the value of indicator `key` for the whole
/// subtree of `site`, as of the end of `as_of`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// As declared in the manifest: `"1"`..`"10"` or `"<plugin id>.<name>"`.
    pub key: String,
    /// The site asked (also the call's site).
    pub site: String,
    /// `YYYY-MM-DD`, inclusive.
    pub as_of: String,
}

impl Query {
    pub(crate) fn from_wit(
        q: crate::bindings::exports::lifelong::plugin::indicators::Query,
    ) -> Query {
        Query {
            key: q.key,
            site: q.site,
            as_of: q.as_of,
        }
    }

    /// True if a date written `YYYY-MM-DD` (or a `YYYY-MM-DD…` timestamp)
    /// falls on or before `as_of`: rows dated later are not part of the
    /// level as of that date.
    pub fn includes(&self, date: &str) -> bool {
        date.get(..10).unwrap_or(date) <= self.as_of.as_str()
    }
}

type Compute = Box<dyn Fn(&Query) -> Result<Option<f64>>>;

/// The indicators a plugin provides, each a function of the [`Query`].
///
/// ```ignore
/// fn indicators() -> Indicators {
///     Indicators::new()
///         .provide("1", |q| Ok(Some(count_universities(&q.site, &q.as_of)? as f64)))
///         .provide("my-plugin.hours", hours)
/// }
/// ```
///
/// An error (any [`crate::Error`]) fails that one indicator: the kernel shows
/// its detail to admins. `Ok(None)` means "no value here" (a ratio over
/// nothing, say).
#[derive(Default)]
pub struct Indicators {
    provided: Vec<(String, Compute)>,
}

impl std::fmt::Debug for Indicators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.provided.iter().map(|(k, _)| k))
            .finish()
    }
}

impl Indicators {
    /// None yet.
    pub fn new() -> Indicators {
        Indicators::default()
    }

    /// Provide indicator `key` (as the manifest declares it).
    pub fn provide(
        mut self,
        key: &str,
        compute: impl Fn(&Query) -> Result<Option<f64>> + 'static,
    ) -> Indicators {
        self.provided.push((key.to_string(), Box::new(compute)));
        self
    }

    /// The keys provided, in the order given.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.provided.iter().map(|(k, _)| k.as_str())
    }

    /// Answer `q`: the value, or the error's detail for admins.
    pub fn value(&self, q: &Query) -> std::result::Result<Option<f64>, String> {
        let Some((_, compute)) = self.provided.iter().find(|(k, _)| *k == q.key) else {
            return Err(format!("this plugin provides no indicator {:?}", q.key));
        };
        compute(q).map_err(|e| e.detail)
    }
}

/// True if `s` is a calendar date written `YYYY-MM-DD` (the kernel's form).
pub fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        s.get(r)
            .filter(|p| p.bytes().all(|c| c.is_ascii_digit()))?
            .parse()
            .ok()
    };
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert!(super::is_date("2028-02-29"));
        assert!(!super::is_date("2026-02-29"));
        assert!(!super::is_date("2026-13-01"));
        assert!(!super::is_date("2026-1-01"));
        assert!(!super::is_date("+026-01-01"));
    }
}
