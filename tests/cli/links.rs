//! `snip link create|edit|disable|enable|rm|list`: what each prints and what it changes.

use super::*;

/// `link create` prints exactly the short URL (or the link object with `--json`/`--jsonl`),
/// every flag reaches the link (code, title, tags, `--expires 30d` as now + 30 days, an
/// RFC 3339 `--expires` as given, max clicks), and `link show` / `link list` (table, `--json`,
/// `--jsonl`, `--search`, `--tag`, `--limit`) find what was created.
#[tokio::test]
async fn link_create_prints_the_short_url_and_show_and_list_find_the_links() {
    let server = start_server(&[]);
    let sandbox = Sandbox::new();
    let cli = sandbox.remote(&server);
    let base = &server.base;

    let created = cli.run(&[
        "link",
        "create",
        "https://example.com/docs",
        "--code",
        "docs1",
        "--title",
        "The docs",
        "--tag",
        "a",
        "--tag",
        "b",
        "--expires",
        "30d",
        "--max-clicks",
        "5",
    ]);
    assert_eq!(
        created.ok(),
        format!("{base}/docs1\n"),
        "{}",
        created.context()
    );

    let random = cli
        .run(&["link", "create", "https://example.com/random", "--json"])
        .json();
    let random_code = common::code_of(&random);
    assert!(!random_code.is_empty(), "{random}");
    assert_eq!(random["short_url"], format!("{base}/{random_code}"));
    assert_eq!(random["url"], "https://example.com/random");
    assert_eq!(random["title"], Value::Null);
    assert_eq!(random["tags"], json!([]));
    assert_eq!(random["expires_at"], Value::Null);
    assert_eq!(random["max_clicks"], Value::Null);
    assert_eq!(random["disabled"], false);
    for stamp in ["created_at", "updated_at"] {
        let text = random[stamp].as_str().unwrap_or_default();
        assert!(
            chrono::DateTime::parse_from_rfc3339(text).is_ok(),
            "{stamp} is RFC 3339: {random}"
        );
    }

    let fixed = cli.run(&[
        "link",
        "create",
        "https://example.com/fixed",
        "--code",
        "fixed1",
        "--expires",
        "2035-01-02T03:04:05Z",
        "--jsonl",
    ]);
    let lines = fixed.json_lines();
    assert_eq!(lines.len(), 1, "--jsonl is one line: {}", fixed.context());
    assert_eq!(lines[0]["code"], "fixed1");
    assert_eq!(lines[0]["expires_at"], "2035-01-02T03:04:05Z");

    // Show: JSON with every field, and the human view.
    let docs = cli.run(&["link", "show", "docs1", "--json"]).json();
    assert_eq!(docs["code"], "docs1");
    assert_eq!(docs["short_url"], format!("{base}/docs1"));
    assert_eq!(docs["url"], "https://example.com/docs");
    assert_eq!(docs["title"], "The docs");
    assert_eq!(docs["tags"], json!(["a", "b"]));
    assert_eq!(docs["max_clicks"], 5);
    assert_eq!(docs["disabled"], false);
    let expires = chrono::DateTime::parse_from_rfc3339(docs["expires_at"].as_str().unwrap())
        .expect("expires_at is RFC 3339");
    let in_30_days = chrono::Utc::now() + chrono::Duration::days(30);
    let off = (expires.with_timezone(&chrono::Utc) - in_30_days)
        .num_seconds()
        .abs();
    assert!(off < 3600, "--expires 30d is now + 30 days: {docs}");

    let human = cli.run(&["link", "show", "docs1"]);
    let details = human.ok();
    for (name, value) in [
        ("short url", format!("{base}/docs1")),
        ("url", "https://example.com/docs".to_owned()),
        ("title", "The docs".to_owned()),
        ("tags", "a, b".to_owned()),
        ("max clicks", "5".to_owned()),
        ("state", "active".to_owned()),
    ] {
        assert_eq!(
            field(details, name),
            Some(value.as_str()),
            "field {name}: {}",
            human.context()
        );
    }

    // List: a table, one JSON array, JSON lines, and the filters.
    let table = cli.run(&["link", "list"]);
    let text = table.ok();
    let header = text.lines().next().unwrap_or_default();
    assert!(
        header.contains("code") && header.contains("url") && header.contains("state"),
        "{}",
        table.context()
    );
    for code in ["docs1", "fixed1", random_code.as_str()] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().next() == Some(code)),
            "{code} in the table: {}",
            table.context()
        );
    }

    let all = cli.run(&["link", "list", "--json"]).json();
    let mut listed = codes(&all);
    listed.sort();
    let mut expected = vec!["docs1".to_owned(), "fixed1".to_owned(), random_code.clone()];
    expected.sort();
    assert_eq!(listed, expected);
    let first = all[0].as_object().expect("link objects");
    for member in [
        "code",
        "short_url",
        "url",
        "title",
        "tags",
        "created_at",
        "updated_at",
        "expires_at",
        "max_clicks",
        "disabled",
    ] {
        assert!(first.contains_key(member), "{member} in {all}");
    }

    let lines = cli.run(&["link", "list", "--jsonl"]).json_lines();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        Value::Array(lines),
        all,
        "--jsonl has the objects of --json"
    );

    let two = cli.run(&["link", "list", "--limit", "2", "--json"]).json();
    assert_eq!(
        codes(&two),
        codes(&all)[..2].to_vec(),
        "--limit 2: the first two"
    );

    let found = cli
        .run(&["link", "list", "--search", "docs", "--json"])
        .json();
    assert_eq!(codes(&found), ["docs1"]);
    let tagged = cli.run(&["link", "list", "--tag", "b", "--json"]).json();
    assert_eq!(codes(&tagged), ["docs1"]);
    let none = cli
        .run(&["link", "list", "--search", "nothing-like-this", "--json"])
        .json();
    assert_eq!(none, json!([]));
}

/// `link edit` changes each field (url, title, tags, expiry, max clicks) and prints the link
/// (JSON or the human view), each `--no-*` flag clears its field, and contradictory or
/// malformed flags are usage errors (exit 2).
#[tokio::test]
async fn link_edit_sets_and_clears_each_field() {
    let server = start_server(&[]);
    let sandbox = Sandbox::new();
    let cli = sandbox.remote(&server);
    cli.run(&[
        "link",
        "create",
        "https://example.com/before",
        "--code",
        "edit1",
        "--title",
        "Before",
        "--tag",
        "x",
        "--expires",
        "30d",
        "--max-clicks",
        "5",
    ])
    .ok();

    let edited = cli
        .run(&[
            "link",
            "edit",
            "edit1",
            "--url",
            "https://example.org/after",
            "--title",
            "After",
            "--tag",
            "p",
            "--tag",
            "q",
            "--expires",
            "2035-06-01T00:00:00Z",
            "--max-clicks",
            "9",
            "--json",
        ])
        .json();
    assert_eq!(edited["code"], "edit1");
    assert_eq!(edited["url"], "https://example.org/after");
    assert_eq!(edited["title"], "After");
    assert_eq!(edited["tags"], json!(["p", "q"]));
    assert_eq!(edited["expires_at"], "2035-06-01T00:00:00Z");
    assert_eq!(edited["max_clicks"], 9);
    assert_eq!(
        cli.run(&["link", "show", "edit1", "--json"]).json(),
        edited,
        "show sees the edit"
    );

    // An edit of one field leaves the others; the human view shows the link.
    let human = cli.run(&["link", "edit", "edit1", "--title", "Again"]);
    assert_eq!(
        field(human.ok(), "title"),
        Some("Again"),
        "{}",
        human.context()
    );
    assert_eq!(
        field(human.ok(), "url"),
        Some("https://example.org/after"),
        "{}",
        human.context()
    );

    let cleared = cli
        .run(&[
            "link",
            "edit",
            "edit1",
            "--no-title",
            "--no-tags",
            "--no-expiry",
            "--no-max-clicks",
            "--json",
        ])
        .json();
    assert_eq!(cleared["title"], Value::Null);
    assert_eq!(cleared["tags"], json!([]));
    assert_eq!(cleared["expires_at"], Value::Null);
    assert_eq!(cleared["max_clicks"], Value::Null);
    assert_eq!(cleared["url"], "https://example.org/after", "url kept");

    for args in [
        &["link", "edit", "edit1", "--title", "X", "--no-title"][..],
        &["link", "edit", "edit1", "--tag", "t", "--no-tags"],
        &["link", "edit", "edit1", "--expires", "1d", "--no-expiry"],
        &["link", "edit", "edit1", "--expires", "someday"],
        &["link", "edit", "edit1", "--max-clicks", "many"],
    ] {
        cli.run(args).exits(2);
    }
    assert_eq!(
        cli.run(&["link", "show", "edit1", "--json"]).json(),
        cleared,
        "refused edits changed nothing"
    );
}

/// `link disable` makes the short link answer 410 and `enable` brings the redirect back
/// (human message on stderr, `--json` the link); `link rm` deletes it: `show` and a second
/// `rm` exit 4, and the code is never reissued (`create --code` exits 5).
#[tokio::test]
async fn link_disable_enable_and_rm() {
    let server = start_server(&[]);
    let sandbox = Sandbox::new();
    let cli = sandbox.remote(&server);
    cli.run(&[
        "link",
        "create",
        "https://example.com/toggle",
        "--code",
        "tog1",
    ])
    .ok();
    assert_eq!(server.visit("tog1").await.status(), StatusCode::FOUND);

    let disabled = cli.run(&["link", "disable", "tog1"]);
    disabled.ok();
    disabled.says("tog1 is disabled");
    assert_eq!(server.visit("tog1").await.status(), StatusCode::GONE);
    let shown = cli.run(&["link", "show", "tog1"]);
    assert_eq!(field(shown.ok(), "state"), Some("disabled"));
    assert_eq!(
        cli.run(&["link", "show", "tog1", "--json"]).json()["disabled"],
        true
    );

    let enabled = cli.run(&["link", "enable", "tog1", "--json"]).json();
    assert_eq!(enabled["disabled"], false);
    assert_eq!(enabled["code"], "tog1");
    assert_eq!(server.visit("tog1").await.status(), StatusCode::FOUND);

    let removed = cli.run(&["link", "rm", "tog1"]);
    assert_eq!(removed.ok(), "", "rm prints nothing on stdout");
    removed.says("deleted tog1");
    cli.run(&["link", "show", "tog1"]).problem(4, "not_found");
    assert_ne!(server.visit("tog1").await.status(), StatusCode::FOUND);
    cli.run(&["link", "rm", "tog1"]).problem(4, "not_found");
    cli.run(&[
        "link",
        "create",
        "https://example.com/again",
        "--code",
        "tog1",
    ])
    .problem(5, "code_taken");

    // `rm --json` says what was deleted, as JSON.
    cli.run(&["link", "create", "https://example.com/x", "--code", "tog2"])
        .ok();
    let gone = cli.run(&["link", "rm", "tog2", "--json"]).json();
    assert_eq!(gone, json!({"deleted": "tog2"}));
}

/// `link list` follows the API's cursors: `--limit 0` returns every one of 1,200 links (more
/// than one page of 1,000) as one JSON array or as JSON lines, a limit past a page boundary
/// returns exactly that many, and the default is 50.
#[tokio::test]
async fn link_list_follows_the_cursors_past_one_page() {
    let server = start_server(&[]);
    let imported = import_bulk(&server, 1_200).await;
    let sandbox = Sandbox::new();
    let cli = sandbox.remote(&server);

    let all = cli.run(&["link", "list", "--limit", "0", "--json"]).json();
    let mut listed = codes(&all);
    assert_eq!(listed.len(), 1_200, "--limit 0 lists every link");
    listed.sort();
    listed.dedup();
    assert_eq!(listed, imported, "each link once");

    let lines = cli
        .run(&["link", "list", "--limit", "0", "--jsonl"])
        .json_lines();
    assert_eq!(lines.len(), 1_200, "--jsonl --limit 0: a line per link");

    let some = cli
        .run(&["link", "list", "--limit", "1100", "--jsonl"])
        .json_lines();
    assert_eq!(some.len(), 1_100, "--limit 1100 crosses a page");
    let mut unique: Vec<String> = some.iter().map(common::code_of).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 1_100, "no link twice across pages");

    let table = cli.run(&["link", "list"]);
    let rows = table.ok().lines().filter(|l| l.contains("bulk-")).count();
    assert_eq!(rows, 50, "the default limit: {}", table.context());

    let found = cli
        .run(&[
            "link",
            "list",
            "--search",
            "bulk-0119",
            "--limit",
            "0",
            "--json",
        ])
        .json();
    assert_eq!(codes(&found).len(), 10, "bulk-01190 … bulk-01199: {found}");
}

/// A reader that stops early (`snip link list --jsonl | head -1`) does not make `snip` panic:
/// a closed stdout ends the command without a Rust panic message and without exit 101.
#[tokio::test]
async fn link_list_into_a_closed_pipe_does_not_panic() {
    let server = start_server(&[]);
    // 1,200 links as JSON lines are several times what a pipe buffers, so the command is
    // still writing when the reader goes away.
    import_bulk(&server, 1_200).await;
    let sandbox = Sandbox::new();
    let mut cmd = sandbox.command(SNIP);
    cmd.args(["link", "list", "--limit", "0", "--jsonl"])
        .args(["--server", &server.base, "--key", &server.admin_key])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn snip");
    let stderr = read_all(child.stderr.take().expect("stderr is piped"));
    {
        let mut reader = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut first = String::new();
        reader.read_line(&mut first).expect("read the first line");
        let link: Value = serde_json::from_str(&first).expect("the first line is a link");
        assert!(link["code"].is_string(), "{first}");
        // Dropping the reader closes the pipe, like `head -1` exiting.
    }
    let status = common::wait_within(&mut child, RUN_BOUND, "snip link list into a closed pipe");
    let stderr = String::from_utf8_lossy(&stderr.join().expect("stderr reader")).into_owned();
    assert!(
        !stderr.contains("panicked") && status.code() != Some(101),
        "a closed stdout must not panic snip: {status}; stderr:\n{}",
        stderr.chars().take(2000).collect::<String>()
    );
}
