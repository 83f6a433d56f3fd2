//! Unknown codes (scans, typos, attacks) and the filter of existing codes that answers them
//! without a store read; the data-directory lock that lets the filter trust it sees every write.

use std::process::Command;
use std::time::Duration;

use crate::common::{self, TestServer, XorShift, code_of, poll_for};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// The value of an unlabelled gauge on `/metrics`.
async fn gauge(server: &TestServer, name: &str) -> Option<f64> {
    let text = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn after_a_restart_the_filter_holds_every_stored_code_and_new_ones() {
    if !common::is_sqlite() {
        eprintln!(
            "SQLite only: the filter of existing codes is SQLite's (one process owns the file)"
        );
        return;
    }
    let mut server = TestServer::spawn(&[]);
    let mut codes = Vec::new();
    for i in 0..40 {
        let body = if i % 2 == 0 {
            json!({"url": format!("https://example.com/{i}")})
        } else {
            json!({"url": format!("https://example.com/{i}"), "code": format!("Custom-{i}")})
        };
        codes.push(code_of(&server.new_link(body).await));
    }
    let deleted = codes.pop().unwrap();
    let delete = server
        .call(Method::DELETE, &format!("/api/v1/links/{deleted}"))
        .await;
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    server.sigterm();

    let server = server.restart(&[]);
    // Built in the background after the start: polled.
    poll_for(
        "the filter built from the 40 stored codes (snip_code_filter_codes)",
        Duration::from_secs(10),
        || gauge(&server, "snip_code_filter_codes"),
        |codes| *codes == Some(40.0),
    )
    .await;

    for code in &codes {
        let r = server.visit(code).await;
        assert_eq!(r.status(), StatusCode::FOUND, "stored code {code}");
    }
    assert_eq!(
        server.visit(&deleted).await.status(),
        StatusCode::GONE,
        "a deleted link's code stays known"
    );
    let mut rng = XorShift::new(7);
    for _ in 0..200 {
        let code: String = (0..7)
            .map(|_| (b'a' + rng.below(26) as u8) as char)
            .collect();
        let r = server.visit(&code).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "unknown code {code}");
    }
    // Created after the filter was built: redirects at once.
    let fresh = code_of(
        &server
            .new_link(json!({"url": "https://example.com/new"}))
            .await,
    );
    assert_eq!(server.visit(&fresh).await.status(), StatusCode::FOUND);
    assert_eq!(
        gauge(&server, "snip_code_filter_codes").await,
        Some(41.0),
        "new codes are counted into the filter"
    );
}

#[tokio::test]
async fn a_data_directory_in_use_cannot_be_opened_by_a_second_process() {
    if !common::is_sqlite() {
        eprintln!("SQLite only: the lock of a SQLite file");
        return;
    }
    let mut server = TestServer::spawn(&[]);
    let database = format!("sqlite://{}", server.db_path.display());
    let second = Command::new(env!("CARGO_BIN_EXE_snip"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &database])
        .env_remove("SNIP_CONFIG")
        .output()
        .expect("run a second snip");
    assert!(!second.status.success(), "a second server must refuse");
    let why = String::from_utf8_lossy(&second.stderr);
    assert!(
        why.contains("in use by another snip process"),
        "clear reason expected, got: {why}"
    );

    let links = server.dir.path().join("links.tsv");
    std::fs::write(&links, "imported\thttps://example.com/imported\n").unwrap();
    let import = |links: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_snip"))
            .args(["import", "--database", &database])
            .arg(links)
            .output()
            .expect("run snip import")
    };
    let refused = import(&links);
    assert!(!refused.status.success(), "import beside a running server");
    assert_eq!(
        server.visit("imported").await.status(),
        StatusCode::NOT_FOUND
    );

    server.sigterm();
    let done = import(&links);
    assert!(
        done.status.success(),
        "import once the server stopped: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    let server = server.restart(&[]);
    assert_eq!(server.visit("imported").await.status(), StatusCode::FOUND);
}
