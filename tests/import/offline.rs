//! Offline: straight into a stopped server's store; and what testing it found (a server stopped right after its listening line).

use super::*;

/// `snip import --database` into the store of a stopped server (SQLite or PostgreSQL): the
/// same links as over the API, a collision reported as taken, a re-run imports nothing (rows
/// without a code included), and the restarted server serves them.
#[tokio::test]
async fn offline_import_into_a_stopped_servers_store() {
    let started = now();
    let mut server = spawn_server(&[]);
    let user = User::new();
    server
        .new_link(json!({"url": "https://other.example/mine", "code": "beta"}))
        .await;
    server.sigterm();
    let database = server.database.clone();
    let file = user.file(
        "links.csv",
        &format!("{SMALL_CSV},https://example.com/no-code,No code,,,\n"),
    );

    let run = user.import_offline(&database, "csv", &file, &["--json"]);
    let summary = run.json();
    assert_eq!(
        summary,
        json!({
            "complete": true, "rows": 4, "imported": 3, "present": 0, "taken": 1, "rejected": 0,
            "rejected_file": beside(&file, "rejected.csv").display().to_string(),
        }),
        "{}",
        run.context()
    );
    let rejected = rejected_rows(&beside(&file, "rejected.csv"));
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(
        (rejected[0]["status"].as_str(), rejected[0]["code"].as_str()),
        ("taken", "beta")
    );
    assert!(rejected[0]["reason"].contains("taken by another destination"));

    let again = user.import_offline(&database, "csv", &file, &[]);
    again.ok();
    again.summary(0, 3, 1, 0);

    let server = server.restart(&[]);
    let mut expected = small_expected();
    expected[1] = coded("beta", "https://other.example/mine");
    expected.push(Expected {
        title: Some("No code"),
        ..random("https://example.com/no-code")
    });
    assert_links(&server, &expected, (started, now()), "after the restart").await;
    // The restarted server redirects to them.
    for code in ["alpha", "gamma"] {
        let resp = server.visit(code).await;
        assert!(resp.status().is_redirection(), "{code} redirects");
        assert_eq!(
            common::header(&resp, "location"),
            format!("https://example.com/{code}")
        );
    }
}

/// A server told to stop (SIGTERM) as soon as it has printed its `listening on` line, as a
/// supervisor or a script that stops it to run an offline import may do, stops cleanly (exit
/// 0) instead of being killed by the signal: the handlers must be in place before the line that
/// says it is ready. Twenty times, since the window is short.
#[tokio::test]
async fn a_server_stopped_right_after_its_listening_line_exits_cleanly() {
    for _ in 0..20 {
        let mut server = spawn_server(&[]);
        server.sigterm();
    }
}
