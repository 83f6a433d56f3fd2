//! Fixed-bucket latency histograms for the hot paths (every request, every store call).
//!
//! The Prometheus exporter of the `metrics` crate stores every histogram sample until a scrape
//! drains it; at tens of thousands of redirects a second that is an allocation every few dozen
//! requests and unbounded memory when nobody scrapes. These histograms are a fixed array of
//! atomic counters instead: recording is one comparison scan and two relaxed atomic adds on the
//! thread's own stripe, and memory never grows. They are rendered in Prometheus text format next
//! to the exporter's output.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::RwLock;

use super::striped::{STRIPES, stripe};

/// Upper bounds of the buckets, in seconds (the last bucket is `+Inf`).
pub const BOUNDS: [f64; 16] = [
    0.000_05, 0.0001, 0.000_25, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

fn bounds_ns() -> &'static [u64; 16] {
    static NS: OnceLock<[u64; 16]> = OnceLock::new();
    NS.get_or_init(|| BOUNDS.map(|b| (b * 1e9) as u64))
}

/// One latency series, striped: each thread adds to its own stripe (a cache line apart from
/// the others'), so that worker threads recording at once do not bounce one line between cores.
#[derive(Default)]
pub struct Latency {
    stripes: [Stripe; STRIPES],
}

#[derive(Default)]
#[repr(align(128))]
struct Stripe {
    /// Non-cumulative counts per bucket; index 16 is `+Inf`.
    buckets: [AtomicU64; 17],
    sum_ns: AtomicU64,
}

impl Stripe {
    const fn new_const() -> Self {
        Stripe {
            buckets: [const { AtomicU64::new(0) }; 17],
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Latency {
    pub fn record(&self, d: Duration) {
        let ns = d.as_nanos().min(u64::MAX as u128) as u64;
        let i = bounds_ns()
            .iter()
            .position(|b| ns <= *b)
            .unwrap_or(BOUNDS.len());
        let stripe = &self.stripes[stripe()];
        stripe.buckets[i].fetch_add(1, Ordering::Relaxed);
        stripe.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Requests in bucket `i`, over every stripe.
    fn bucket(&self, i: usize) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.buckets[i].load(Ordering::Relaxed))
            .sum()
    }

    pub fn count(&self) -> u64 {
        (0..=BOUNDS.len()).map(|i| self.bucket(i)).sum()
    }

    /// Appends `_bucket`, `_sum` and `_count` lines with `labels` (already `k="v"` pairs).
    fn render(&self, name: &str, labels: &str, out: &mut String) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, bound) in BOUNDS.iter().enumerate() {
            cumulative += self.bucket(i);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.bucket(BOUNDS.len());
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let sum_ns: u64 = self
            .stripes
            .iter()
            .map(|s| s.sum_ns.load(Ordering::Relaxed))
            .sum();
        let sum = sum_ns as f64 / 1e9;
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

/// A series a thread recorded into: status, route, the series.
type Remembered = (u16, Box<str>, Arc<Latency>);

/// Records one HTTP request answered on `route` with `status` that took `elapsed`.
///
/// Each thread remembers the series it recorded into last (a handful), so the common case
/// touches neither the shared map's lock nor a reference count: with every worker thread taking
/// the same lock and count for every request, their cache lines would move between cores each
/// time.
pub fn record_http(route: &str, status: u16, elapsed: Duration) {
    thread_local! {
        static MEMO: std::cell::RefCell<Vec<Remembered>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    MEMO.with_borrow_mut(|memo| {
        if let Some(i) = memo
            .iter()
            .position(|(s, r, _)| *s == status && &**r == route)
        {
            memo[i].2.record(elapsed);
            if i > 0 {
                memo.swap(i, i - 1);
            }
            return;
        }
        remember(memo, route, status, elapsed);
    });
}

/// [`record_http`] of a series this thread does not remember: records into it and remembers
/// it (out of line, so that the common case's code stays small).
#[cold]
#[inline(never)]
fn remember(memo: &mut Vec<Remembered>, route: &str, status: u16, elapsed: Duration) {
    /// Series remembered per thread (routes × statuses a thread keeps seeing).
    const MEMO_LEN: usize = 8;
    let series = http(route, status);
    series.record(elapsed);
    if memo.len() == MEMO_LEN {
        memo.pop();
    }
    memo.push((status, route.into(), series));
}

/// The series of HTTP requests answered on `route` with `status`.
fn http(route: &str, status: u16) -> Arc<Latency> {
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
            stripes: [const { Stripe::new_const() }; STRIPES],
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

    #[test]
    fn samples_recorded_from_many_threads_add_up_across_stripes() {
        let h = Arc::new(Latency::default());
        let threads: Vec<_> = (0..2 * STRIPES + 1)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        h.record(Duration::from_micros(2));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n = (2 * STRIPES + 1) as u64 * 1000;
        assert_eq!(h.count(), n);
        let mut out = String::new();
        h.render("x", "", &mut out);
        assert!(
            out.contains(&format!("x_bucket{{le=\"0.00005\"}} {n}\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!("x_sum{{}} {}\n", n as f64 * 2e-6)),
            "{out}"
        );
    }

    #[test]
    fn record_http_counts_every_request_when_a_thread_sees_more_series_than_it_remembers() {
        let routes: Vec<String> = (0..12).map(|i| format!("/memo-test-{i}")).collect();
        for round in 0..3 {
            for (i, route) in routes.iter().enumerate() {
                for _ in 0..=i {
                    record_http(route, 200 + round, Duration::from_micros(1));
                }
            }
        }
        let text = render();
        for round in 0..3u16 {
            for (i, route) in routes.iter().enumerate() {
                let line = format!(
                    "snip_http_requests_total{{route=\"{route}\",status=\"{}\"}} {}\n",
                    200 + round,
                    i + 1
                );
                assert!(text.contains(&line), "missing {line} in\n{text}");
            }
        }
    }
}
