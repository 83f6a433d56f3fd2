//! `snip import` and `snip export` as a user runs them (the real binary, a fresh HOME, no
//! `SNIP_*` variables) against a real `snip serve`, or straight into a stopped server's store:
//! every source format's fixture (tests/fixtures/import, mapped as docs/import-formats.md says)
//! imports to exactly the links it describes, with its malformed row in the rejected file; a
//! re-run imports nothing; a code of another destination is reported as taken; `--strict`
//! imports nothing when a row is bad; rows without a code are created once; an export imports
//! into a new server as the same links (and exports again byte for byte the same); and an
//! import stopped by Ctrl-C resumes where it stopped, every row imported exactly once.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

mod collisions;
mod formats;
mod offline;
mod resume;
mod round_trip;

/// How long one CLI run may take before the test kills it and fails.
const RUN_BOUND: Duration = Duration::from_secs(120);
/// How long a fact the tests wait for (flushed clicks, a checkpoint) may take to show.
const POLL_BOUND: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// A fresh `snip serve` (`TestServer::spawn`). The harness's HTTP client needs a rustls crypto
/// provider, reqwest being built with `rustls-no-provider` (the CLI installs ring the same way);
/// installing it twice is harmless.
fn spawn_server(args: &[&str]) -> TestServer {
    let _ = rustls::crypto::ring::default_provider().install_default();
    TestServer::spawn(args)
}

/// A user of the client: an empty HOME of its own, which is also where files are written.
struct User {
    home: TempDir,
}

/// One finished run of `snip`.
struct Run {
    args: Vec<String>,
    out: Output,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn context(&self) -> String {
        format!(
            "snip {:?} exited with {}\nstdout:\n{}\nstderr:\n{}",
            self.args,
            self.out.status,
            self.stdout(),
            self.stderr()
        )
    }

    fn code(&self) -> Option<i32> {
        self.out.status.code()
    }

    /// Asserts exit 0; stdout.
    fn ok(&self) -> String {
        assert_eq!(self.code(), Some(0), "{}", self.context());
        self.stdout()
    }

    /// Asserts exit 0 and parses stdout as one JSON document.
    fn json(&self) -> Value {
        let out = self.ok();
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.context()))
    }

    /// Asserts that stdout's summary line says these counts.
    fn summary(&self, imported: u64, present: u64, taken: u64, rejected: u64) {
        let line = summary_line(imported, present, taken, rejected);
        assert!(
            self.stdout().lines().any(|l| l == line),
            "expected the summary {line:?}: {}",
            self.context()
        );
    }
}

fn summary_line(imported: u64, present: u64, taken: u64, rejected: u64) -> String {
    format!(
        "imported {imported}, already present {present}, taken by another destination {taken}, \
         rejected {rejected}"
    )
}

/// The four counts of a summary line on stdout.
fn parse_summary(run: &Run) -> [u64; 4] {
    let stdout = run.stdout();
    let line = stdout
        .lines()
        .find(|l| l.starts_with("imported "))
        .unwrap_or_else(|| panic!("no summary line: {}", run.context()));
    let numbers: Vec<u64> = line
        .split(", ")
        .map(|part| {
            part.rsplit(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("summary part {part:?} of {line:?}"))
        })
        .collect();
    numbers
        .try_into()
        .unwrap_or_else(|n| panic!("four counts in {line:?}, got {n:?}"))
}

impl User {
    fn new() -> User {
        User {
            home: tempfile::tempdir().expect("a HOME"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    /// Writes a file into the user's directory; its path.
    fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, content).expect("write a file");
        path
    }

    fn command(&self, args: &[String]) -> Command {
        let mut cmd = common::snip_cli(self.home.path());
        cmd.args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let out = common::output_within(&mut self.command(&args), RUN_BOUND);
        Run { args, out }
    }

    /// `snip import --from FORMAT FILE --no-progress EXTRA` into `server`, over its API.
    fn import(&self, server: &TestServer, format: &str, file: &Path, extra: &[&str]) -> Run {
        let file = file.display().to_string();
        let mut args = vec![
            "import",
            "--from",
            format,
            &file,
            "--no-progress",
            "--server",
            &server.base,
            "--key",
            &server.admin_key,
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// `snip import --from FORMAT FILE --no-progress --database DATABASE EXTRA`.
    fn import_offline(&self, database: &str, format: &str, file: &Path, extra: &[&str]) -> Run {
        let file = file.display().to_string();
        let mut args = vec![
            "import",
            "--from",
            format,
            &file,
            "--no-progress",
            "--database",
            database,
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// `snip export EXTRA` from `server` into a file; the file's content.
    fn export(&self, server: &TestServer, name: &str, extra: &[&str]) -> String {
        let out = self.path(name).display().to_string();
        let mut args = vec![
            "export",
            "--no-progress",
            "--server",
            &server.base,
            "--key",
            &server.admin_key,
            "--out",
            &out,
        ];
        args.extend_from_slice(extra);
        let run = self.run(&args);
        run.ok();
        std::fs::read_to_string(&out)
            .unwrap_or_else(|e| panic!("export wrote no file ({e}): {}", run.context()))
    }
}

/// The rejected-rows file of `source` (`FILE.rejected.csv`): one map per row, by column.
fn rejected_rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path)
        .unwrap_or_else(|e| panic!("read the rejected file {}: {e}", path.display()));
    let headers = reader.headers().expect("a header").clone();
    assert_eq!(
        headers.iter().collect::<Vec<_>>(),
        ["line", "status", "reason", "code", "url"],
        "the rejected file's columns"
    );
    reader
        .records()
        .map(|r| {
            let r = r.expect("a CSV record");
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// The records of a CSV text with a header: one map per row, by column.
fn csv_records(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().expect("a header").clone();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap_or_else(|e| panic!("a CSV record: {e}\n{text}"));
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn beside(file: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}.{suffix}", file.display()))
}

/// `GET /api/v1/links/{code}` as admin: the link object, or `None` on 404.
async fn link(server: &TestServer, code: &str) -> Option<Value> {
    let resp = server
        .call(Method::GET, &format!("/api/v1/links/{code}"))
        .await;
    if resp.status() == StatusCode::NOT_FOUND {
        return None;
    }
    Some(common::expect_json(resp, StatusCode::OK, &format!("GET link {code}")).await)
}

async fn must_link(server: &TestServer, code: &str) -> Value {
    link(server, code)
        .await
        .unwrap_or_else(|| panic!("link {code} should exist"))
}

/// Every link the admin sees (following the pages), oldest first.
async fn all_links(server: &TestServer) -> Vec<Value> {
    let mut links = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/api/v1/links?limit=1000&sort=oldest".to_string();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = common::expect_json(
            server.call(Method::GET, &path).await,
            StatusCode::OK,
            "list links",
        )
        .await;
        links.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return links,
        }
    }
}

/// The link's `imported_clicks` and `total_clicks` from its stats.
async fn clicks(server: &TestServer, code: &str) -> (u64, u64) {
    let stats = server.stats(code, "").await;
    (
        stats["imported_clicks"]
            .as_u64()
            .unwrap_or_else(|| panic!("imported_clicks of {code}: {stats}")),
        stats["total_clicks"]
            .as_u64()
            .unwrap_or_else(|| panic!("total_clicks of {code}: {stats}")),
    )
}

/// A link as an import should leave it.
#[derive(Debug, Clone, Default)]
struct Expected {
    /// `None`: a random code (the link is found by its destination).
    code: Option<&'static str>,
    url: &'static str,
    title: Option<&'static str>,
    tags: &'static [&'static str],
    expires_at: Option<&'static str>,
    max_clicks: Option<u64>,
    /// `None`: the time of the import.
    created_at: Option<&'static str>,
    imported_clicks: u64,
}

/// A link with this code and destination, and nothing else.
fn coded(code: &'static str, url: &'static str) -> Expected {
    Expected {
        code: Some(code),
        url,
        ..Expected::default()
    }
}

/// A link without a code in the source, with this destination.
fn random(url: &'static str) -> Expected {
    Expected {
        url,
        ..Expected::default()
    }
}

/// Unix seconds now.
fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Asserts that `server` has exactly these links (no others), field by field; a creation time
/// left to the import must be within `window` (Unix seconds).
async fn assert_links(server: &TestServer, expected: &[Expected], window: (i64, i64), what: &str) {
    let links = all_links(server).await;
    let named: Vec<&str> = expected.iter().filter_map(|e| e.code).collect();
    let mut codes: Vec<String> = links.iter().map(common::code_of).collect();
    codes.sort();
    assert_eq!(
        links.len(),
        expected.len(),
        "{what}: the server's links {codes:?}, expected {expected:#?}"
    );
    for e in expected {
        let link = match e.code {
            Some(code) => must_link(server, code).await,
            None => {
                let found: Vec<&Value> = links
                    .iter()
                    .filter(|l| l["url"] == e.url && !named.contains(&l["code"].as_str().unwrap()))
                    .collect();
                assert_eq!(
                    found.len(),
                    1,
                    "{what}: one link to {} with a random code: {links:#?}",
                    e.url
                );
                found[0].clone()
            }
        };
        let code = common::code_of(&link);
        let context = format!("{what}: link {code}: {link}");
        assert_eq!(link["url"], e.url, "url; {context}");
        assert_eq!(link["title"], json!(e.title), "title; {context}");
        assert_eq!(link["tags"], json!(e.tags), "tags; {context}");
        assert_eq!(
            link["expires_at"],
            json!(e.expires_at),
            "expires_at; {context}"
        );
        assert_eq!(
            link["max_clicks"],
            json!(e.max_clicks),
            "max_clicks; {context}"
        );
        assert_eq!(link["disabled"], false, "disabled; {context}");
        match e.created_at {
            Some(at) => assert_eq!(link["created_at"], at, "created_at; {context}"),
            None => {
                let at = chrono::DateTime::parse_from_rfc3339(link["created_at"].as_str().unwrap())
                    .unwrap_or_else(|e| panic!("created_at ({e}); {context}"))
                    .timestamp();
                assert!(
                    window.0 - 1 <= at && at <= window.1 + 1,
                    "created_at is the time of the import ({window:?}); {context}"
                );
            }
        }
        assert_eq!(
            clicks(server, &code).await,
            (e.imported_clicks, 0),
            "(imported_clicks, total_clicks); {context}"
        );
    }
}

/// Writes snip's TSV (`CODE<TAB>URL` lines) of `rows` links `{prefix}{i:05}` →
/// `https://example.com/{prefix}/{i}`.
fn numbered_tsv(user: &User, name: &str, prefix: &str, rows: usize) -> PathBuf {
    let mut text = String::new();
    for i in 0..rows {
        text.push_str(&format!(
            "{prefix}{i:05}\thttps://example.com/{prefix}/{i}\n"
        ));
    }
    user.file(name, &text)
}

/// Three links with codes, titles, tags, creation times and clicks (used by several files).
const SMALL_CSV: &str = "code,url,title,tags,created_at,clicks\n\
    alpha,https://example.com/alpha,Alpha,red;blue,2021-03-04T05:06:07Z,12\n\
    beta,https://example.com/beta,,,2020-01-01T00:00:00Z,0\n\
    gamma,https://example.com/gamma,Gamma,green,2019-12-31T23:59:59Z,7\n";

fn small_expected() -> Vec<Expected> {
    vec![
        Expected {
            title: Some("Alpha"),
            tags: &["red", "blue"],
            created_at: Some("2021-03-04T05:06:07Z"),
            imported_clicks: 12,
            ..coded("alpha", "https://example.com/alpha")
        },
        Expected {
            created_at: Some("2020-01-01T00:00:00Z"),
            ..coded("beta", "https://example.com/beta")
        },
        Expected {
            title: Some("Gamma"),
            tags: &["green"],
            created_at: Some("2019-12-31T23:59:59Z"),
            imported_clicks: 7,
            ..coded("gamma", "https://example.com/gamma")
        },
    ]
}
