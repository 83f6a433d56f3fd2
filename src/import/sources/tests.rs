//! The readers against the fixtures of `tests/fixtures/import/`.

use super::*;

type Rows = Vec<Result<SourceRow, RowError>>;

fn read(format: SourceFormat, text: &'static str) -> Rows {
    rows(format, Box::new(Cursor::new(text.as_bytes())))
        .unwrap()
        .collect()
}

fn file_error(format: SourceFormat, text: &'static str) -> String {
    match rows(format, Box::new(Cursor::new(text.as_bytes()))) {
        Ok(_) => panic!("{text:?} is read as {}", format.name()),
        Err(e) => format!("{e:#}"),
    }
}

fn link(line: u64, code: &str, url: &str) -> SourceRow {
    SourceRow {
        line,
        code: Some(code.into()),
        url: url.into(),
        ..SourceRow::default()
    }
}

fn strings(all: &[&str]) -> Vec<String> {
    all.iter().map(|s| s.to_string()).collect()
}

fn error(line: u64, reason: &str, raw: &str) -> Result<SourceRow, RowError> {
    Err(RowError {
        line,
        reason: reason.into(),
        raw: raw.into(),
    })
}

/// A JSON row error, its `raw` compared as JSON (key order is serde_json's to choose).
fn assert_json_error(got: &Result<SourceRow, RowError>, line: u64, reason: &str, key: &str) {
    let e = got.as_ref().expect_err("a row error");
    assert_eq!((e.line, e.reason.as_str()), (line, reason));
    let raw: Value = serde_json::from_str(&e.raw).expect("raw is the link's JSON");
    assert!(raw.get(key).is_some(), "{raw}");
}

#[test]
fn formats_are_named_as_the_from_option_names_them() {
    for format in SourceFormat::ALL {
        assert_eq!(SourceFormat::parse(format.name()), Some(format));
    }
    assert_eq!(SourceFormat::parse(" YOURLS "), Some(SourceFormat::Yourls));
    assert_eq!(SourceFormat::parse("json"), None);
    let names: Vec<_> = SourceFormat::ALL.iter().map(|f| f.name()).collect();
    assert_eq!(names, ["tsv", "csv", "shlink", "yourls", "kutt", "bitly"]);
}

#[test]
fn tsv_lines_are_code_tab_url() {
    let got = read(
        SourceFormat::Tsv,
        include_str!("../../../tests/fixtures/import/links.tsv"),
    );
    let want = vec![
        Ok(link(2, "docs", "https://example.com/docs/")),
        Ok(link(3, "café", "https://example.com/caf%C3%A9?lang=fr")),
        Ok(SourceRow {
            code: None,
            ..link(5, "", "https://example.com/no-code")
        }),
        error(6, "expected CODE<TAB>URL", "this line has no tab"),
        Ok(link(
            7,
            "spring",
            "https://example.com/spring?utm_source=mail&x=1,2",
        )),
    ];
    assert_eq!(got, want);
}

#[test]
fn csv_columns_in_any_order_are_read_back() {
    let got = read(
        SourceFormat::Csv,
        include_str!("../../../tests/fixtures/import/links.csv"),
    );
    let want = vec![
        Ok(SourceRow {
            title: Some("Spring sale, 50% off: \"today only\"".into()),
            tags: strings(&["sales", "seasonal"]),
            expires_at: Some(1_782_777_600),
            max_clicks: Some(100),
            created_at: Some(1_767_323_045),
            visits: Some(1204),
            ..link(2, "spring", "https://shop.example.com/spring")
        }),
        Ok(SourceRow {
            title: Some("=HYPERLINK(\"https://evil.example/\",\"click me\")".into()),
            tags: strings(&["@team", "ops"]),
            created_at: Some(1_767_220_200),
            visits: Some(0),
            ..link(3, "-report", "https://example.com/report")
        }),
        Ok(SourceRow {
            title: Some("Café crème ☕".into()),
            created_at: Some(1_767_312_000),
            ..link(4, "café", "https://example.com/caf%C3%A9")
        }),
        Ok(SourceRow {
            code: None,
            title: Some("Two\nlines".into()),
            max_clicks: Some(5),
            visits: Some(7),
            ..link(5, "", "https://example.com/two")
        }),
        error(
            7,
            "created_at: \"yesterday\" is not an RFC 3339 timestamp (2026-01-02T03:04:05Z) \
             or a date (2026-01-02)",
            "Broken date,https://example.com/broken,broken,,,yesterday,,,",
        ),
        error(
            8,
            "max_clicks: must be at least 1",
            "Zero limit,https://example.com/zero,zero,,,,,0,",
        ),
        error(
            9,
            "expected 9 fields (as many as the header has), found 3",
            "Short row,https://example.com/short,short",
        ),
        error(10, "missing url", ",,nourl,,,,,,"),
    ];
    assert_eq!(got, want);
}

#[test]
fn csv_without_a_url_column_is_refused_whole() {
    let why = file_error(SourceFormat::Csv, "code,link\nabc,https://a.example/\n");
    assert!(why.contains("no `url` column"), "{why}");
    assert!(why.contains("code, link"), "{why}");
    let why = file_error(SourceFormat::Csv, "");
    assert!(why.contains("empty") && why.contains("`url`"), "{why}");
}

#[test]
fn csv_header_names_ignore_case_and_space_and_take_visits_for_clicks() {
    let got = read(
        SourceFormat::Csv,
        "  VISITS ,Url,Code\r\n3,https://a.example/,a\r\n",
    );
    let want = SourceRow {
        visits: Some(3),
        ..link(2, "a", "https://a.example/")
    };
    assert_eq!(got, vec![Ok(want)]);
    // A spreadsheet's `;`, CRLF line ends and blank lines.
    let got = read(
        SourceFormat::Csv,
        "\r\ncode;url;tags\r\n\r\na;https://a.example/?x=1,2;\"x;y\"\r\n   \r\n",
    );
    let want = SourceRow {
        tags: strings(&["x", "y"]),
        ..link(4, "a", "https://a.example/?x=1,2")
    };
    assert_eq!(got, vec![Ok(want)]);
}

#[test]
fn escaped_cells_come_back_exactly() {
    let cases = [
        "",
        "plain",
        "=1+2",
        "+33 1 23",
        "-5",
        "@SUM(A1)",
        "\tindented",
        "\rreturn",
        "'",
        "'quoted",
        "'=already",
        "''=twice",
        "a=b",
        "café=☕",
        "=HYPERLINK(\"https://evil.example/\")",
    ];
    for s in cases {
        let escaped = escape_cell(s);
        assert_eq!(unescape_cell(&escaped), s, "{s:?} → {escaped:?}");
        assert!(!escaped.starts_with(is_formula_start), "{escaped:?}");
    }
    // Every string of up to 4 characters from an alphabet of the tricky ones.
    let alphabet = ['\'', '=', '-', '\t', 'a', '@'];
    let mut all = vec![String::new()];
    for _ in 0..4 {
        let longer: Vec<String> = all
            .iter()
            .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
            .collect();
        all.extend(longer);
    }
    all.sort();
    all.dedup();
    for s in &all {
        let escaped = escape_cell(s);
        assert_eq!(unescape_cell(&escaped), s.as_str(), "{s:?} → {escaped:?}");
        let after_excel = escaped.strip_prefix('\'').unwrap_or(&escaped);
        assert_eq!(
            escaped.len() > s.len(),
            after_excel.starts_with(is_formula_start) || needs_guard(s),
        );
    }
    assert_eq!(escape_cell("=1"), "'=1");
    assert_eq!(escape_cell("'=1"), "''=1");
    assert!(matches!(escape_cell("plain"), Cow::Borrowed(_)));
    assert_eq!(unescape_cell("'plain"), "'plain");
    assert_eq!(unescape_cell("'-5"), "-5");
}

#[test]
fn a_shlink_web_client_export_is_read() {
    let got = read(
        SourceFormat::Shlink,
        include_str!("../../../tests/fixtures/import/shlink.csv"),
    );
    let want = vec![
        Ok(SourceRow {
            title: Some("Docs, \"v2\" edition".into()),
            tags: strings(&["docs", "help"]),
            created_at: Some(1_680_336_000),
            visits: Some(42),
            ..link(2, "docs", "https://example.com/docs")
        }),
        Ok(SourceRow {
            title: Some("Café ☕".into()),
            created_at: Some(1_680_435_000),
            visits: Some(0),
            ..link(3, "café", "https://example.com/café")
        }),
        Ok(SourceRow {
            tags: strings(&["sales", "q2"]),
            created_at: Some(1_680_531_300),
            visits: Some(1000),
            ..link(4, "promo", "https://example.com/promo?a=1&b=2")
        }),
        error(
            5,
            "visits: \"many\" is not a non-negative integer",
            "2023-04-04T08:00:00+00:00,s.test,bad,https://s.test/bad,https://example.com/bad,\
             Bad count,,many",
        ),
        error(
            6,
            "missing longUrl",
            "2023-04-05T00:00:00+00:00,s.test,nourl,https://s.test/nourl,,No destination,,3",
        ),
    ];
    assert_eq!(got, want);
}

#[test]
fn a_shlink_api_answer_is_read() {
    let got = read(
        SourceFormat::Shlink,
        include_str!("../../../tests/fixtures/import/shlink-api.json"),
    );
    let want = [
        SourceRow {
            title: Some("Welcome to \"Steam\", the store".into()),
            tags: strings(&["games", "tech"]),
            expires_at: Some(1_893_456_000),
            max_clicks: Some(100),
            created_at: Some(1_471_804_456),
            visits: Some(328),
            ..link(1, "12C18", "https://store.example.com/games?ref=a,b")
        },
        SourceRow {
            title: Some("Ünïcödé ✓".into()),
            created_at: Some(1_709_208_000),
            visits: Some(0),
            ..link(2, "ünïcode", "https://example.com/ünïcode")
        },
        SourceRow {
            tags: strings(&["legacy"]),
            created_at: Some(1_443_724_456),
            visits: Some(25),
            ..link(3, "123bA", "https://www.example.org/")
        },
    ];
    assert_eq!(got.len(), 5, "{got:?}");
    for (got, want) in got.iter().zip(want) {
        assert_eq!(got, &Ok(want));
    }
    let reason = "dateCreated: \"yesterday\" is not a date and time (2026-01-02 03:04:05, \
                  with or without an offset) or a date";
    assert_json_error(&got[3], 4, reason, "shortCode");
    assert_json_error(&got[4], 5, "missing longUrl", "shortCode");
}

#[test]
fn shlink_json_that_is_not_a_list_of_short_urls_is_refused_whole() {
    let why = file_error(SourceFormat::Shlink, "{\"error\": \"Invalid API key\"}");
    assert!(why.contains("GET /rest/v3/short-urls"), "{why}");
    assert!(why.contains("keys error"), "{why}");
    let why = file_error(SourceFormat::Shlink, "{\"shortUrls\": {\"data\": [}");
    assert!(why.contains("unreadable JSON"), "{why}");
    let why = file_error(SourceFormat::Shlink, "shortCode,title\nabc,T\n");
    assert!(why.contains("no `longUrl` column"), "{why}");
}

#[test]
fn a_yourls_table_with_a_header_is_read() {
    let got = read(
        SourceFormat::Yourls,
        include_str!("../../../tests/fixtures/import/yourls.csv"),
    );
    let want = vec![
        Ok(SourceRow {
            title: Some("ozh.org".into()),
            created_at: Some(1_254_398_400),
            visits: Some(12),
            ..link(2, "ozh", "https://ozh.org/")
        }),
        Ok(SourceRow {
            title: Some("YOURLS: Your Own URL Shortener, \"the\" original".into()),
            created_at: Some(1_254_398_401),
            visits: Some(1024),
            ..link(3, "yourls", "https://yourls.org/")
        }),
        Ok(SourceRow {
            title: Some("Déjà vu ✓".into()),
            created_at: Some(1_677_628_799),
            visits: Some(0),
            ..link(4, "déjà", "https://example.com/d%C3%A9j%C3%A0")
        }),
        Ok(SourceRow {
            created_at: Some(1_704_067_200),
            visits: Some(5),
            ..link(5, "notitle", "https://example.com/none")
        }),
        error(
            6,
            "timestamp: \"2024-02-30 10:00:00\" is not a date and time (2026-01-02 03:04:05, \
             with or without an offset) or a date",
            "broken,https://example.com/broken,Broken,2024-02-30 10:00:00,10.0.0.1,1",
        ),
        error(
            7,
            "clicks: \"-3\" is not a non-negative integer",
            "neg,https://example.com/neg,Negative,2024-01-01 00:00:00,10.0.0.1,-3",
        ),
    ];
    assert_eq!(got, want);
}

#[test]
fn a_yourls_table_without_a_header_is_read_in_column_order() {
    let got = read(
        SourceFormat::Yourls,
        include_str!("../../../tests/fixtures/import/yourls-phpmyadmin.csv"),
    );
    let want = vec![
        Ok(SourceRow {
            title: Some("ozh.org".into()),
            created_at: Some(1_254_398_400),
            visits: Some(12),
            ..link(1, "ozh", "https://ozh.org/")
        }),
        Ok(SourceRow {
            title: Some("Title with \"quotes\", and a comma".into()),
            created_at: Some(1_588_655_105),
            visits: Some(7),
            ..link(2, "multi", "https://example.com/a")
        }),
        Ok(SourceRow {
            title: Some("Ça va ✓".into()),
            created_at: Some(1_623_053_350),
            visits: Some(0),
            ..link(3, "ça", "https://example.com/%C3%A7a")
        }),
        error(
            4,
            "expected 6 fields (as many as the header has), found 2",
            "short,https://example.com/short",
        ),
    ];
    assert_eq!(got, want);
}

#[test]
fn yourls_files_with_semicolons_or_tabs_are_read_and_others_refused() {
    let semicolons = "keyword;url;title\nabc;https://a.example/?x=1,2;A, b\n";
    let tabs = "url\tkeyword\nhttps://a.example/?x=1,2\tabc\n";
    for text in [semicolons, tabs] {
        let got = read(SourceFormat::Yourls, text);
        let title = (text == semicolons).then(|| "A, b".to_string());
        let want = SourceRow {
            title,
            ..link(2, "abc", "https://a.example/?x=1,2")
        };
        assert_eq!(got, vec![Ok(want)], "{text:?}");
    }
    let why = file_error(SourceFormat::Yourls, "url,title\nhttps://a.example/,A\n");
    assert!(why.contains("`keyword`"), "{why}");
    let why = file_error(SourceFormat::Yourls, "abc,def\n");
    assert!(why.contains("yourls_url"), "{why}");
}

#[test]
fn a_kutt_api_page_is_read() {
    let got = read(
        SourceFormat::Kutt,
        include_str!("../../../tests/fixtures/import/kutt.json"),
    );
    let want = [
        SourceRow {
            title: Some("Docs, \"v3\" edition".into()),
            created_at: Some(1_709_287_200),
            visits: Some(17),
            ..link(1, "docs", "https://example.com/docs")
        },
        SourceRow {
            title: Some("Ünïcödé ✓".into()),
            expires_at: Some(1_893_456_000),
            created_at: Some(1_709_378_553),
            visits: Some(0),
            ..link(2, "émoji", "https://example.com/%C3%A9moji")
        },
        SourceRow {
            expires_at: Some(1_782_907_200),
            created_at: Some(1_709_424_000),
            visits: Some(3),
            ..link(3, "sqlite", "https://example.com/sqlite?a=1&b=2")
        },
    ];
    assert_eq!(got.len(), 6, "{got:?}");
    for (got, want) in got.iter().zip(want) {
        assert_eq!(got, &Ok(want));
    }
    let secret = "password-protected in Kutt, and snip links have no password: not imported";
    assert_json_error(&got[3], 4, secret, "address");
    assert_json_error(&got[4], 5, "banned in Kutt: not imported", "address");
    let bad = "visit_count: \"lots\" is not a non-negative integer";
    assert_json_error(&got[5], 6, bad, "address");
}

#[test]
fn kutt_pages_and_link_objects_one_per_line_are_read_in_a_row() {
    let got = read(
        SourceFormat::Kutt,
        include_str!("../../../tests/fixtures/import/kutt-pages.jsonl"),
    );
    let want = vec![
        Ok(SourceRow {
            title: Some("First, page one".into()),
            created_at: Some(1_711_929_600),
            visits: Some(1),
            ..link(1, "one", "https://example.com/1")
        }),
        Ok(SourceRow {
            created_at: Some(1_712_016_000),
            visits: Some(2),
            ..link(2, "two", "https://example.com/2")
        }),
        Ok(SourceRow {
            title: Some("A lone link object".into()),
            created_at: Some(1_712_102_400),
            visits: Some(3),
            ..link(3, "three", "https://example.com/3")
        }),
    ];
    assert_eq!(got, want);
    let array = read(
        SourceFormat::Kutt,
        "[{\"address\":\"a\",\"target\":\"https://a.example/\"}, 7]",
    );
    assert_eq!(array[0], Ok(link(1, "a", "https://a.example/")));
    assert_eq!(
        array[1],
        error(2, "expected a link object, found a number", "7")
    );
}

#[test]
fn kutt_input_that_is_not_its_json_is_refused_whole() {
    let why = file_error(SourceFormat::Kutt, "address,target\na,https://a.example/\n");
    assert!(why.contains("expected JSON"), "{why}");
    let why = file_error(
        SourceFormat::Kutt,
        "{\"error\":\"API key is not correct.\"}",
    );
    assert!(why.contains("GET /api/v2/links"), "{why}");
    let why = file_error(SourceFormat::Kutt, "   ");
    assert!(why.contains("expected JSON"), "{why}");
}

#[test]
fn a_bitly_csv_export_is_read() {
    let got = read(
        SourceFormat::Bitly,
        include_str!("../../../tests/fixtures/import/bitly.csv"),
    );
    let want = vec![
        Ok(SourceRow {
            title: Some("Spring sale, \"50%\" off".into()),
            tags: strings(&["sales", "seasonal"]),
            created_at: Some(1_704_164_645),
            visits: Some(1204),
            ..link(
                2,
                "spring",
                "https://shop.example.com/spring?utm_source=bitly",
            )
        }),
        Ok(SourceRow {
            title: Some("Café ☕".into()),
            created_at: Some(1_706_933_106),
            visits: Some(0),
            ..link(3, "4xyZ", "https://example.com/café")
        }),
        Ok(SourceRow {
            tags: strings(&["misc"]),
            created_at: Some(1_709_510_400),
            visits: Some(17),
            ..link(4, "5noTitle", "https://example.com/untitled")
        }),
        error(
            5,
            "missing long URL",
            "No destination,https://bit.ly/6none,,,2024-03-05 00:00:00,3,",
        ),
        error(
            6,
            "clicks: \"n/a\" is not a non-negative integer",
            "Bad clicks,https://bit.ly/7bad,,https://example.com/bad,2024-03-06 00:00:00,n/a,",
        ),
    ];
    assert_eq!(got, want);
}

#[test]
fn a_bitly_api_answer_is_read() {
    let got = read(
        SourceFormat::Bitly,
        include_str!("../../../tests/fixtures/import/bitly-api.json"),
    );
    assert_eq!(got.len(), 4, "{got:?}");
    let spring = SourceRow {
        title: Some("Spring sale, \"50%\" off".into()),
        tags: strings(&["sales", "seasonal"]),
        created_at: Some(1_704_164_645),
        ..link(
            1,
            "spring",
            "https://shop.example.com/spring?utm_source=bitly",
        )
    };
    assert_eq!(got[0], Ok(spring));
    let cafe = SourceRow {
        title: Some("Café ☕".into()),
        created_at: Some(1_706_933_106),
        ..link(2, "4xyZ", "https://example.com/café")
    };
    assert_eq!(got[1], Ok(cafe));
    assert_json_error(&got[2], 3, "missing long_url", "link");
    let late = "created_at: \"2024-13-01T00:00:00+0000\" is not a date and time \
                (2026-01-02 03:04:05, with or without an offset) or a date";
    assert_json_error(&got[3], 4, late, "link");
    let why = file_error(SourceFormat::Bitly, "Title,Clicks\nA,1\n");
    assert!(why.contains("short link column"), "{why}");
}

#[test]
fn short_codes_are_the_paths_of_short_links() {
    for (link, code) in [
        ("https://bit.ly/3abcDEF", Some("3abcDEF")),
        ("bit.ly/3abcDEF", Some("3abcDEF")),
        ("https://go.example.com/spring/?utm=1#top", Some("spring")),
        ("spring", Some("spring")),
        ("go.example.com", None),
        ("https://go.example.com/", None),
        ("", None),
    ] {
        assert_eq!(short_path(link).as_deref(), code, "{link}");
    }
    assert_eq!(percent_decoded("caf%C3%A9"), "café");
    assert_eq!(percent_decoded("100%"), "100%");
    assert_eq!(percent_decoded("%FF"), "%FF");
}

#[test]
fn timestamps_are_read_strictly_for_snip_csv_and_leniently_for_the_others() {
    let at = 1_767_323_045; // 2026-01-02T03:04:05Z
    for s in [
        "2026-01-02T03:04:05Z",
        "2026-01-02t03:04:05z",
        "2026-01-02 03:04:05Z",
        "2026-01-02T03:04:05.999Z",
        "2026-01-02T05:04:05+02:00",
        "2026-01-01T22:04:05-05:00",
    ] {
        assert_eq!(timestamp(s, true), Some(at), "{s}");
        assert_eq!(timestamp(s, false), Some(at), "{s}");
    }
    for s in [
        "2026-01-02 03:04:05",
        "2026-01-02T05:04:05+0200",
        "2026-01-02T05:04:05+02",
        "2026-01-02 03:04:05 UTC",
        "2026-01-02 05:04:05 +02:00",
    ] {
        assert_eq!(timestamp(s, true), None, "{s}");
        assert_eq!(timestamp(s, false), Some(at), "{s}");
    }
    assert_eq!(timestamp("2026-01-02T03:04", false), Some(at - 5));
    assert_eq!(timestamp("2026-01-02", true), Some(1_767_312_000));
    assert_eq!(timestamp("1969-12-31T23:59:59Z", true), Some(-1));
    for s in [
        "",
        "2026-1-2",
        "2026-02-30",
        "2026-01-02T24:00:00Z",
        "2026-01-02T03:04:05",
        "2026-01-02T03:04:05+25:00",
        "2026-01-02T03:04:05.Z",
        "02/01/2026",
        "yesterday",
        "2026-01-02T03:04:05Z trailing",
    ] {
        assert_eq!(timestamp(s, true), None, "{s}");
    }
}

/// Endless CSV, TSV or JSON lines: rows must come before the input ends.
struct Endless {
    header: &'static str,
    line: fn(u64) -> String,
    n: u64,
    pending: Vec<u8>,
}

impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pending.is_empty() {
            self.pending = if self.n == 0 {
                self.header.as_bytes().to_vec()
            } else {
                (self.line)(self.n).into_bytes()
            };
            self.n += 1;
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

#[test]
fn rows_stream_without_reading_the_whole_input() {
    type Case = (SourceFormat, &'static str, fn(u64) -> String);
    let cases: [Case; 7] = [
        (SourceFormat::Tsv, "# codes\n", |n| {
            format!("c{n}\thttps://example.com/{n}\n")
        }),
        (SourceFormat::Csv, "url,code\n", |n| {
            format!("https://example.com/{n},c{n}\n")
        }),
        (SourceFormat::Shlink, "shortCode,longUrl\n", |n| {
            format!("c{n},https://example.com/{n}\n")
        }),
        (SourceFormat::Yourls, "keyword,url\n", |n| {
            format!("c{n},https://example.com/{n}\n")
        }),
        (SourceFormat::Bitly, "link,long_url\n", |n| {
            format!("https://bit.ly/c{n},https://example.com/{n}\n")
        }),
        (SourceFormat::Kutt, "{\"total\": 1e9, \"data\": [\n", |n| {
            format!("{{\"address\":\"c{n}\",\"target\":\"https://example.com/{n}\"}},\n")
        }),
        (SourceFormat::Kutt, "\n", |n| {
            format!("{{\"address\":\"c{n}\",\"target\":\"https://example.com/{n}\"}}\n")
        }),
    ];
    for (format, header, line) in cases {
        let input = Endless {
            header,
            line,
            n: 0,
            pending: Vec::new(),
        };
        let first: Vec<_> = rows(format, Box::new(input)).unwrap().take(10).collect();
        assert_eq!(first.len(), 10, "{}", format.name());
        for (i, row) in first.into_iter().enumerate() {
            let n = i as u64 + 1;
            let row = row.unwrap();
            assert_eq!(row.code, Some(format!("c{n}")), "{}", format.name());
            assert_eq!(row.url, format!("https://example.com/{n}"));
        }
    }
}

#[test]
fn an_input_that_fails_mid_way_ends_with_one_row_error() {
    struct Failing(Cursor<&'static [u8]>);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(std::io::Error::other("disk on fire")),
                n => Ok(n),
            }
        }
    }
    let csv = Failing(Cursor::new(b"url\nhttps://a.example/\n".as_slice()));
    let got: Rows = rows(SourceFormat::Csv, Box::new(csv)).unwrap().collect();
    assert_eq!(got.len(), 2, "{got:?}");
    let e = got[1].as_ref().unwrap_err();
    assert!(e.reason.contains("disk on fire"), "{e:?}");
    let tsv = Failing(Cursor::new(b"a\thttps://a.example/\n".as_slice()));
    let got: Rows = rows(SourceFormat::Tsv, Box::new(tsv)).unwrap().collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1].as_ref().unwrap_err().line, 2);
}
