//! 15-minute learning circles (indicator 10), from site coordinates.
//!
//! A residential community (a `village`-kind site) is **covered** when an
//! active learning site — any site that is not an administrative level
//! (institutions, teaching points, community schools, walking points, …) —
//! with coordinates lies within the walking distance of it (great-circle
//! distance, haversine; a site exactly at the distance covers). A township
//! is a **circle** when at least `share` of its active communities are
//! covered (a township without communities is not a circle).
//!
//! Coverage looks at every learning site in the city, whatever township it
//! belongs to: people walk across township borders. A community without
//! coordinates cannot be covered.
//!
//! [`compute`] is pure (no database) and uses a uniform grid whose cells are
//! at least the walking distance wide, so a community only looks at the 3×3
//! cells around it; [`compute_naive`] is the O(communities × learning sites)
//! loop it is measured against (`kernel/benches/scale.rs`).

use serde::Serialize;
use std::collections::HashMap;

/// Mean Earth radius (IUGG), metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Rings of grid cells searched for an uncovered community's nearest
/// learning site before falling back to a scan of them all.
const RING_CAP: i64 = 32;

/// Default walking distance, metres.
pub const DEFAULT_DISTANCE_M: f64 = 1000.0;

/// Default share of covered communities that makes a township a circle.
pub const DEFAULT_SHARE: f64 = 0.9;

/// The parameters of one computation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Params {
    /// Walking distance, metres (> 0).
    pub distance_m: f64,
    /// Share of communities that must be covered (0 < share ≤ 1).
    pub share: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            distance_m: DEFAULT_DISTANCE_M,
            share: DEFAULT_SHARE,
        }
    }
}

impl Params {
    /// Check the ranges, naming the field at fault.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(self.distance_m.is_finite() && self.distance_m > 0.0 && self.distance_m <= 100_000.0) {
            return Err((
                "distance_m",
                format!(
                    "must be above 0 and at most 100000 metres, not {}",
                    self.distance_m
                ),
            ));
        }
        if !(self.share.is_finite() && self.share > 0.0 && self.share <= 1.0) {
            return Err((
                "share",
                format!("must be above 0 and at most 1, not {}", self.share),
            ));
        }
        Ok(())
    }
}

/// One site on the map, as of the computation's date.
#[derive(Debug, Clone)]
pub struct MapSite {
    /// Site id.
    pub id: i64,
    /// Code.
    pub code: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: Option<String>,
    /// Kind.
    pub kind: String,
    /// Parent id.
    pub parent_id: Option<i64>,
    /// Materialised path.
    pub path: String,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
}

/// Great-circle distance in metres.
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

/// True for the kinds that count as learning sites.
pub fn is_learning_site(kind: &str) -> bool {
    !crate::sites::is_admin_level(kind)
}

/// A community's coverage.
#[derive(Debug, Clone)]
pub struct Community {
    /// Index into the input slice.
    pub site: usize,
    /// Index of its township in the input slice, if it has one.
    pub township: Option<usize>,
    /// Covered within the distance.
    pub covered: bool,
    /// For an uncovered community with coordinates: the nearest learning
    /// site (index) and its distance in metres, if there is any.
    pub nearest: Option<(usize, f64)>,
}

/// A township's coverage.
#[derive(Debug, Clone)]
pub struct Township {
    /// Index into the input slice.
    pub site: usize,
    /// Active communities.
    pub communities: usize,
    /// Of which covered.
    pub covered: usize,
    /// covered / communities (None without communities).
    pub coverage: Option<f64>,
    /// At least `share` covered.
    pub circle: bool,
}

/// The whole map's coverage.
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    /// Every township, in input order.
    pub townships: Vec<Township>,
    /// Every community, in input order.
    pub communities: Vec<Community>,
}

struct Grid {
    cell_lat: f64,
    cell_lon: f64,
    cells: HashMap<(i64, i64), Vec<usize>>,
    bounds: (i64, i64, i64, i64),
}

impl Grid {
    /// A grid over `points` (index, lat, lon) whose cells are at least
    /// `distance_m` tall and wide everywhere the points are.
    fn new(points: &[(usize, f64, f64)], distance_m: f64) -> Grid {
        let cell_lat = (distance_m / EARTH_RADIUS_M).to_degrees();
        // A degree of longitude is shortest at the highest latitude on the
        // map (plus one cell), so cells sized there are wide enough below.
        let max_abs_lat = points.iter().map(|p| p.1.abs()).fold(0.0_f64, f64::max) + cell_lat;
        let cos = max_abs_lat.min(89.0).to_radians().cos().max(1e-3);
        let cell_lon = cell_lat / cos;
        let mut cells: HashMap<(i64, i64), Vec<usize>> = HashMap::new();
        let mut bounds = (i64::MAX, i64::MIN, i64::MAX, i64::MIN);
        for &(i, lat, lon) in points {
            let c = (
                (lat / cell_lat).floor() as i64,
                (lon / cell_lon).floor() as i64,
            );
            bounds = (
                bounds.0.min(c.0),
                bounds.1.max(c.0),
                bounds.2.min(c.1),
                bounds.3.max(c.1),
            );
            cells.entry(c).or_default().push(i);
        }
        Grid {
            cell_lat,
            cell_lon,
            cells,
            bounds,
        }
    }

    fn cell(&self, lat: f64, lon: f64) -> (i64, i64) {
        (
            (lat / self.cell_lat).floor() as i64,
            (lon / self.cell_lon).floor() as i64,
        )
    }

    /// Indices in the cells at Chebyshev ring `r` around `c`.
    fn ring(&self, c: (i64, i64), r: i64, mut f: impl FnMut(usize)) {
        let mut visit = |key: (i64, i64)| {
            if let Some(v) = self.cells.get(&key) {
                v.iter().for_each(|&i| f(i));
            }
        };
        if r == 0 {
            visit(c);
            return;
        }
        for dx in -r..=r {
            visit((c.0 - r, c.1 + dx));
            visit((c.0 + r, c.1 + dx));
        }
        for dy in -r + 1..r {
            visit((c.0 + dy, c.1 - r));
            visit((c.0 + dy, c.1 + r));
        }
    }

    /// Rings needed to reach every cell from `c`.
    fn max_ring(&self, c: (i64, i64)) -> i64 {
        if self.cells.is_empty() {
            return -1;
        }
        let (a, b, d, e) = self.bounds;
        [c.0 - a, b - c.0, c.1 - d, e - c.1]
            .into_iter()
            .max()
            .unwrap_or(0)
            .max(0)
    }
}

fn coords(s: &MapSite) -> Option<(f64, f64)> {
    match (s.latitude, s.longitude) {
        (Some(a), Some(b)) if a.is_finite() && b.is_finite() => Some((a, b)),
        _ => None,
    }
}

/// Coverage of every community and township in `sites` (which must hold the
/// sites active as of the date: townships, villages and learning sites).
pub fn compute(sites: &[MapSite], p: Params) -> Coverage {
    let learning: Vec<(usize, f64, f64)> = sites
        .iter()
        .enumerate()
        .filter(|(_, s)| is_learning_site(&s.kind))
        .filter_map(|(i, s)| coords(s).map(|(a, b)| (i, a, b)))
        .collect();
    let grid = Grid::new(&learning, p.distance_m);
    let dist = |i: usize, lat: f64, lon: f64| {
        let (a, b) = coords(&sites[i]).unwrap_or((0.0, 0.0));
        haversine_m(lat, lon, a, b)
    };
    assemble(sites, p, |lat, lon| {
        let c = grid.cell(lat, lon);
        let mut covered = false;
        for dx in -1..=1 {
            for dy in -1..=1 {
                if let Some(v) = grid.cells.get(&(c.0 + dx, c.1 + dy)) {
                    if v.iter().any(|&i| dist(i, lat, lon) <= p.distance_m) {
                        covered = true;
                    }
                }
            }
        }
        if covered {
            return (true, None);
        }
        // Nearest by widening rings: a site in ring r is at least (r - 1)
        // cells (each ≥ distance_m) away, so stop one ring past that bound.
        // Past RING_CAP rings (a community far from every learning site, or
        // a stray coordinate) one scan of every learning site is cheaper.
        let mut best: Option<(usize, f64)> = None;
        let max_ring = grid.max_ring(c);
        let mut settled = max_ring <= RING_CAP;
        for r in 0..=max_ring.min(RING_CAP) {
            if let Some((_, d)) = best {
                if ((r - 2).max(0) as f64) * p.distance_m > d {
                    settled = true;
                    break;
                }
            }
            grid.ring(c, r, |i| {
                let d = dist(i, lat, lon);
                if best.is_none_or(|(_, b)| d < b) {
                    best = Some((i, d));
                }
            });
        }
        if !settled {
            for &(i, _, _) in &learning {
                let d = dist(i, lat, lon);
                if best.is_none_or(|(_, b)| d < b) {
                    best = Some((i, d));
                }
            }
        }
        (false, best)
    })
}

/// The same result by comparing every community with every learning site:
/// the baseline the grid is measured against, and a cross-check in tests.
pub fn compute_naive(sites: &[MapSite], p: Params) -> Coverage {
    let learning: Vec<(usize, f64, f64)> = sites
        .iter()
        .enumerate()
        .filter(|(_, s)| is_learning_site(&s.kind))
        .filter_map(|(i, s)| coords(s).map(|(a, b)| (i, a, b)))
        .collect();
    assemble(sites, p, |lat, lon| {
        let mut best: Option<(usize, f64)> = None;
        for &(i, a, b) in &learning {
            let d = haversine_m(lat, lon, a, b);
            if best.is_none_or(|(_, x)| d < x) {
                best = Some((i, d));
            }
        }
        match best {
            Some((_, d)) if d <= p.distance_m => (true, None),
            other => (false, other),
        }
    })
}

fn assemble(
    sites: &[MapSite],
    p: Params,
    mut probe: impl FnMut(f64, f64) -> (bool, Option<(usize, f64)>),
) -> Coverage {
    let by_id: HashMap<i64, usize> = sites.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    let mut townships: Vec<Township> = Vec::new();
    let mut township_at: HashMap<usize, usize> = HashMap::new();
    for (i, s) in sites.iter().enumerate() {
        if s.kind == "township" {
            township_at.insert(i, townships.len());
            townships.push(Township {
                site: i,
                communities: 0,
                covered: 0,
                coverage: None,
                circle: false,
            });
        }
    }
    let mut communities = Vec::new();
    for (i, s) in sites.iter().enumerate() {
        if s.kind != "village" {
            continue;
        }
        let township = s
            .parent_id
            .and_then(|p| by_id.get(&p).copied())
            .filter(|t| sites[*t].kind == "township");
        let (covered, nearest) = match coords(s) {
            Some((lat, lon)) => probe(lat, lon),
            None => (false, None),
        };
        if let Some(t) = township.and_then(|t| township_at.get(&t)) {
            townships[*t].communities += 1;
            townships[*t].covered += usize::from(covered);
        }
        communities.push(Community {
            site: i,
            township,
            covered,
            nearest,
        });
    }
    for t in &mut townships {
        if t.communities > 0 {
            let c = t.covered as f64 / t.communities as f64;
            t.coverage = Some(c);
            t.circle = c + 1e-12 >= p.share;
        }
    }
    Coverage {
        townships,
        communities,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: i64, kind: &str, parent: Option<i64>, at: Option<(f64, f64)>) -> MapSite {
        MapSite {
            id,
            code: format!("S{id}"),
            name_zh: String::new(),
            name_en: None,
            kind: kind.into(),
            parent_id: parent,
            path: String::new(),
            latitude: at.map(|a| a.0),
            longitude: at.map(|a| a.1),
        }
    }

    #[test]
    fn haversine_on_a_meridian() {
        let d = haversine_m(30.0, 120.0, 30.009, 120.0);
        assert!((d - 1000.75).abs() < 0.05, "{d}");
    }

    #[test]
    fn grid_agrees_with_the_naive_loop() {
        // A pseudo-random map: 3 townships, 60 villages, 80 learning sites.
        let mut sites = vec![s(1, "city", None, None)];
        let mut x: u64 = 7;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as f64 / (1u64 << 31) as f64
        };
        for t in 0..3 {
            sites.push(s(10 + t, "township", Some(1), None));
        }
        for v in 0..60 {
            let at = (30.0 + next() * 0.1, 120.0 + next() * 0.1);
            sites.push(s(100 + v, "village", Some(10 + v % 3), Some(at)));
        }
        sites.push(s(99, "village", Some(10), None));
        // Far from everything: the nearest is found by the fallback scan.
        sites.push(s(98, "village", Some(11), Some((31.5, 121.5))));
        sites.push(s(97, "village", Some(12), Some((0.0, 0.0))));
        for l in 0..80 {
            let at = (30.0 + next() * 0.1, 120.0 + next() * 0.1);
            sites.push(s(1000 + l, "museum", Some(10 + l % 3), Some(at)));
        }
        for distance_m in [300.0, 1000.0, 2500.0] {
            let p = Params {
                distance_m,
                share: 0.5,
            };
            let (a, b) = (compute(&sites, p), compute_naive(&sites, p));
            for (x, y) in a.communities.iter().zip(&b.communities) {
                assert_eq!(x.covered, y.covered);
                assert_eq!(x.nearest.map(|n| n.0), y.nearest.map(|n| n.0));
            }
            for (x, y) in a.townships.iter().zip(&b.townships) {
                assert_eq!((x.covered, x.circle), (y.covered, y.circle));
            }
        }
    }
}
