//! Structured logs (`tracing`) and the Prometheus recorder.

pub mod latency;
pub mod striped;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global tracing subscriber: `default` is the filter unless `RUST_LOG` sets one
/// (`info` for the server; `warn` for one-shot commands, whose output is their report). Text
/// logs are coloured only on a terminal.
pub fn init_logging(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// The process metrics (`process_resident_memory_bytes`, `process_open_fds`,
/// `process_cpu_seconds_total`, …), refreshed by [`collect_process_metrics`] at each scrape.
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// Refreshes the process metrics; called by each `/metrics` scrape.
pub fn collect_process_metrics() {
    process_collector().collect();
}

/// The `# HELP` of every counter the recorder renders.
const COUNTERS: &[(&str, &str)] = &[
    (
        "snip_cache_hits_total",
        "Redirect cache lookups that found the code.",
    ),
    (
        "snip_cache_misses_total",
        "Redirect cache lookups that did not find the code.",
    ),
    (
        "snip_clicks_flushed_total",
        "Clicks written to the store (journalled).",
    ),
    (
        "snip_click_flushes_total",
        "Click flush attempts, by result.",
    ),
    (
        "snip_click_journal_reaped_total",
        "Times another instance had replayed this instance's click journal (PostgreSQL).",
    ),
    (
        "snip_store_errors_total",
        "Store calls that failed (not counting not-found or conflicts).",
    ),
    (
        "snip_clicks_dropped_total",
        "Clicks dropped because the buffer was full while the store failed.",
    ),
    (
        "snip_cache_reloads_total",
        "Stale cache entries answered and reloaded in the background.",
    ),
    (
        "snip_cache_coherence_invalidations_total",
        "Cached codes dropped because another instance changed them.",
    ),
    (
        "snip_cache_coherence_reconnects_total",
        "Times the change feed lost its connection and reconnected.",
    ),
    (
        "snip_store_replica_fallbacks_total",
        "Redirect reads that failed on a replica and went to the primary.",
    ),
    (
        "snip_store_group_commits_total",
        "PostgreSQL: transactions that committed several link creates together.",
    ),
    (
        "snip_store_group_committed_creates_total",
        "PostgreSQL: link creates committed in those transactions.",
    ),
    (
        "snip_store_batched_reads_total",
        "Queries that looked several links up at once (PostgreSQL).",
    ),
    (
        "snip_store_batched_lookups_total",
        "Link lookups answered by those queries.",
    ),
    ("snip_redis_hits_total", "Redirects answered from Redis."),
    (
        "snip_redis_errors_total",
        "Redis calls that failed or timed out, by operation.",
    ),
    (
        "snip_auth_failures_total",
        "Failed authentications: a presented API key unknown or revoked.",
    ),
    (
        "snip_auth_throttled_total",
        "Requests answered 429 auth_throttled (failed-auth limit reached).",
    ),
    (
        "snip_connections_shed_total",
        "Connections over --max-connections, answered 503 and closed.",
    ),
    (
        "snip_denied_destinations_total",
        "Destinations refused by the deny list, by where (write or redirect).",
    ),
    (
        "snip_qr_renders_total",
        "QR images rendered (not served from the image cache).",
    ),
];

/// The `# HELP` of every gauge the recorder renders.
const GAUGES: &[(&str, &str)] = &[
    ("snip_cache_entries", "Entries in the redirect cache."),
    (
        "snip_clicks_buffered",
        "Clicks recorded and not yet in the store's click journal.",
    ),
    (
        "snip_clicks_unfolded_entries",
        "Links-and-days held in memory until their next fold into the tables.",
    ),
    (
        "snip_click_flush_lag_seconds",
        "Seconds since the last successful click flush.",
    ),
    (
        "snip_store_ping_seconds",
        "Store round trip, measured at each scrape.",
    ),
    (
        "snip_code_filter_codes",
        "Codes in the in-memory filter of existing codes.",
    ),
    (
        "snip_code_filter_capacity",
        "Codes the in-memory filter of existing codes is sized for.",
    ),
    (
        "snip_cache_coherence_connected",
        "1 while this instance hears the other instances' link changes, else 0.",
    ),
    (
        "snip_deny_list_entries",
        "Entries of the deny list in force.",
    ),
    (
        "snip_qr_renders_in_flight",
        "QR images being rendered or waiting for a renderer.",
    ),
];

/// Gives every metric the recorder renders its `# HELP` line (the descriptions of the
/// table in docs/operations.md), and sets `snip_build_info`.
fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    process_collector().describe();
    describe_gauge!(
        "snip_build_info",
        "Always 1; the labels name the running build."
    );
    metrics::gauge!("snip_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for (name, help) in COUNTERS {
        describe_counter!(*name, *help);
    }
    for (name, help) in GAUGES {
        describe_gauge!(*name, *help);
    }
    describe_histogram!(
        "snip_click_flush_duration_seconds",
        metrics::Unit::Seconds,
        "Duration of successful click flushes."
    );
}

/// The process-wide Prometheus recorder (installed once, shared by every app in the process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // The request latency clock (`quanta`) calibrates itself on first use (~1 ms):
            // here at start-up, not in the first request.
            let _ = quanta::Instant::now();
            let buckets = [
                0.000_05, 0.0001, 0.000_25, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                0.25, 0.5, 1.0, 2.5, 5.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .expect("bucket list is not empty");
            match builder.install_recorder() {
                Ok(handle) => {
                    describe_metrics();
                    handle
                }
                // Another recorder is installed (embedding): render our own, unconnected one.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}
