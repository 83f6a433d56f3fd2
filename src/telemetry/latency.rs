//! Fixed-bucket latency histograms for the hot paths (every request, every store call).
//!
//! The Prometheus exporter of the `metrics` crate stores every histogram sample until a scrape
//! drains it; at tens of thousands of redirects a second that is an allocation every few dozen
//! requests and unbounded memory when nobody scrapes. These histograms are a fixed array of
//! atomic counters instead: recording is one comparison scan and two relaxed atomic adds, and
//! memory never grows. They are rendered in Prometheus text format next to the exporter's output.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::RwLock;

/// Upper bounds of the buckets, in seconds (the last bucket is `+Inf`).
pub const BOUNDS: [f64; 16] = [
    0.000_05, 0.0001, 0.000_25, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

fn bounds_ns() -> &'static [u64; 16] {
    static NS: OnceLock<[u64; 16]> = OnceLock::new();
    NS.get_or_init(|| BOUNDS.map(|b| (b * 1e9) as u64))
}

/// One latency series.
#[derive(Default)]
pub struct Latency {
    /// Non-cumulative counts per bucket; index 16 is `+Inf`.
    buckets: [AtomicU64; 17],
    sum_ns: AtomicU64,
}

impl Latency {
    pub fn record(&self, d: Duration) {
        let ns = d.as_nanos().min(u64::MAX as u128) as u64;
        let i = bounds_ns()
            .iter()
            .position(|b| ns <= *b)
            .unwrap_or(BOUNDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Appends `_bucket`, `_sum` and `_count` lines with `labels` (already `k="v"` pairs).
    fn render(&self, name: &str, labels: &str, out: &mut String) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, bound) in BOUNDS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.buckets[BOUNDS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// status → route → series (nested so that a lookup by `&str` needs no allocation).
type Routes = RwLock<HashMap<u16, HashMap<Box<str>, Arc<Latency>>>>;

fn routes() -> &'static Routes {
    static ROUTES: OnceLock<Routes> = OnceLock::new();
    ROUTES.get_or_init(Default::default)
}

/// The series of HTTP requests answered on `route` with `status`.
pub fn http(route: &str, status: u16) -> Arc<Latency> {
    if let Some(h) = routes().read().get(&status).and_then(|r| r.get(route)) {
        return h.clone();
    }
    routes()
        .write()
        .entry(status)
        .or_default()
        .entry(route.into())
        .or_default()
        .clone()
}

/// The series of store calls of one kind (`read` or `write`).
pub fn store(kind: &'static str) -> &'static Latency {
    static READ: Latency = Latency::new_const();
    static WRITE: Latency = Latency::new_const();
    if kind == "write" { &WRITE } else { &READ }
}

impl Latency {
    const fn new_const() -> Self {
        Latency {
            buckets: [const { AtomicU64::new(0) }; 17],
            sum_ns: AtomicU64::new(0),
        }
    }
}

/// Prometheus text for every series here.
pub fn render() -> String {
    let mut out = String::new();
    out.push_str("# HELP snip_http_requests_total HTTP requests by matched route and status.\n");
    out.push_str("# TYPE snip_http_requests_total counter\n");
    let routes = routes().read();
    let mut series: Vec<(String, &Arc<Latency>)> = routes
        .iter()
        .flat_map(|(status, by_route)| {
            by_route
                .iter()
                .map(move |(route, h)| (format!("route=\"{route}\",status=\"{status}\""), h))
        })
        .collect();
    series.sort_by(|a, b| a.0.cmp(&b.0));
    for (labels, h) in &series {
        let _ = writeln!(out, "snip_http_requests_total{{{labels}}} {}", h.count());
    }
    out.push_str(
        "# HELP snip_http_request_duration_seconds HTTP request latency by route and status.\n",
    );
    out.push_str("# TYPE snip_http_request_duration_seconds histogram\n");
    for (labels, h) in &series {
        h.render("snip_http_request_duration_seconds", labels, &mut out);
    }
    out.push_str("# HELP snip_store_duration_seconds Latency of store calls (writes until their commit is confirmed).\n");
    out.push_str("# TYPE snip_store_duration_seconds histogram\n");
    for kind in ["read", "write"] {
        store(kind).render(
            "snip_store_duration_seconds",
            &format!("kind=\"{kind}\""),
            &mut out,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_land_in_cumulative_buckets_with_sum_and_count() {
        let h = Latency::default();
        h.record(Duration::from_micros(30));
        h.record(Duration::from_micros(700));
        h.record(Duration::from_secs(10));
        let mut out = String::new();
        h.render("x", "a=\"b\"", &mut out);
        assert!(
            out.contains("x_bucket{a=\"b\",le=\"0.00005\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.001\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"5\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 3\n"), "{out}");
        assert_eq!(h.count(), 3);
    }

    #[test]
    fn http_series_are_shared_per_route_and_status() {
        let a = http("/test-route", 302);
        let b = http("/test-route", 302);
        assert!(Arc::ptr_eq(&a, &b));
        a.record(Duration::from_micros(1));
        assert!(
            render().contains("snip_http_requests_total{route=\"/test-route\",status=\"302\"} 1")
        );
    }
}
