//! Collisions, `--strict`, rows without a code, `--jsonl` output.

use super::*;

/// A code that exists with another destination is "taken": counted, written to the rejected
/// file with the reason, and the existing link is left as it was; the other rows import.
#[tokio::test]
async fn a_code_of_another_destination_is_reported_as_taken_with_the_reason() {
    let started = now();
    let server = spawn_server(&[]);
    let user = User::new();
    let existing = server
        .new_link(json!({"url": "https://other.example/mine", "code": "beta", "title": "Mine"}))
        .await;
    let file = user.file("links.csv", SMALL_CSV);

    let run = user.import(&server, "csv", &file, &[]);
    run.ok();
    run.summary(2, 0, 1, 0);
    let rejected = rejected_rows(&beside(&file, "rejected.csv"));
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    let row = &rejected[0];
    assert_eq!(row["line"], "3", "the source line of beta: {row:?}");
    assert_eq!(row["status"], "taken", "{row:?}");
    assert_eq!(row["code"], "beta", "{row:?}");
    assert_eq!(row["url"], "https://example.com/beta", "{row:?}");
    assert!(
        row["reason"].contains("taken by another destination"),
        "the reason says why: {row:?}"
    );
    assert!(
        run.stderr()
            .contains(&beside(&file, "rejected.csv").display().to_string()),
        "stderr names the rejected file: {}",
        run.context()
    );
    assert_eq!(
        must_link(&server, "beta").await,
        existing,
        "beta is untouched"
    );
    assert_eq!(clicks(&server, "beta").await, (0, 0));
    let mut expected = small_expected();
    expected[1] = Expected {
        title: Some("Mine"),
        ..coded("beta", "https://other.example/mine")
    };
    assert_links(&server, &expected, (started, now()), "after the import").await;

    // The same again: nothing new, the collision reported again.
    let again = user.import(&server, "csv", &file, &["--json"]).json();
    assert_eq!(
        again,
        json!({
            "complete": true, "rows": 3, "imported": 0, "present": 2, "taken": 1, "rejected": 0,
            "rejected_file": beside(&file, "rejected.csv").display().to_string(),
        })
    );
}

/// `--strict` checks every row first: one bad row and nothing is imported (exit 1), the bad
/// row is in the rejected file; without the bad row the same file imports.
#[tokio::test]
async fn strict_imports_nothing_when_a_row_is_bad() {
    let server = spawn_server(&[]);
    let user = User::new();
    let file = user.file(
        "links.csv",
        &format!("{SMALL_CSV}bad,javascript:alert(1),Bad,,,\n"),
    );
    let run = user.import(&server, "csv", &file, &["--strict"]);
    assert_eq!(run.code(), Some(1), "{}", run.context());
    assert!(
        !run.stdout().contains("imported 3"),
        "nothing is reported imported: {}",
        run.context()
    );
    assert!(all_links(&server).await.is_empty(), "no link was created");
    let rejected = rejected_rows(&beside(&file, "rejected.csv"));
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["line"], "5", "{rejected:?}");
    assert_eq!(rejected[0]["status"], "rejected", "{rejected:?}");
    assert!(!rejected[0]["reason"].is_empty(), "{rejected:?}");
    assert!(
        !beside(&file, "import-checkpoint").exists(),
        "no checkpoint: nothing was started"
    );

    // Without --strict the good rows go in and the bad one is reported.
    let run = user.import(&server, "csv", &file, &[]);
    run.ok();
    run.summary(3, 0, 0, 1);
    assert_links(
        &server,
        &small_expected(),
        (0, 0),
        "after the import without --strict",
    )
    .await;

    // And a clean file with --strict imports (here: everything present already).
    let clean = user.file("clean.csv", SMALL_CSV);
    let run = user.import(&server, "csv", &clean, &["--strict"]);
    run.ok();
    run.summary(0, 3, 0, 0);
}

/// A row without a code gets a random one; the client sends an idempotency key derived from
/// the row, so a re-run (over the API or offline) finds the same link instead of creating a
/// second one.
#[tokio::test]
async fn rows_without_a_code_get_a_random_code_once() {
    let server = spawn_server(&[]);
    let user = User::new();
    let file = user.file(
        "nocode.csv",
        "url,title\n\
         https://example.com/one,One\n\
         https://example.com/two,Two\n\
         https://example.com/one,One again\n",
    );
    let codes_of = |run: &Run| -> Vec<(u64, String, String)> {
        // The results (the plain summary line, also printed, is tested elsewhere).
        run.ok()
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| {
                let v: Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("--jsonl line {l:?}: {e}: {}", run.context()));
                (
                    v["line"].as_u64().expect("line"),
                    v["status"].as_str().expect("status").to_string(),
                    v["code"].as_str().expect("code").to_string(),
                )
            })
            .collect()
    };
    let first = codes_of(&user.import(&server, "csv", &file, &["--jsonl"]));
    assert_eq!(first.len(), 3, "{first:?}");
    assert!(first.iter().all(|(_, s, _)| s == "imported"), "{first:?}");
    assert_eq!(
        first.iter().map(|(l, _, _)| *l).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    let again = codes_of(&user.import(&server, "csv", &file, &["--jsonl"]));
    assert!(again.iter().all(|(_, s, _)| s == "present"), "{again:?}");
    assert_eq!(
        first.iter().map(|(l, _, c)| (l, c)).collect::<Vec<_>>(),
        again.iter().map(|(l, _, c)| (l, c)).collect::<Vec<_>>(),
        "the same codes"
    );
    let links = all_links(&server).await;
    assert_eq!(links.len(), 3, "three links, each created once: {links:?}");
    for (i, (_, _, code)) in first.iter().enumerate() {
        let link = must_link(&server, code).await;
        let (url, title) = [
            ("https://example.com/one", "One"),
            ("https://example.com/two", "Two"),
            ("https://example.com/one", "One again"),
        ][i];
        assert_eq!(
            (link["url"].as_str(), link["title"].as_str()),
            (Some(url), Some(title))
        );
    }

    // The plain summary says the same.
    let run = user.import(&server, "csv", &file, &[]);
    run.summary(0, 3, 0, 0);
}

/// `--jsonl` ("one JSON object per line"): stdout is JSON lines only, one per source row with
/// its line, status, code and reason, so that a script can read every line as JSON.
#[tokio::test]
async fn jsonl_output_is_one_json_object_per_line() {
    let server = spawn_server(&[]);
    let user = User::new();
    server
        .new_link(json!({"url": "https://other.example/mine", "code": "beta"}))
        .await;
    let file = user.file(
        "links.csv",
        &format!("{SMALL_CSV}bad,javascript:alert(1),Bad,,,\n"),
    );
    let run = user.import(&server, "csv", &file, &["--jsonl"]);
    let stdout = run.ok();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!(
                    "a stdout line of --jsonl is not JSON ({e}): {l:?}\n{}",
                    run.context()
                )
            })
        })
        .collect();
    let rows: Vec<(u64, &str, &str)> = lines
        .iter()
        .filter(|v| v.get("line").is_some())
        .map(|v| {
            (
                v["line"].as_u64().unwrap(),
                v["status"].as_str().unwrap(),
                v["code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (2, "imported", "alpha"),
            (3, "taken", "beta"),
            (4, "imported", "gamma"),
            (5, "rejected", "bad")
        ],
        "{}",
        run.context()
    );
}
