//! `snip link stats` and `snip link qr`: the counts, the drawings, the image files.

use super::*;

/// `link stats --json` is the API's stats object and counts the clicks made (polled until the
/// background flush has written them): human and bot clicks apart, the series without bots
/// unless `--include-bots`, referrers; `--from 2h --interval hour` gives hourly buckets; the
/// human output has the totals line, a bar for today and the referrer table; a bad `--from`
/// exits 2 and an unknown code 4.
#[tokio::test]
async fn link_stats_counts_clicks_in_json_and_draws_them() {
    let server = start_server(&["--click-flush-interval", "50ms"]);
    let sandbox = Sandbox::new();
    let cli = sandbox.remote(&server);
    cli.run(&[
        "link",
        "create",
        "https://example.com/counted",
        "--code",
        "stat1",
    ])
    .ok();

    for _ in 0..3 {
        let resp = server
            .client
            .get(server.url("/stat1"))
            .header("Referer", "https://ref.example/page")
            .send()
            .await
            .expect("GET /stat1");
        assert_eq!(resp.status(), StatusCode::FOUND);
    }
    let bot = server
        .client
        .get(server.url("/stat1"))
        .header("User-Agent", BOT_UA)
        .send()
        .await
        .expect("GET /stat1 as a bot");
    assert_eq!(bot.status(), StatusCode::FOUND);

    let total = |run: &Run| -> Option<i64> {
        let stats: Value = serde_json::from_str(&run.stdout).ok()?;
        stats["total_clicks"].as_i64()
    };
    let run = poll_run(
        "stats show the 4 clicks",
        POLL_BOUND,
        || cli.run(&["link", "stats", "stat1", "--json"]),
        |run| run.code == Some(0) && total(run) >= Some(4),
    );
    let stats = run.json();
    assert_eq!(stats["code"], "stat1");
    assert_eq!(stats["total_clicks"], 4, "{stats}");
    assert_eq!(stats["human_clicks"], 3, "{stats}");
    assert_eq!(stats["bot_clicks"], 1, "{stats}");
    assert_eq!(stats["imported_clicks"], 0, "{stats}");
    assert_eq!(stats["interval"], "day", "the default interval");
    let series_sum = |stats: &Value| -> u64 {
        stats["series"]
            .as_array()
            .unwrap_or_else(|| panic!("series is an array: {stats}"))
            .iter()
            .map(|p| {
                assert!(p["t"].is_string(), "{p}");
                p["clicks"].as_u64().expect("clicks")
            })
            .sum()
    };
    assert_eq!(series_sum(&stats), 3, "bots are left out of the series");
    assert_eq!(
        stats["referrers"],
        json!([{"key": "ref.example", "clicks": 3}]),
        "{stats}"
    );

    let with_bots = cli
        .run(&["link", "stats", "stat1", "--json", "--include-bots"])
        .json();
    assert_eq!(series_sum(&with_bots), 4, "--include-bots: {with_bots}");

    let hourly = cli
        .run(&[
            "link",
            "stats",
            "stat1",
            "--json",
            "--from",
            "2h",
            "--interval",
            "hour",
        ])
        .json();
    assert_eq!(hourly["interval"], "hour");
    let buckets = hourly["series"].as_array().expect("series");
    assert!(
        (2..=3).contains(&buckets.len()),
        "two hours by the hour: {hourly}"
    );
    assert!(
        buckets
            .iter()
            .all(|p| p["t"].as_str().is_some_and(|t| t.ends_with(":00:00Z"))),
        "{hourly}"
    );
    assert_eq!(series_sum(&hourly), 3);

    let human = cli.run(&["link", "stats", "stat1"]);
    let text = human.ok();
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.contains("stat1") && first.contains("4 clicks (3 human, 1 bots)"),
        "the totals line: {}",
        human.context()
    );
    let bars: Vec<&str> = text.lines().filter(|l| l.contains('█')).collect();
    assert_eq!(bars.len(), 1, "one day with clicks: {}", human.context());
    assert!(bars[0].trim_end().ends_with(" 3"), "{}", human.context());
    assert!(
        text.lines()
            .any(|l| l.contains("ref.example") && l.trim_end().ends_with('3')),
        "the referrer table: {}",
        human.context()
    );

    cli.run(&["link", "stats", "stat1", "--from", "yesterday"])
        .exits(2)
        .says("--from");
    cli.run(&["link", "stats", "stat1", "--interval", "week"])
        .exits(2);
    cli.run(&["link", "stats", "nope1"]).problem(4, "not_found");
}

/// `link qr --out` writes a PNG of the asked size (magic bytes, IHDR width and height) or an
/// SVG; another extension or a size out of range exits 2, an unwritable path 1, an unknown
/// code 4 (and writes nothing).
#[tokio::test]
async fn link_qr_writes_png_and_svg_files() {
    let server = start_server(&[]);
    let sandbox = Sandbox::new();
    let cli = sandbox.remote(&server);
    cli.run(&["link", "create", "https://example.com/qr", "--code", "qr1"])
        .ok();

    let png = sandbox.work().join("code.png");
    let png_arg = png.display().to_string();
    cli.run(&["link", "qr", "qr1", "--out", &png_arg, "--size", "64"])
        .ok();
    let bytes = std::fs::read(&png).expect("the PNG was written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "PNG magic bytes");
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (64, 64), "--size 64");

    let svg = sandbox.work().join("code.svg");
    let svg_arg = svg.display().to_string();
    cli.run(&["link", "qr", "qr1", "--out", &svg_arg]).ok();
    let text = std::fs::read_to_string(&svg).expect("the SVG was written");
    assert!(text.contains("<svg"), "{text}");
    assert!(text.contains(r#"width="512""#), "the default size: {text}");

    let gif = sandbox.work().join("code.gif");
    cli.run(&["link", "qr", "qr1", "--out", &gif.display().to_string()])
        .exits(2);
    assert!(!gif.exists());
    let big = sandbox.work().join("big.png");
    cli.run(&[
        "link",
        "qr",
        "qr1",
        "--out",
        &big.display().to_string(),
        "--size",
        "5000",
    ])
    .problem(2, "invalid_field");
    assert!(!big.exists());
    let nowhere = sandbox.work().join("missing").join("dir").join("code.png");
    cli.run(&["link", "qr", "qr1", "--out", &nowhere.display().to_string()])
        .exits(1)
        .says("snip: ");
    let unknown = sandbox.work().join("unknown.png");
    cli.run(&[
        "link",
        "qr",
        "nope1",
        "--out",
        &unknown.display().to_string(),
    ])
    .problem(4, "not_found");
    assert!(!unknown.exists());
}

/// `link qr` without `--out` draws the code in the terminal with Unicode half blocks (a
/// rectangle of equal-width rows, two modules per row) and then prints the short URL on a
/// line of its own, so that it can be copied.
#[tokio::test]
async fn link_qr_draws_half_blocks_then_the_short_url_on_its_own_line() {
    let server = start_server(&[]);
    let sandbox = Sandbox::new();
    let cli = sandbox.remote(&server);
    cli.run(&["link", "create", "https://example.com/qr", "--code", "qr2"])
        .ok();

    let run = cli.run(&["link", "qr", "qr2"]);
    let out = run.ok();
    let lines: Vec<&str> = out.lines().collect();
    let short_url = format!("{}/qr2", server.base);
    assert_eq!(
        lines.last().copied(),
        Some(short_url.as_str()),
        "the last line is the short URL alone: {}",
        run.context()
    );
    let drawing = &lines[..lines.len() - 1];
    assert!(
        drawing
            .iter()
            .all(|l| l.chars().all(|c| matches!(c, ' ' | '▀' | '▄' | '█'))),
        "only half blocks: {}",
        run.context()
    );
    assert!(out.contains('▀') || out.contains('▄'), "{}", run.context());
    let width = drawing[0].chars().count();
    assert!(
        width >= 21 + 8,
        "a QR code with its quiet zone: {}",
        run.context()
    );
    assert!(
        drawing.iter().all(|l| l.chars().count() == width),
        "rows of equal width: {}",
        run.context()
    );
    assert_eq!(
        drawing.len(),
        width.div_ceil(2),
        "two modules per row: {}",
        run.context()
    );
}
