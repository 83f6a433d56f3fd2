//! `snip import` and `snip export` through the API (a smoke test: `tests/import.rs` covers them).

use super::*;

/// `snip import FILE` (TSV) through the API creates the links and a re-run finds them
/// present; `snip export` writes them as CSV (to a file with `--out`) and as JSON lines with
/// `--with-stats` (a `clicks` member).
#[tokio::test]
async fn import_and_export_smoke() {
    let server = start_server(&[]);
    let sandbox = Sandbox::new();
    let cli = sandbox.remote(&server);
    let tsv = sandbox.work().join("links.tsv");
    std::fs::write(
        &tsv,
        "imp1\thttps://example.com/i1\nimp2\thttps://example.com/i2\n",
    )
    .unwrap();
    let tsv_arg = tsv.display().to_string();

    let first = cli.run(&["import", &tsv_arg, "--json"]).json();
    assert_eq!(first["imported"], 2, "{first}");
    let again = cli.run(&["import", &tsv_arg, "--json"]).json();
    assert_eq!(again["imported"], 0, "{again}");
    assert_eq!(again["present"], 2, "{again}");
    let imp1 = common::expect_json(
        server.call(Method::GET, "/api/v1/links/imp1").await,
        StatusCode::OK,
        "the imported link",
    )
    .await;
    assert_eq!(imp1["url"], "https://example.com/i1");

    let out = sandbox.work().join("links.csv");
    cli.run(&["export", "--out", &out.display().to_string()])
        .ok();
    let csv = std::fs::read_to_string(&out).expect("export --out wrote the file");
    let mut lines = csv.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.starts_with("code,url"), "{csv}");
    let mut rows: Vec<&str> = lines.collect();
    rows.sort_unstable();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(rows[0].starts_with("imp1,https://example.com/i1,"), "{csv}");
    assert!(rows[1].starts_with("imp2,https://example.com/i2,"), "{csv}");

    let jsonl = cli
        .run(&["export", "--format", "jsonl", "--with-stats"])
        .json_lines();
    let mut exported: Vec<String> = jsonl.iter().map(common::code_of).collect();
    exported.sort();
    assert_eq!(exported, ["imp1", "imp2"]);
    assert!(
        jsonl.iter().all(|l| l["clicks"].as_u64() == Some(0)),
        "{jsonl:?}"
    );
}
