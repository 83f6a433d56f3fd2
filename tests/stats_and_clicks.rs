//! Click counting and the stats endpoint. docs/api.md, "Redirects" (clicks) and
//! "Statistics".

use std::sync::Arc;

use crate::common::{TestServer, code_of, expect_json, expect_problem, single_connection_client};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const FAST_FLUSH: &[&str] = &["--click-flush-interval", "50ms"];

fn sum_clicks(entries: &Value) -> i64 {
    entries
        .as_array()
        .unwrap_or_else(|| panic!("expected an array, got {entries}"))
        .iter()
        .map(|e| e["clicks"].as_i64().expect("clicks is an integer"))
        .sum()
}

fn dimension(entries: &Value) -> Vec<(String, i64)> {
    entries
        .as_array()
        .unwrap_or_else(|| panic!("expected an array, got {entries}"))
        .iter()
        .map(|e| {
            (
                e["key"].as_str().expect("key is a string").to_owned(),
                e["clicks"].as_i64().expect("clicks is an integer"),
            )
        })
        .collect()
}

#[tokio::test]
async fn head_requests_do_not_count_clicks() {
    let server = TestServer::spawn(FAST_FLUSH);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/h"}))
            .await,
    );
    let barrier = code_of(
        &server
            .new_link(json!({"url": "https://example.com/b"}))
            .await,
    );

    for _ in 0..5 {
        assert_eq!(server.head(&code).await.status(), StatusCode::FOUND);
    }
    for _ in 0..3 {
        assert_eq!(server.visit(&code).await.status(), StatusCode::FOUND);
    }
    for _ in 0..5 {
        assert_eq!(server.head(&code).await.status(), StatusCode::FOUND);
    }
    // A click made after all the others: once it shows, the earlier ones have been flushed too.
    assert_eq!(server.visit(&barrier).await.status(), StatusCode::FOUND);
    let barrier_total = server.wait_for_total_clicks(&barrier, 1).await;
    assert_eq!(barrier_total, 1);

    let total = server.wait_for_total_clicks(&code, 3).await;

    assert_eq!(total, 3, "only the 3 GETs count, not the 10 HEADs");
}

#[tokio::test]
async fn stats_report_totals_series_and_referrers() {
    let server = TestServer::spawn(FAST_FLUSH);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/s"}))
            .await,
    );
    let referers = [
        Some("https://news.ycombinator.com/item?id=1"),
        Some("https://news.ycombinator.com/item?id=2"),
        Some("https://news.ycombinator.com/"),
        Some("https://www.reddit.com/r/rust"),
        Some("https://www.reddit.com/"),
        None,
        None,
        None,
        None,
    ];
    for referer in referers {
        let mut req = server.client.get(server.url(&format!("/{code}")));
        if let Some(r) = referer {
            req = req.header("referer", r);
        }
        assert_eq!(req.send().await.unwrap().status(), StatusCode::FOUND);
    }

    let total = server.wait_for_total_clicks(&code, 9).await;
    let stats = server.stats(&code, "").await;
    let hourly = server.stats(&code, "?interval=hour").await;

    assert_eq!(total, 9);
    assert_eq!(stats["code"], code.as_str());
    assert_eq!(stats["total_clicks"], 9);
    assert_eq!(
        stats["human_clicks"].as_i64().unwrap() + stats["bot_clicks"].as_i64().unwrap(),
        9,
        "human + bot = total: {stats}"
    );
    assert_eq!(
        stats["human_clicks"], 9,
        "browser clicks are human: {stats}"
    );
    assert_eq!(stats["interval"], "day");
    for member in ["from", "to", "as_of"] {
        assert!(
            stats[member]
                .as_str()
                .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
            "{member} should be RFC 3339: {stats}"
        );
    }
    assert_eq!(sum_clicks(&stats["series"]), 9, "daily series: {stats}");
    assert!(
        stats["series"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["t"].is_string()),
        "series entries have t: {stats}"
    );
    assert_eq!(hourly["interval"], "hour");
    assert_eq!(sum_clicks(&hourly["series"]), 9, "hourly series: {hourly}");
    assert_eq!(
        dimension(&stats["referrers"]),
        vec![
            ("(direct)".to_owned(), 4),
            ("news.ycombinator.com".to_owned(), 3),
            ("www.reddit.com".to_owned(), 2),
        ],
        "referrers by host, most clicks first: {stats}"
    );
}

#[tokio::test]
async fn totals_are_all_time_whatever_the_range() {
    let server = TestServer::spawn(FAST_FLUSH);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/t"}))
            .await,
    );
    for _ in 0..4 {
        assert_eq!(server.visit(&code).await.status(), StatusCode::FOUND);
    }
    assert_eq!(server.wait_for_total_clicks(&code, 4).await, 4);

    let old_range = server
        .stats(
            &code,
            "?from=2020-01-01T00:00:00Z&to=2020-01-03T00:00:00Z&interval=day",
        )
        .await;

    assert_eq!(old_range["total_clicks"], 4, "{old_range}");
    assert_eq!(sum_clicks(&old_range["series"]), 0, "{old_range}");
}

#[tokio::test]
async fn stats_query_parameters_out_of_range_return_422() {
    let server = TestServer::spawn(&[]);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/q"}))
            .await,
    );
    let queries = [
        "interval=week",
        "interval=",
        "interval=HOURLY",
        "from=yesterday",
        "to=2026-99-99",
        "from=2024-02-01T00:00:00Z&to=2024-01-01T00:00:00Z",
    ];

    for query in queries {
        let resp = server
            .call(Method::GET, &format!("/api/v1/links/{code}/stats?{query}"))
            .await;

        expect_problem(
            resp,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            &format!("stats?{query}"),
        )
        .await;
    }
    let valid = server
        .api(
            Method::GET,
            &format!(
                "/api/v1/links/{code}/stats?from=2024-01-01T00:00:00Z&to=2024-02-01T00:00:00Z&interval=hour"
            ),
        )
        .send()
        .await
        .unwrap();
    expect_json(valid, StatusCode::OK, "valid stats range").await;
}

#[tokio::test]
async fn stats_of_an_unknown_link_return_404() {
    let server = TestServer::spawn(&[]);

    let resp = server
        .call(Method::GET, "/api/v1/links/nosuch1/stats")
        .await;

    expect_problem(resp, StatusCode::NOT_FOUND, "not_found", "stats of unknown").await;
}

/// Referer used by the `i`-th click of a task: 40 % direct, 30 % a, 20 % b, 10 % c.
fn referer_for(i: usize) -> Option<&'static str> {
    match i % 10 {
        0..=3 => None,
        4..=6 => Some("https://a.example/x?y=1"),
        7 | 8 => Some("https://b.example/"),
        _ => Some("http://c.example/deep/path"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clicks_from_eight_concurrent_connections_are_counted_exactly() {
    let server = Arc::new(TestServer::spawn(FAST_FLUSH));
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/c"}))
            .await,
    );

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = server.url(&format!("/{code}"));
        tasks.push(tokio::spawn(async move {
            let client = single_connection_client();
            let mut not_found = Vec::new();
            for i in 0..250 {
                let mut req = client.get(&url);
                if let Some(r) = referer_for(i) {
                    req = req.header("referer", r);
                }
                let status = req.send().await.unwrap().status();
                if status != StatusCode::FOUND {
                    not_found.push(status);
                }
            }
            not_found
        }));
    }
    for task in tasks {
        let unexpected = task.await.unwrap();
        assert!(unexpected.is_empty(), "non-302 redirects: {unexpected:?}");
    }

    let total = server.wait_for_total_clicks(&code, 2000).await;
    let stats = server.stats(&code, "").await;

    assert_eq!(total, 2000);
    assert_eq!(
        sum_clicks(&stats["series"]),
        2000,
        "series: {}",
        stats["series"]
    );
    assert_eq!(
        dimension(&stats["referrers"]),
        vec![
            ("(direct)".to_owned(), 800),
            ("a.example".to_owned(), 600),
            ("b.example".to_owned(), 400),
            ("c.example".to_owned(), 200),
        ],
        "referrers: {}",
        stats["referrers"]
    );
}

#[tokio::test]
async fn click_mode_off_keeps_no_statistics_but_still_enforces_max_clicks() {
    let mut server = TestServer::spawn(&["--click-mode", "off", "--click-flush-interval", "50ms"]);
    let plain = code_of(
        &server
            .new_link(json!({"url": "https://example.com/plain"}))
            .await,
    );
    let limited = code_of(
        &server
            .new_link(json!({"url": "https://example.com/limited", "max_clicks": 2}))
            .await,
    );

    for _ in 0..5 {
        assert_eq!(server.visit(&plain).await.status(), StatusCode::FOUND);
    }
    assert_eq!(server.visit(&limited).await.status(), StatusCode::FOUND);
    assert_eq!(server.visit(&limited).await.status(), StatusCode::FOUND);
    assert_eq!(server.visit(&limited).await.status(), StatusCode::GONE);
    // The limited link's clicks are flushed (its limit must survive a restart); once they show,
    // the plain link's would have been flushed too, had they been recorded.
    assert_eq!(server.wait_for_total_clicks(&limited, 2).await, 2);

    assert_eq!(server.total_clicks(&plain).await, 0);
    server.sigterm();
    let restarted = server.restart(&["--click-mode", "off"]);
    assert_eq!(restarted.visit(&limited).await.status(), StatusCode::GONE);
}
