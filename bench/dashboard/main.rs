//! How long the dashboard's heaviest pages take to answer on a store with 10,000 links: the
//! links page (first page with click totals, a search, a tag filter, a later page), the
//! overview (every link's clicks of the last 30 days), and the page of a link with a year of
//! clicks (daily over the year; hourly over two days). The links are written through the
//! store's own API (one with a year of clicks, as `stats_year` writes it; each of the others
//! with clicks today); then each page is asked ROUNDS times in a row, signed in with a session
//! cookie, and the latencies printed. The target is 300 ms server time (docs/benchmarks.md).
//!
//! Usage: `cargo run --release --example dashboard [DATABASE] [ROUNDS]`: DATABASE defaults to a
//! new SQLite file in a temporary directory (also when empty; `postgres://…/db` for an empty
//! PostgreSQL database), ROUNDS to 30.

use std::sync::Arc;
use std::time::{Duration, Instant};

use snip::domain::{Destination, ShortCode};
use snip::store::{ClickBatch, HourCount, StoreOptions};

#[path = "../common/server.rs"]
mod server;
#[path = "../stats_year/year.rs"]
mod year;

const KEY: &str = "snip_dashboardbenchmarkkey0000000000000";
const LINKS: usize = 10_000;

/// Writes the links and their clicks; returns the code of the link with a year of clicks.
async fn fill(database: &str, client: &reqwest::Client) -> String {
    let (base, stop, task) = server::start(database, KEY, &["--rate-limit", "100000"]).await;
    let mut year_code = String::new();
    for i in 0..50 {
        let link: serde_json::Value = client
            .post(format!("{base}/api/v1/links"))
            .bearer_auth(KEY)
            .json(&serde_json::json!({
                "url": format!("https://example.com/tagged/{i}"),
                "title": format!("Tagged link {i}"),
                "tags": [format!("campaign-{}", i % 5), "print"],
            }))
            .send()
            .await
            .expect("create a link")
            .json()
            .await
            .expect("a link");
        if i == 0 {
            year_code = link["code"].as_str().expect("a code").to_string();
        }
    }
    let _ = stop.send(());
    task.await.expect("the server stops");

    let store = snip::store::open(
        &snip::config::Database::parse(database).expect("a database URL"),
        &StoreOptions::one_shot(Duration::from_secs(120), 2),
    )
    .await
    .expect("open the store");
    let links: Vec<_> = (50..LINKS)
        .map(|i| {
            snip::domain::ImportLink::new(
                ShortCode::parse_custom(&format!("bench{i:05}")).expect("a code"),
                Destination::parse(&format!("https://example.org/page/{i}"), &[]).expect("a URL"),
            )
        })
        .collect();
    store
        .import_links(links, 1)
        .await
        .expect("import the links");
    let today = chrono::Utc::now().timestamp().div_euclid(86_400);
    store
        .add_clicks(Arc::new(year::year_of_clicks(1, today)), true)
        .await
        .expect("write a year of clicks");
    let hour = chrono::Utc::now().timestamp().div_euclid(3600);
    let today_clicks = ClickBatch {
        hourly: (2..=LINKS as i64)
            .map(|link_id| HourCount {
                link_id,
                hour,
                clicks: (link_id % 7 + 1) as u64,
                bots: 0,
            })
            .collect(),
        ..ClickBatch::default()
    };
    store
        .add_clicks(Arc::new(today_clicks), true)
        .await
        .expect("write today's clicks");
    store
        .roll_up_hours((today - 35) * 24)
        .await
        .expect("roll up");
    year_code
}

/// Signs in through the form; the session cookie.
async fn sign_in(client: &reqwest::Client, base: &str) -> String {
    let resp = client
        .post(format!("{base}/ui/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("key={KEY}"))
        .send()
        .await
        .expect("sign in");
    let cookie = resp
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .expect("ASCII");
    cookie.split(';').next().expect("a cookie").to_string()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let database = args
        .first()
        .filter(|d| !d.is_empty())
        .cloned()
        .unwrap_or_else(|| format!("sqlite://{}/snip.db", dir.path().display()));
    let rounds: usize = args
        .get(1)
        .map_or(30, |r| r.parse().expect("ROUNDS is a number"));
    snip::cli::client::install_tls_provider();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let year_code = fill(&database, &client).await;

    let (base, stop, task) = server::start(&database, KEY, &["--rate-limit", "100000"]).await;
    let cookie = sign_in(&client, &base).await;
    let a_year_ago = (chrono::Utc::now() - chrono::Duration::days(364)).format("%Y-%m-%d");
    let pages = [
        ("links, first page".to_string(), "/ui/links".to_string()),
        (
            "links, search".to_string(),
            "/ui/links?q=page%2F99".to_string(),
        ),
        (
            "links, tag filter".to_string(),
            "/ui/links?tag=campaign-3".to_string(),
        ),
        (
            "links, page 100".to_string(),
            "/ui/links?after=5000".to_string(),
        ),
        ("overview".to_string(), "/ui/".to_string()),
        (
            "link, a year daily".to_string(),
            format!("/ui/links/{year_code}?interval=day&from={a_year_ago}"),
        ),
        (
            "link, 2 days hourly".to_string(),
            format!("/ui/links/{year_code}?interval=hour"),
        ),
    ];
    for (name, path) in pages {
        let mut took = Vec::with_capacity(rounds);
        let mut bytes = 0;
        for _ in 0..rounds {
            let started = Instant::now();
            let resp = client
                .get(format!("{base}{path}"))
                .header("cookie", &cookie)
                .send()
                .await
                .expect("a page");
            assert_eq!(resp.status(), reqwest::StatusCode::OK, "{path}");
            bytes = resp.bytes().await.expect("the page").len();
            took.push(started.elapsed());
        }
        took.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{name:<22} {path:<50} {bytes:>7} B  p50 {:>6.1} ms  p90 {:>6.1} ms  max {:>6.1} ms",
            ms(took[rounds / 2]),
            ms(took[rounds * 9 / 10]),
            ms(took[rounds - 1]),
        );
    }
    let _ = stop.send(());
    task.await.expect("the server stops");
}
