//! Export → import round trips: the same links, awkward cells and tags kept, JSON lines as the API's link objects.

use super::*;

/// Links with every field (titles a spreadsheet would run as a formula included) and clicks,
/// exported with `--with-stats`, import into a new server as the same links: the new server's
/// export is byte for byte the first one, every link object is the same field by field, and
/// the clicks arrive as `imported_clicks`.
#[tokio::test]
async fn export_then_import_into_a_new_server_round_trips() {
    let source = spawn_server(&["--click-flush-interval", "50ms"]);
    let user = User::new();
    let expires = common::rfc3339_from_now(chrono::Duration::days(30));
    let bodies = [
        json!({"url": "https://example.com/plain", "code": "plain"}),
        json!({"url": "https://example.com/formula?a=1&b=2", "code": "formula",
               "title": "=HYPERLINK(\"http://evil.example\",\"x\")", "tags": ["=tag", "ok"]}),
        json!({"url": "https://example.com/plus", "title": "+1 plus", "tags": ["+p"]}),
        json!({"url": "https://example.com/at", "code": "at-sign", "title": "@mention"}),
        json!({"url": "https://example.com/minus", "code": "minus", "title": "-1 minus"}),
        json!({"url": "https://example.com/every", "code": "every",
               "title": "Every field, \"quoted\", with a comma", "tags": ["a", "b c", "Café"],
               "expires_at": expires, "max_clicks": 100}),
        json!({"url": "https://example.com/unicode/%E2%98%95", "title": "Kaffee ☕ — 東京",
               "max_clicks": 5}),
    ];
    let mut codes = Vec::new();
    for body in bodies {
        codes.push(common::code_of(&source.new_link(body).await));
    }
    // Clicks: 3 on "every", 1 on "minus"; wait until the stats have them.
    for (code, n) in [("every", 3), ("minus", 1)] {
        for _ in 0..n {
            let resp = source.visit(code).await;
            assert!(resp.status().is_redirection(), "visit {code}");
        }
        assert_eq!(source.wait_for_total_clicks(code, n).await, n, "{code}");
    }

    let first = user.export(&source, "first.csv", &["--with-stats"]);
    let mut lines = first.lines();
    assert_eq!(
        lines.next(),
        Some("code,url,title,tags,expires_at,max_clicks,created_at,clicks")
    );
    assert_eq!(first.lines().count(), codes.len() + 1, "{first}");
    let records = csv_records(&first);
    // Oldest first.
    let exported_codes: Vec<&str> = records.iter().map(|r| r["code"].as_str()).collect();
    assert_eq!(exported_codes, codes, "oldest first");
    // Cells a spreadsheet would run as a formula get a leading quote; the others are as is.
    let cell = |code: &str, column: &str| -> String {
        records
            .iter()
            .find(|r| r["code"] == code)
            .unwrap_or_else(|| panic!("{code} in the export:\n{first}"))[column]
            .clone()
    };
    assert_eq!(
        cell("formula", "title"),
        "'=HYPERLINK(\"http://evil.example\",\"x\")"
    );
    assert_eq!(cell("formula", "tags"), "'=tag;ok");
    assert_eq!(cell(&codes[2], "title"), "'+1 plus");
    assert_eq!(cell(&codes[2], "tags"), "'+p");
    assert_eq!(cell("at-sign", "title"), "'@mention");
    assert_eq!(cell("minus", "title"), "'-1 minus");
    assert_eq!(
        cell("every", "title"),
        "Every field, \"quoted\", with a comma"
    );
    assert_eq!(cell("every", "tags"), "a;b c;Café");
    assert_eq!(cell("every", "max_clicks"), "100");
    assert_eq!(cell("every", "clicks"), "3");
    assert_eq!(cell("minus", "clicks"), "1");
    assert_eq!(cell("plain", "clicks"), "0");
    assert_eq!(
        cell("every", "expires_at"),
        must_link(&source, "every").await["expires_at"]
            .as_str()
            .unwrap()
    );

    let target = spawn_server(&[]);
    let file = user.path("first.csv");
    let run = user.import(&target, "csv", &file, &[]);
    run.ok();
    run.summary(codes.len() as u64, 0, 0, 0);
    assert!(!beside(&file, "rejected.csv").exists(), "nothing rejected");

    let second = user.export(&target, "second.csv", &["--with-stats"]);
    assert_eq!(second, first, "the new server exports the same file");

    for code in &codes {
        let a = must_link(&source, code).await;
        let b = must_link(&target, code).await;
        for field in [
            "code",
            "url",
            "title",
            "tags",
            "created_at",
            "expires_at",
            "max_clicks",
            "disabled",
        ] {
            assert_eq!(a[field], b[field], "{code}: {field}\n{a}\n{b}");
        }
        assert_eq!(
            b["short_url"],
            format!("{}/{code}", target.base),
            "{code}: short_url"
        );
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&a), keys(&b), "{code}: the same members");
        let (a_imported, a_total) = clicks(&source, code).await;
        let (b_imported, b_total) = clicks(&target, code).await;
        assert_eq!(a_imported, 0, "{code}");
        assert_eq!(
            (b_imported, b_total),
            (a_total, 0),
            "{code}: the clicks arrive as imported_clicks"
        );
    }
}

/// Creates `links` on a new server, exports them as CSV, imports the file into another new
/// server and asserts that every link came back with the same url, title and tags, and that
/// the second server exports the same file.
async fn assert_round_trip(links: &[Value]) {
    let source = spawn_server(&[]);
    let user = User::new();
    let mut codes = Vec::new();
    for body in links {
        codes.push(common::code_of(&source.new_link(body.clone()).await));
    }
    let first = user.export(&source, "first.csv", &[]);
    let target = spawn_server(&[]);
    let run = user.import(&target, "csv", &user.path("first.csv"), &[]);
    let mut broken = Vec::new();
    for code in &codes {
        let a = must_link(&source, code).await;
        match link(&target, code).await {
            None => broken.push(format!("{code}: not imported")),
            Some(b) => {
                for field in ["url", "title", "tags"] {
                    if a[field] != b[field] {
                        broken.push(format!(
                            "{code}: {field} {} came back as {}",
                            a[field], b[field]
                        ));
                    }
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "export → import changed links:\n{}\nthe export:\n{first}\nthe import: {}",
        broken.join("\n"),
        run.context()
    );
    run.ok();
    run.summary(codes.len() as u64, 0, 0, 0);
    let second = user.export(&target, "second.csv", &[]);
    assert_eq!(second, first, "the new server exports the same file");
}

/// Cells that are hard for a CSV round trip and that docs/import-formats.md says come back
/// identical: titles that themselves start with the quote the export adds to defuse formulas,
/// that start with TAB or CR, that have line breaks or surrounding spaces, and a code that
/// starts with `-`.
#[tokio::test]
async fn export_then_import_keeps_awkward_cells() {
    assert_round_trip(&[
        json!({"url": "https://example.com/q", "code": "quote", "title": "'tis the season"}),
        json!({"url": "https://example.com/qe", "code": "quoteeq", "title": "'=not a formula"}),
        json!({"url": "https://example.com/qq", "code": "quotes", "title": "''-twice"}),
        json!({"url": "https://example.com/tab", "code": "tabfirst", "title": "\tindented"}),
        json!({"url": "https://example.com/cr", "code": "crfirst", "title": "\rreturn"}),
        json!({"url": "https://example.com/l", "code": "lines", "title": "two\nlines\r\nand\ttab"}),
        json!({"url": "https://example.com/s", "code": "spaces", "title": "  padded  "}),
        json!({"url": "https://example.com/d", "code": "-dash", "title": "code starts with -"}),
        json!({"url": "https://example.com/e", "code": "-eq", "tags": ["-x", "=y"]}),
    ])
    .await;
}

/// Tags and titles that the API accepts and that the CSV cannot carry as they are: a tag with
/// `;` (the separator of the tags cell), tags with surrounding spaces (trimmed on import), a
/// title of spaces only (no title on import). `snip export` promises a file that imports back
/// identical, so these must survive too (or be refused when created).
#[tokio::test]
async fn export_then_import_keeps_tags_with_separators_or_spaces_and_blank_titles() {
    assert_round_trip(&[
        json!({"url": "https://example.com/ts", "code": "tagsemi", "tags": ["a;b", "c"]}),
        json!({"url": "https://example.com/t", "code": "tagspace", "tags": [" lead", "trail "]}),
        json!({"url": "https://example.com/b", "code": "blank", "title": "   "}),
    ])
    .await;
}

/// `snip export --format jsonl`: one link object per line, the same as the API's, oldest
/// first; with `--with-stats` each has `clicks` (imported ones included).
#[tokio::test]
async fn jsonl_export_lines_are_the_apis_link_objects() {
    let server = spawn_server(&["--click-flush-interval", "50ms"]);
    let user = User::new();
    let file = user.file("links.csv", SMALL_CSV);
    user.import(&server, "csv", &file, &[]).ok();
    let made = server
        .new_link(json!({"url": "https://example.com/made", "title": "=1+1", "tags": ["x"]}))
        .await;
    let made_code = common::code_of(&made);
    server.visit(&made_code).await;
    server.wait_for_total_clicks(&made_code, 1).await;

    let plain = user.export(&server, "links.jsonl", &["--format", "jsonl"]);
    let objects: Vec<Value> = plain
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let codes: Vec<String> = objects.iter().map(common::code_of).collect();
    // Imported links are ordered by when they were written here, not by their created_at.
    assert_eq!(codes, ["alpha", "beta", "gamma", made_code.as_str()]);
    for object in &objects {
        let code = common::code_of(object);
        assert_eq!(*object, must_link(&server, &code).await, "{code}");
    }
    assert_eq!(objects[3]["title"], "=1+1", "JSON lines are not defused");

    let with_stats = user.export(
        &server,
        "stats.jsonl",
        &["--format", "jsonl", "--with-stats"],
    );
    let totals: Vec<(String, u64)> = with_stats
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (common::code_of(&v), v["clicks"].as_u64().expect("clicks"))
        })
        .collect();
    assert_eq!(
        totals,
        [
            ("alpha".to_string(), 12),
            ("beta".to_string(), 0),
            ("gamma".to_string(), 7),
            (made_code.clone(), 1)
        ]
    );
}
