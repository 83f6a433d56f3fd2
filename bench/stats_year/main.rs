//! How long the stats of a link with a year of clicks take to answer: a link gets 365 days of
//! dimension rows and visitor sketches (20 values per dimension, 200 visitors a day), hourly
//! rows for the retention (35 days) and daily rows before that, written through the store's own
//! API; then `GET /api/v1/links/{code}/stats?from=<a year ago>&interval=day` is asked ROUNDS
//! times in a row and the latencies printed. The target is 50 ms (docs/benchmarks.md).
//!
//! Usage: `cargo run --release --example stats_year [DATABASE] [ROUNDS]`: DATABASE defaults to a
//! new SQLite file in a temporary directory (`postgres://…/db` for an empty PostgreSQL
//! database), ROUNDS to 50.

use std::sync::Arc;
use std::time::{Duration, Instant};

use snip::store::StoreOptions;

#[path = "../common/server.rs"]
mod server;
mod year;

const KEY: &str = "snip_statsyearbenchmarkkey000000000000";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let database = args
        .first()
        .cloned()
        .unwrap_or_else(|| format!("sqlite://{}/snip.db", dir.path().display()));
    let rounds: usize = args
        .get(1)
        .map_or(50, |r| r.parse().expect("ROUNDS is a number"));
    snip::cli::client::install_tls_provider();
    let client = reqwest::Client::new();

    let (base, stop, task) = server::start(&database, KEY, &[]).await;
    let link: serde_json::Value = client
        .post(format!("{base}/api/v1/links"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"url": "https://example.com/year"}))
        .send()
        .await
        .expect("create a link")
        .json()
        .await
        .expect("a link");
    let code = link["code"].as_str().expect("a code").to_string();
    let _ = stop.send(());
    task.await.expect("the server stops");

    let store = snip::store::open(
        &snip::config::Database::parse(&database).expect("a database URL"),
        &StoreOptions::one_shot(Duration::from_secs(60), 2),
    )
    .await
    .expect("open the store");
    let today = chrono::Utc::now().timestamp().div_euclid(86_400);
    let batch = year::year_of_clicks(1, today);
    store
        .add_clicks(Arc::new(batch), true)
        .await
        .expect("write a year of clicks");
    store
        .roll_up_hours((today - 35) * 24)
        .await
        .expect("roll up");
    drop(store);

    let (base, stop, task) = server::start(&database, KEY, &[]).await;
    let from = (chrono::Utc::now() - chrono::Duration::days(365)).format("%Y-%m-%dT%H:%M:%SZ");
    let url = format!("{base}/api/v1/links/{code}/stats?from={from}&interval=day");
    let mut took = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let stats: serde_json::Value = client
            .get(&url)
            .bearer_auth(KEY)
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats JSON");
        took.push(started.elapsed());
        assert_eq!(
            stats["total_clicks"],
            365 * 24 * 11,
            "the year is all there"
        );
    }
    let _ = stop.send(());
    task.await.expect("the server stops");
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "stats of a year ({rounds} rounds, {}): min {:.1} ms, p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        database.split(':').next().unwrap_or("?"),
        ms(took[0]),
        ms(took[rounds / 2]),
        ms(took[rounds * 9 / 10]),
        ms(took[rounds - 1]),
    );
}
