//! Every source format's fixture (tests/fixtures/import), over the API and offline: exactly the links it describes, its malformed row rejected, a re-run importing nothing.

use super::*;

/// A fixture of tests/fixtures/import and what importing it must give.
struct Fixture {
    file: &'static str,
    format: &'static str,
    links: Vec<Expected>,
    /// The rows not imported: source line (or record number) and a part of the reason.
    rejected: Vec<(u64, &'static str)>,
}

/// Where the links go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `--server`: over the API of a running server.
    Api,
    /// `--database`: into the store of a stopped server.
    Offline,
}

/// Imports a copy of the fixture (so that the rejected file is written beside the copy) into a
/// new server: the summary, the rejected file, the links field by field; then the same command
/// again imports nothing.
async fn check_fixture(fixture: Fixture, mode: Mode) {
    let what = format!("{} (--from {}, {mode:?})", fixture.file, fixture.format);
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(fixture.file);
    let user = User::new();
    let file = user.path(fixture.file);
    std::fs::copy(&source, &file).unwrap_or_else(|e| panic!("copy {}: {e}", source.display()));
    let mut server = spawn_server(&[]);
    let database = server.database.clone();
    if mode == Mode::Offline {
        // A server that has served (see the test of a SIGTERM right after the listening line).
        server.assert_alive().await;
        server.sigterm();
    }
    let import = || match mode {
        Mode::Api => user.import(&server, fixture.format, &file, &[]),
        Mode::Offline => user.import_offline(&database, fixture.format, &file, &[]),
    };
    let imported = fixture.links.len() as u64;
    let rejected = fixture.rejected.len() as u64;

    let started = now();
    let first = import();
    let finished = now();
    assert_eq!(first.code(), Some(0), "{what}: {}", first.context());
    first.summary(imported, 0, 0, rejected);
    assert!(
        !beside(&file, "import-checkpoint").exists(),
        "{what}: no checkpoint left"
    );
    let check_rejected = |run: &Run| {
        if fixture.rejected.is_empty() {
            assert!(
                !beside(&file, "rejected.csv").exists(),
                "{what}: no rejected file when nothing is rejected; {}",
                run.context()
            );
            return;
        }
        let rows = rejected_rows(&beside(&file, "rejected.csv"));
        let lines: Vec<u64> = rows
            .iter()
            .map(|r| r["line"].parse().expect("a line number"))
            .collect();
        let want: Vec<u64> = fixture.rejected.iter().map(|(line, _)| *line).collect();
        assert_eq!(
            lines,
            want,
            "{what}: the lines of the rejected file {rows:#?}; {}",
            run.context()
        );
        for (row, (_, reason)) in rows.iter().zip(&fixture.rejected) {
            assert_eq!(row["status"], "rejected", "{what}: {row:?}");
            assert!(
                row["reason"].contains(reason),
                "{what}: the reason should say {reason:?}: {row:?}"
            );
        }
    };
    check_rejected(&first);

    // The same command again: nothing new (rows without a code included), the same rejects.
    let again = import();
    assert_eq!(again.code(), Some(0), "{what}: {}", again.context());
    again.summary(0, imported, 0, rejected);
    check_rejected(&again);

    let server = match mode {
        Mode::Api => server,
        Mode::Offline => server.restart(&[]),
    };
    assert_links(&server, &fixture.links, (started, finished), &what).await;
}

/// The reason a code with letters outside A-Z a-z 0-9 _ - is refused.
const CODE_CHARSET: &str = "code may contain only";
/// The reason `docs` (a route of the server: the API documentation) is refused as a code.
const RESERVED: &str = "code \"docs\" is reserved";

fn tsv_fixture() -> Fixture {
    Fixture {
        file: "links.tsv",
        format: "tsv",
        links: vec![
            random("https://example.com/no-code"),
            coded("spring", "https://example.com/spring?utm_source=mail&x=1,2"),
        ],
        rejected: vec![
            (2, RESERVED),
            (3, CODE_CHARSET),
            (6, "expected CODE<TAB>URL"),
        ],
    }
}

fn csv_fixture() -> Fixture {
    Fixture {
        file: "links.csv",
        format: "csv",
        links: vec![
            Expected {
                title: Some("Spring sale, 50% off: \"today only\""),
                tags: &["sales", "seasonal"],
                expires_at: Some("2026-06-30T00:00:00Z"),
                max_clicks: Some(100),
                created_at: Some("2026-01-02T03:04:05Z"),
                imported_clicks: 1204,
                ..coded("spring", "https://shop.example.com/spring")
            },
            Expected {
                title: Some("=HYPERLINK(\"https://evil.example/\",\"click me\")"),
                tags: &["@team", "ops"],
                created_at: Some("2025-12-31T22:30:00Z"),
                ..coded("-report", "https://example.com/report")
            },
            Expected {
                title: Some("Two\nlines"),
                max_clicks: Some(5),
                imported_clicks: 7,
                ..random("https://example.com/two")
            },
        ],
        rejected: vec![
            (4, CODE_CHARSET),
            (7, "created_at: \"yesterday\" is not an RFC 3339 timestamp"),
            (8, "max_clicks: must be at least 1"),
            (9, "expected 9 fields"),
            (10, "missing url"),
        ],
    }
}

fn shlink_csv_fixture() -> Fixture {
    Fixture {
        file: "shlink.csv",
        format: "shlink",
        links: vec![Expected {
            tags: &["sales", "q2"],
            created_at: Some("2023-04-03T14:15:00Z"),
            imported_clicks: 1000,
            ..coded("promo", "https://example.com/promo?a=1&b=2")
        }],
        rejected: vec![
            (2, RESERVED),
            (3, CODE_CHARSET),
            (5, "visits: \"many\" is not a non-negative integer"),
            (6, "missing longUrl"),
        ],
    }
}

fn shlink_api_fixture() -> Fixture {
    Fixture {
        file: "shlink-api.json",
        format: "shlink",
        links: vec![
            Expected {
                title: Some("Welcome to \"Steam\", the store"),
                tags: &["games", "tech"],
                expires_at: Some("2030-01-01T00:00:00Z"),
                max_clicks: Some(100),
                created_at: Some("2016-08-21T18:34:16Z"),
                imported_clicks: 328,
                ..coded("12C18", "https://store.example.com/games?ref=a,b")
            },
            Expected {
                tags: &["legacy"],
                created_at: Some("2015-10-01T18:34:16Z"),
                imported_clicks: 25,
                ..coded("123bA", "https://www.example.org/")
            },
        ],
        rejected: vec![
            (2, CODE_CHARSET),
            (4, "dateCreated: \"yesterday\" is not a date"),
            (5, "missing longUrl"),
        ],
    }
}

fn yourls_fixture() -> Fixture {
    Fixture {
        file: "yourls.csv",
        format: "yourls",
        links: vec![
            Expected {
                title: Some("ozh.org"),
                created_at: Some("2009-10-01T12:00:00Z"),
                imported_clicks: 12,
                ..coded("ozh", "https://ozh.org/")
            },
            Expected {
                title: Some("YOURLS: Your Own URL Shortener, \"the\" original"),
                created_at: Some("2009-10-01T12:00:01Z"),
                imported_clicks: 1024,
                ..coded("yourls", "https://yourls.org/")
            },
            Expected {
                created_at: Some("2024-01-01T00:00:00Z"),
                imported_clicks: 5,
                ..coded("notitle", "https://example.com/none")
            },
        ],
        rejected: vec![
            (4, CODE_CHARSET),
            (6, "timestamp: \"2024-02-30 10:00:00\" is not a date"),
            (7, "clicks: \"-3\" is not a non-negative integer"),
        ],
    }
}

fn yourls_headerless_fixture() -> Fixture {
    Fixture {
        file: "yourls-phpmyadmin.csv",
        format: "yourls",
        links: vec![
            Expected {
                title: Some("ozh.org"),
                created_at: Some("2009-10-01T12:00:00Z"),
                imported_clicks: 12,
                ..coded("ozh", "https://ozh.org/")
            },
            Expected {
                title: Some("Title with \"quotes\", and a comma"),
                created_at: Some("2020-05-05T05:05:05Z"),
                imported_clicks: 7,
                ..coded("multi", "https://example.com/a")
            },
        ],
        rejected: vec![(3, CODE_CHARSET), (4, "expected 6 fields")],
    }
}

fn kutt_fixture() -> Fixture {
    Fixture {
        file: "kutt.json",
        format: "kutt",
        links: vec![Expected {
            expires_at: Some("2026-07-01T12:00:00Z"),
            created_at: Some("2024-03-03T00:00:00Z"),
            imported_clicks: 3,
            ..coded("sqlite", "https://example.com/sqlite?a=1&b=2")
        }],
        rejected: vec![
            (1, RESERVED),
            (2, CODE_CHARSET),
            (4, "password-protected in Kutt"),
            (5, "banned in Kutt"),
            (6, "visit_count: \"lots\" is not a non-negative integer"),
        ],
    }
}

fn kutt_pages_fixture() -> Fixture {
    Fixture {
        file: "kutt-pages.jsonl",
        format: "kutt",
        links: vec![
            Expected {
                title: Some("First, page one"),
                created_at: Some("2024-04-01T00:00:00Z"),
                imported_clicks: 1,
                ..coded("one", "https://example.com/1")
            },
            Expected {
                created_at: Some("2024-04-02T00:00:00Z"),
                imported_clicks: 2,
                ..coded("two", "https://example.com/2")
            },
            Expected {
                title: Some("A lone link object"),
                created_at: Some("2024-04-03T00:00:00Z"),
                imported_clicks: 3,
                ..coded("three", "https://example.com/3")
            },
        ],
        rejected: vec![],
    }
}

fn bitly_csv_fixture() -> Fixture {
    Fixture {
        file: "bitly.csv",
        format: "bitly",
        links: vec![
            Expected {
                title: Some("Spring sale, \"50%\" off"),
                tags: &["sales", "seasonal"],
                created_at: Some("2024-01-02T03:04:05Z"),
                imported_clicks: 1204,
                ..coded("spring", "https://shop.example.com/spring?utm_source=bitly")
            },
            Expected {
                title: Some("Café ☕"),
                created_at: Some("2024-02-03T04:05:06Z"),
                ..coded("4xyZ", "https://example.com/caf%C3%A9")
            },
            Expected {
                tags: &["misc"],
                created_at: Some("2024-03-04T00:00:00Z"),
                imported_clicks: 17,
                ..coded("5noTitle", "https://example.com/untitled")
            },
        ],
        rejected: vec![
            (5, "missing long URL"),
            (6, "clicks: \"n/a\" is not a non-negative integer"),
        ],
    }
}

fn bitly_api_fixture() -> Fixture {
    Fixture {
        file: "bitly-api.json",
        format: "bitly",
        links: vec![
            Expected {
                title: Some("Spring sale, \"50%\" off"),
                tags: &["sales", "seasonal"],
                created_at: Some("2024-01-02T03:04:05Z"),
                ..coded("spring", "https://shop.example.com/spring?utm_source=bitly")
            },
            Expected {
                title: Some("Café ☕"),
                created_at: Some("2024-02-03T04:05:06Z"),
                ..coded("4xyZ", "https://example.com/caf%C3%A9")
            },
        ],
        rejected: vec![
            (3, "missing long_url"),
            (4, "created_at: \"2024-13-01T00:00:00+0000\" is not a date"),
        ],
    }
}

/// One test over the API and one offline for each fixture.
macro_rules! fixture_tests {
    ($($api:ident, $offline:ident: $fixture:expr;)*) => {$(
        #[tokio::test]
        async fn $api() {
            check_fixture($fixture, Mode::Api).await;
        }

        #[tokio::test]
        async fn $offline() {
            check_fixture($fixture, Mode::Offline).await;
        }
    )*};
}

fixture_tests! {
    tsv_fixture_over_the_api, tsv_fixture_offline: tsv_fixture();
    csv_fixture_over_the_api, csv_fixture_offline: csv_fixture();
    shlink_csv_fixture_over_the_api, shlink_csv_fixture_offline: shlink_csv_fixture();
    shlink_api_fixture_over_the_api, shlink_api_fixture_offline: shlink_api_fixture();
    yourls_fixture_over_the_api, yourls_fixture_offline: yourls_fixture();
    yourls_headerless_fixture_over_the_api, yourls_headerless_fixture_offline:
        yourls_headerless_fixture();
    kutt_fixture_over_the_api, kutt_fixture_offline: kutt_fixture();
    kutt_pages_fixture_over_the_api, kutt_pages_fixture_offline: kutt_pages_fixture();
    bitly_csv_fixture_over_the_api, bitly_csv_fixture_offline: bitly_csv_fixture();
    bitly_api_fixture_over_the_api, bitly_api_fixture_offline: bitly_api_fixture();
}
