//! Click analytics against the real binary: dimensions from real user agents and country
//! headers, bots apart, client addresses behind (trusted or not) proxies, unique visitors, exact
//! mode, the CSV export and unknown codes. docs/api.md, "Statistics"; docs/analytics.md.

use std::time::Duration;

use crate::common::{self, TestServer, code_of, expect_json, poll_for};
use crate::year;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
const FIREFOX_MAC: &str =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:120.0) Gecko/20100101 Firefox/120.0";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const CURL: &str = "curl/8.5.0";

const FAST_FLUSH: &[&str] = &["--click-flush-interval", "100ms"];

async fn visit_as(
    server: &TestServer,
    code: &str,
    ua: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = server
        .client
        .get(server.url(&format!("/{code}")))
        .header("user-agent", ua);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("GET /{code}")
}

/// `[{key, clicks}]` as a sorted-by-API vector of pairs.
fn list(stats: &Value, name: &str) -> Vec<(String, u64)> {
    stats[name]
        .as_array()
        .unwrap_or_else(|| panic!("{name} is not a list: {stats}"))
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap().to_string(),
                e["clicks"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, u64)]) -> Vec<(String, u64)> {
    expected.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

fn series_sum(stats: &Value) -> u64 {
    stats["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["clicks"].as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn real_user_agents_and_country_headers_give_exact_dimension_counts() {
    let mut args = FAST_FLUSH.to_vec();
    args.extend(["--country-header", "X-Country"]);
    let server = TestServer::spawn(&args);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/a"}))
            .await,
    );
    let plan: &[(&str, Option<&str>, usize)] = &[
        (CHROME_WINDOWS, Some("DE"), 3),
        (SAFARI_IPHONE, Some("us"), 2),
        (FIREFOX_MAC, Some("FR"), 1),
        (GOOGLEBOT, Some("US"), 2),
        (CURL, None, 1),
    ];
    for (ua, country, n) in plan {
        for _ in 0..*n {
            let headers: Vec<(&str, &str)> = country.iter().map(|c| ("X-Country", *c)).collect();
            let r = visit_as(&server, &code, ua, &headers).await;
            assert_eq!(r.status(), StatusCode::FOUND);
        }
    }
    assert_eq!(server.wait_for_total_clicks(&code, 9).await, 9);

    let s = server.stats(&code, "").await;
    assert_eq!(s["total_clicks"], 9);
    assert_eq!(s["human_clicks"], 6);
    assert_eq!(s["bot_clicks"], 3);
    assert_eq!(series_sum(&s), 6, "the series counts humans: {s}");
    assert_eq!(
        list(&s, "browsers"),
        pairs(&[("Chrome", 3), ("Safari", 2), ("Firefox", 1)])
    );
    assert_eq!(
        list(&s, "operating_systems"),
        pairs(&[("Windows", 3), ("iOS", 2), ("macOS", 1)])
    );
    assert_eq!(list(&s, "devices"), pairs(&[("desktop", 4), ("mobile", 2)]));
    assert_eq!(
        list(&s, "countries"),
        pairs(&[("DE", 3), ("US", 2), ("FR", 1)])
    );
    assert_eq!(list(&s, "referrers"), pairs(&[("(direct)", 6)]));
    // One address, three browsers: three visitors.
    assert_eq!(s["unique_visitors"], 3);

    let all = server.stats(&code, "?include_bots=true").await;
    assert_eq!(all["total_clicks"], 9);
    assert_eq!(all["human_clicks"], 6);
    assert_eq!(all["bot_clicks"], 3);
    assert_eq!(series_sum(&all), 9);
    assert_eq!(
        list(&all, "devices"),
        pairs(&[("desktop", 4), ("bot", 3), ("mobile", 2)])
    );
    assert_eq!(
        list(&all, "countries"),
        pairs(&[("US", 4), ("DE", 3), ("(unknown)", 1), ("FR", 1)])
    );
    assert_eq!(all["unique_visitors"], 5);
    let bots: u64 = list(&all, "browsers")
        .iter()
        .filter(|(k, _)| !["Chrome", "Safari", "Firefox"].contains(&k.as_str()))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(bots, 3, "Googlebot and curl appear only with include_bots");
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let mut args = FAST_FLUSH.to_vec();
    // The tests connect from 127.0.0.1, which is not in the trusted range.
    args.extend(["--trusted-proxies", "10.0.0.0/8"]);
    let server = TestServer::spawn(&args);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/s"}))
            .await,
    );
    for i in 0..50 {
        let xff = format!("198.51.100.{i}");
        let fwd = format!("for=198.51.100.{i}");
        let headers = [
            ("X-Forwarded-For", xff.as_str()),
            ("Forwarded", fwd.as_str()),
        ];
        visit_as(&server, &code, CHROME_WINDOWS, &headers).await;
    }
    assert_eq!(server.wait_for_total_clicks(&code, 50).await, 50);
    let s = server.stats(&code, "").await;
    assert_eq!(s["unique_visitors"], 1, "one real client: {s}");
}

#[tokio::test]
async fn two_thousand_visitors_through_a_trusted_proxy_are_estimated_within_three_percent() {
    let mut args = FAST_FLUSH.to_vec();
    args.extend(["--trusted-proxies", "127.0.0.1/32,10.0.0.0/8"]);
    let server = std::sync::Arc::new(TestServer::spawn(&args));
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/u"}))
            .await,
    );
    let n: u32 = 2000;
    let mut tasks = Vec::new();
    for worker in 0..8u32 {
        let (server, code) = (server.clone(), code.clone());
        tasks.push(tokio::spawn(async move {
            for i in (worker..n).step_by(8) {
                // A client-supplied spoof on the left, then the real client as seen by an
                // inner trusted proxy (10.1.2.3): the right-most untrusted address counts.
                let xff = format!("1.1.1.1, 203.0.{}.{}, 10.1.2.3", i / 250, i % 250);
                let r =
                    visit_as(&server, &code, CHROME_WINDOWS, &[("X-Forwarded-For", &xff)]).await;
                assert_eq!(r.status(), StatusCode::FOUND);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        server.wait_for_total_clicks(&code, n as i64).await,
        n as i64
    );
    let s = server.stats(&code, "").await;
    let estimate = s["unique_visitors"].as_f64().unwrap();
    let error = (estimate - n as f64).abs() / n as f64;
    assert!(error <= 0.03, "estimate {estimate} for {n} visitors");
}

#[tokio::test]
async fn exact_mode_clicks_show_at_once_and_survive_kill_9() {
    let mut server = TestServer::spawn(&["--click-mode", "exact"]);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/x"}))
            .await,
    );
    for _ in 0..5 {
        assert_eq!(
            visit_as(&server, &code, SAFARI_IPHONE, &[]).await.status(),
            StatusCode::FOUND
        );
    }
    let s = server.stats(&code, "").await;
    assert_eq!(s["total_clicks"], 5, "no flush interval to wait for");
    assert_eq!(list(&s, "browsers"), pairs(&[("Safari", 5)]));
    server.kill9();
    let restarted = server.restart(&["--click-mode", "exact"]);
    let s = restarted.stats(&code, "").await;
    assert_eq!(s["total_clicks"], 5);
    assert_eq!(s["unique_visitors"], 1);
}

#[tokio::test]
async fn the_csv_export_has_every_section_and_neutralises_formulas() {
    let server = TestServer::spawn(FAST_FLUSH);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/c"}))
            .await,
    );
    visit_as(
        &server,
        &code,
        CHROME_WINDOWS,
        &[("Referer", "https://-1+2.example/page")],
    )
    .await;
    visit_as(&server, &code, CHROME_WINDOWS, &[]).await;
    server.wait_for_total_clicks(&code, 2).await;
    let resp = server
        .api(
            Method::GET,
            &format!("/api/v1/links/{code}/stats.csv?interval=day"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("text/csv"), "{ctype}");
    let body = resp.text().await.unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], "section,key,clicks");
    assert!(lines.contains(&"total,total_clicks,2"), "{body}");
    assert!(lines.contains(&"referrers,'-1+2.example,1"), "{body}");
    assert!(lines.contains(&"referrers,(direct),1"), "{body}");
    assert!(lines.contains(&"browsers,Chrome,2"), "{body}");
    assert!(lines.iter().any(|l| l.starts_with("series,")), "{body}");
    for line in &lines[1..] {
        let key = line.split(',').nth(1).unwrap();
        assert!(
            !key.starts_with(['=', '+', '-', '@', '\t', '\r']),
            "formula-looking cell {line:?}"
        );
    }
    // The same query rules as the JSON endpoint.
    let bad = server
        .api(
            Method::GET,
            &format!("/api/v1/links/{code}/stats.csv?interval=week"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn visits_to_unknown_codes_are_counted_for_admins() {
    let server = TestServer::spawn(FAST_FLUSH);
    for _ in 0..3 {
        assert_eq!(
            server.visit("nope123").await.status(),
            StatusCode::NOT_FOUND
        );
    }
    server.visit("other12").await;
    // Counted by the click flusher: polled.
    let unknown = poll_for(
        "4 visits to unknown codes in /api/v1/stats/unknown",
        Duration::from_secs(10),
        || async {
            let r = server.call(Method::GET, "/api/v1/stats/unknown").await;
            expect_json(r, StatusCode::OK, "unknown stats").await
        },
        |v: &Value| v["total"] == 4,
    )
    .await;
    assert_eq!(
        list(&unknown, "codes"),
        pairs(&[("nope123", 3), ("other12", 1)])
    );
    let user = server.create_key("user").await;
    let r = server
        .api_as(&user, Method::GET, "/api/v1/stats/unknown")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn countries_come_from_a_maxmind_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("country.mmdb");
    std::fs::write(
        &db,
        common::mmdb_writer::country_db(&[("127.0.0.0/8", "NL"), ("10.0.0.0/8", "JP")]),
    )
    .unwrap();
    let mut args = FAST_FLUSH.to_vec();
    let path = db.display().to_string();
    args.extend(["--geoip-db", path.as_str()]);
    let server = TestServer::spawn(&args);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/g"}))
            .await,
    );
    visit_as(&server, &code, FIREFOX_MAC, &[]).await;
    visit_as(&server, &code, FIREFOX_MAC, &[]).await;
    server.wait_for_total_clicks(&code, 2).await;
    let s = server.stats(&code, "").await;
    assert_eq!(list(&s, "countries"), pairs(&[("NL", 2)]));
}

#[tokio::test]
async fn a_bad_geoip_file_or_proxy_list_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.mmdb");
    std::fs::write(&bogus, b"not a database").unwrap();
    for (flag, value, expect) in [
        ("--geoip-db", bogus.display().to_string(), "mmdb"),
        (
            "--trusted-proxies",
            "10.0.0.0/99".to_string(),
            "trusted-proxies",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_snip"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--database")
            .arg(format!("sqlite://{}/{flag}.db", dir.path().display()))
            .args([flag, value.as_str()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} {value} must refuse to start");
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(err.contains(expect), "{flag}: {err}");
    }
}

#[tokio::test]
async fn a_year_of_hourly_and_daily_data_adds_up_in_the_stats() {
    let mut server = TestServer::spawn(&[]);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/y"}))
            .await,
    );
    let link_id: i64 = 1;
    server.sigterm();
    {
        // Seed a year through the store's own API: 365 days of dimension rows and visitor
        // sketches, hourly rows for the last 35 days, daily rows before that.
        let store = snip::store::open(
            &snip::config::Database::parse(&server.database).unwrap(),
            &snip::store::StoreOptions::one_shot(Duration::from_secs(30), 2),
        )
        .await
        .unwrap();
        let today = chrono::Utc::now().timestamp().div_euclid(86_400);
        let batch = year::year_of_clicks(link_id, today);
        store
            .add_clicks(std::sync::Arc::new(batch), true)
            .await
            .unwrap();
        store.roll_up_hours((today - 35) * 24).await.unwrap();
    }
    let server = server.restart(&[]);
    let from = chrono::Utc::now() - chrono::Duration::days(365);
    let query = format!("?from={}&interval=day", from.format("%Y-%m-%dT%H:%M:%SZ"));
    // How fast this answers is measured by `cargo run --release --example stats_year`
    // (docs/benchmarks.md), not asserted here: a timed test fails on a busy machine.
    let stats = server.stats(&code, &query).await;
    assert_eq!(stats["total_clicks"], 365 * 24 * year::CLICKS_PER_HOUR);
    assert_eq!(stats["bot_clicks"], 365 * 24 * year::BOTS_PER_HOUR);
    assert_eq!(stats["series"].as_array().unwrap().len(), 366);
    assert_eq!(
        stats["browsers"].as_array().unwrap().len(),
        year::VALUES_PER_DIM
    );
    // 200 distinct visitors a day, estimated by the sketch (within 5 %).
    assert!(stats["unique_visitors"].as_u64().unwrap() > 365 * year::VISITORS_PER_DAY * 95 / 100);
}
