//! The command-line client (`snip link|key|login|logout|export|import|completions|man`) run as a
//! user runs it: the real binary against a real `snip serve` (or a fake or silent one for the
//! failures), with a fresh, empty `HOME` and `XDG_CONFIG_HOME` and no `SNIP_*`, `NO_COLOR` or
//! proxy variables, so that nothing of the developer's own setup leaks in. Checks what is
//! printed (stdout parsed as JSON where `--json`), the exit codes scripts rely on (0, 1, 2, 3,
//! 4, 5, 6, 69, 78), the config file's permissions, and that captured output never has colours.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::common::{self, TestServer, random_secret};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

const SNIP: &str = env!("CARGO_BIN_EXE_snip");
/// How long one CLI run may take before the test kills it and fails.
const RUN_BOUND: Duration = Duration::from_secs(30);
/// How long a fact the tests wait for (flushed clicks) may take to show.
const POLL_BOUND: Duration = Duration::from_secs(10);
/// A bot's User-Agent: its clicks count as `bot_clicks`.
const BOT_UA: &str = "Googlebot/2.1 (+http://www.google.com/bot.html)";

// ---------------------------------------------------------------------------------------------
// Harness: a sandbox per test (HOME, XDG_CONFIG_HOME, working directory), bounded runs.
// ---------------------------------------------------------------------------------------------

/// A fresh `snip serve` (`TestServer::spawn`). The test harness's HTTP client needs a rustls
/// crypto provider since reqwest is built with `rustls-no-provider` (the CLI installs ring the
/// same way); installing it twice is harmless.
fn start_server(args: &[&str]) -> TestServer {
    let _ = rustls::crypto::ring::default_provider().install_default();
    TestServer::spawn(args)
}

/// A user's environment of its own: empty `HOME` and `XDG_CONFIG_HOME`, and a working
/// directory (so that nothing a command writes lands in the repository).
struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("create the sandbox");
        for sub in ["home", "config", "work"] {
            std::fs::create_dir(dir.path().join(sub)).expect("create a sandbox directory");
        }
        Sandbox { dir }
    }

    fn config_home(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    /// Where `snip login` saves the server and key.
    fn config_file(&self) -> PathBuf {
        self.config_home().join("snip").join("config.toml")
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// `program` with the sandbox's environment: every `SNIP_*`, `NO_COLOR` and proxy
    /// variable removed, `HOME` and `XDG_CONFIG_HOME` the sandbox's.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SNIP_") {
                cmd.env_remove(key);
            }
        }
        for key in [
            "SNIP_SERVER",
            "SNIP_KEY",
            "SNIP_DATABASE",
            "NO_COLOR",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            cmd.env_remove(key);
        }
        cmd.env("HOME", self.dir.path().join("home"))
            .env("XDG_CONFIG_HOME", self.config_home())
            .current_dir(self.work());
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_full(args, &[], "", RUN_BOUND)
    }

    fn run_env(&self, args: &[&str], envs: &[(&str, &str)]) -> Run {
        self.run_full(args, envs, "", RUN_BOUND)
    }

    /// Runs `snip ARGS` with extra `envs`, `stdin` as its input, and at most `bound` to exit.
    /// Captured output never has colours (stdout and stderr are pipes here), whatever the
    /// command: checked for every run.
    fn run_full(&self, args: &[&str], envs: &[(&str, &str)], stdin: &str, bound: Duration) -> Run {
        let mut cmd = self.command(SNIP);
        cmd.args(args).envs(envs.iter().copied());
        let what = format!("snip {args:?}");
        let started = Instant::now();
        let (status, stdout, stderr) = bounded_output(cmd, stdin.as_bytes(), bound, &what);
        let run = Run {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            took: started.elapsed(),
        };
        assert!(
            !run.stdout.contains('\x1b') && !run.stderr.contains('\x1b'),
            "colour codes in captured output: {}",
            run.context()
        );
        run
    }

    /// Commands against `server` with its admin key.
    fn remote<'a>(&'a self, server: &TestServer) -> Remote<'a> {
        self.remote_as(&server.base, &server.admin_key)
    }

    /// Commands against the server at `base` with `key` (`--server` and `--key` flags).
    fn remote_as<'a>(&'a self, base: &str, key: &str) -> Remote<'a> {
        Remote {
            sandbox: self,
            server: base.to_owned(),
            key: key.to_owned(),
        }
    }
}

/// A server and a key, passed as `--server` and `--key` after the command's own arguments.
struct Remote<'a> {
    sandbox: &'a Sandbox,
    server: String,
    key: String,
}

impl Remote<'_> {
    fn run(&self, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        all.extend(["--server", &self.server, "--key", &self.key]);
        self.sandbox.run(&all)
    }
}

/// What a run of the CLI did.
#[derive(Debug)]
struct Run {
    args: Vec<String>,
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    /// The run, for assertion messages (long output cut).
    fn context(&self) -> String {
        let cut = |s: &str| -> String {
            let mut out: String = s.chars().take(3000).collect();
            if out.len() < s.len() {
                out.push_str("…[cut]");
            }
            out
        };
        format!(
            "snip {:?}: exit {:?} after {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.args,
            self.code,
            self.took,
            cut(&self.stdout),
            cut(&self.stderr)
        )
    }

    /// Asserts exit 0 and returns stdout.
    #[track_caller]
    fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "expected success: {}", self.context());
        &self.stdout
    }

    /// Asserts exit 0 and parses stdout as one JSON document.
    #[track_caller]
    fn json(&self) -> Value {
        let out = self.ok();
        serde_json::from_str(out)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.context()))
    }

    /// Asserts exit 0 and parses each stdout line as a JSON object.
    #[track_caller]
    fn json_lines(&self) -> Vec<Value> {
        self.ok()
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!("line {line:?} is not JSON ({e}): {}", self.context())
                })
            })
            .collect()
    }

    /// Asserts the exit code.
    #[track_caller]
    fn exits(&self, code: i32) -> &Run {
        assert_eq!(self.code, Some(code), "exit code: {}", self.context());
        self
    }

    /// Asserts that stderr contains `needle`.
    #[track_caller]
    fn says(&self, needle: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "stderr should contain {needle:?}: {}",
            self.context()
        );
        self
    }

    /// Asserts the exit code and that stderr has the server's problem as `snip: DETAIL (CODE)`.
    #[track_caller]
    fn problem(&self, code: i32, problem: &str) -> &Run {
        self.exits(code);
        let suffix = format!("({problem})");
        assert!(
            self.stderr
                .lines()
                .any(|l| l.starts_with("snip: ") && l.trim_end().ends_with(&suffix)),
            "stderr should have a line `snip: … {suffix}`: {}",
            self.context()
        );
        self
    }
}

/// Runs `cmd` with `stdin`, reading its stdout and stderr on threads (a large output never
/// blocks it), and waits at most `bound` for it to exit (then kills it and panics).
fn bounded_output(
    mut cmd: Command,
    stdin: &[u8],
    bound: Duration,
    what: &str,
) -> (ExitStatus, Vec<u8>, Vec<u8>) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let stdout = read_all(child.stdout.take().expect("stdout is piped"));
    let stderr = read_all(child.stderr.take().expect("stderr is piped"));
    {
        let mut input = child.stdin.take().expect("stdin is piped");
        // The command may exit without reading its input.
        let _ = input.write_all(stdin);
    }
    let status = common::wait_within(&mut child, bound, what);
    (
        status,
        stdout.join().expect("stdout reader"),
        stderr.join().expect("stderr reader"),
    )
}

fn read_all<R: Read + Send + 'static>(mut reader: R) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = reader.read_to_end(&mut buf);
        buf
    })
}

/// Runs `probe` until `done` accepts its run (every 50 ms, at most `bound`); panics with the
/// last run otherwise.
fn poll_run(
    what: &str,
    bound: Duration,
    mut probe: impl FnMut() -> Run,
    done: impl Fn(&Run) -> bool,
) -> Run {
    let deadline = Instant::now() + bound;
    loop {
        let run = probe();
        if done(&run) {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {bound:?}; last run: {}",
            run.context()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// The value of field `name` in `snip link show`'s human output (`      name  value`).
fn field<'a>(details: &'a str, name: &str) -> Option<&'a str> {
    details
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(name)?.strip_prefix("  "))
        .map(str::trim_end)
}

/// The `code` members of a JSON array of links.
fn codes(links: &Value) -> Vec<String> {
    links
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {links}"))
        .iter()
        .map(common::code_of)
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// Logs the sandbox in to `server` with its admin key (`--key` flag), asserting success.
fn login(sandbox: &Sandbox, server: &TestServer) {
    sandbox
        .run(&[
            "login",
            "--server",
            &server.base,
            "--key",
            &server.admin_key,
        ])
        .ok();
    assert!(sandbox.config_file().exists(), "login saved nothing");
}

/// Imports `count` links `bulk-00000`… through `POST /api/v1/import` (400 per request) and
/// returns their codes.
async fn import_bulk(server: &TestServer, count: usize) -> Vec<String> {
    let codes: Vec<String> = (0..count).map(|i| format!("bulk-{i:05}")).collect();
    for chunk in codes.chunks(400) {
        let links: Vec<Value> = chunk
            .iter()
            .map(|c| json!({"url": format!("https://example.com/p/{c}"), "code": c}))
            .collect();
        let resp = server
            .api(Method::POST, "/api/v1/import")
            .json(&json!({ "links": links }))
            .send()
            .await
            .expect("POST /api/v1/import");
        let answer = common::expect_json(resp, StatusCode::OK, "importing links").await;
        assert_eq!(answer["imported"], chunk.len(), "{answer}");
    }
    codes
}

/// A fake HTTP server answering every request with one canned response, and remembering
/// each request's head (request line and headers).
struct FakeServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    fn answering(status: &str, content_type: &str, body: &str) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake server");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("fake server address");
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = thread::spawn({
            let requests = Arc::clone(&requests);
            let stop = Arc::clone(&stop);
            move || {
                while !stop.load(Ordering::SeqCst) {
                    let mut stream = match listener.accept() {
                        Ok((stream, _)) => stream,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                        Err(_) => break,
                    };
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match stream.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => break,
                        }
                    }
                    requests
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head).into_owned());
                    let _ = stream.write_all(response.as_bytes());
                }
            }
        });
        FakeServer {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Links
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Statistics and QR codes
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// API keys
// ---------------------------------------------------------------------------------------------

/// `key create` prints only the new secret on stdout (a key that works at once, with its
/// role), `--json` the key object; `key list` shows keys without secrets (table and `--json`);
/// a user key may not list keys (3); `key revoke` makes a key fail (3), a second revoke is
/// 4, and the last active admin key is refused (5); an unknown role is a usage error.
#[tokio::test]
async fn key_create_list_and_revoke() {
    let server = start_server(&[]);
    let sandbox = Sandbox::new();
    let admin = sandbox.remote(&server);

    let keys = admin.run(&["key", "list", "--json"]).json();
    let items = keys.as_array().expect("key list --json is an array");
    assert_eq!(items.len(), 1, "{keys}");
    let admin_id = items[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(items[0]["role"], "admin");
    admin
        .run(&["key", "revoke", &admin_id])
        .problem(5, "last_admin");
    admin.run(&["key", "list"]).ok();

    let created = admin.run(&["key", "create", "--role", "user", "--name", "alice"]);
    let alice_key = created.ok().trim().to_owned();
    assert_eq!(
        created.stdout.lines().count(),
        1,
        "only the secret on stdout: {}",
        created.context()
    );
    assert!(
        alice_key.starts_with("snip_") && alice_key.len() >= 37,
        "{}",
        created.context()
    );
    let alice = sandbox.remote_as(&server.base, &alice_key);
    let link = alice.run(&["link", "create", "https://example.com/alice", "--json"]);
    let alice_code = common::code_of(&link.json());
    assert_eq!(
        codes(&alice.run(&["link", "list", "--json"]).json()),
        [alice_code]
    );
    alice.run(&["key", "list"]).problem(3, "forbidden");
    alice
        .run(&["key", "create", "--role", "admin"])
        .problem(3, "forbidden");

    let ops = admin
        .run(&[
            "key", "create", "--role", "admin", "--name", "ops", "--json",
        ])
        .json();
    assert_eq!(ops["role"], "admin");
    assert_eq!(ops["name"], "ops");
    let ops_key = ops["key"]
        .as_str()
        .expect("--json has the secret")
        .to_owned();
    let ops_id = ops["id"].as_str().expect("id").to_owned();
    let ops_cli = sandbox.remote_as(&server.base, &ops_key);
    let table = ops_cli.run(&["key", "list"]);
    for name in ["alice", "ops"] {
        assert!(
            table.ok().lines().any(|l| l.contains(name)),
            "{name}: {}",
            table.context()
        );
    }
    assert!(!table.ok().contains(&alice_key), "no secret in the table");

    let listed = admin.run(&["key", "list", "--json"]).json();
    let listed = listed.as_array().expect("array");
    assert_eq!(listed.len(), 3, "{listed:?}");
    for key in listed {
        let object = key.as_object().expect("key objects");
        let mut members: Vec<&str> = object.keys().map(String::as_str).collect();
        members.sort_unstable();
        assert_eq!(members, ["created_at", "id", "name", "role"], "{key}");
    }
    let alice_id = listed
        .iter()
        .find(|k| k["name"] == "alice")
        .and_then(|k| k["id"].as_str())
        .expect("alice is listed")
        .to_owned();
    assert!(listed.iter().any(|k| k["id"] == ops_id.as_str()));

    let revoked = admin.run(&["key", "revoke", &alice_id]);
    revoked.ok();
    revoked.says(&format!("revoked {alice_id}"));
    alice.run(&["link", "list"]).problem(3, "unauthorized");
    admin
        .run(&["key", "revoke", &alice_id])
        .problem(4, "not_found");
    // With a second admin key, the first one may go.
    ops_cli.run(&["key", "revoke", &admin_id]).ok();
    admin.run(&["key", "list"]).problem(3, "unauthorized");

    ops_cli.run(&["key", "create", "--role", "owner"]).exits(2);
}

// ---------------------------------------------------------------------------------------------
// Exit codes
// ---------------------------------------------------------------------------------------------

/// Each refusal of a real server has its exit code, with the problem's detail on stderr as
/// `snip: DETAIL (CODE)`: input refused (422, 413) and client-side usage errors 2, a wrong
/// key 3, an unknown code 4, a taken code 5. Nothing refused is created.
#[tokio::test]
async fn server_refusals_map_to_exit_codes() {
    let server = start_server(&[]);
    let sandbox = Sandbox::new();
    let cli = sandbox.remote(&server);

    cli.run(&["link", "create", "not-a-url"])
        .problem(2, "invalid_url");
    cli.run(&["link", "create", "https://example.com/x", "--code", "a b"])
        .problem(2, "invalid_code");
    cli.run(&[
        "link",
        "create",
        "https://example.com/x",
        "--max-clicks",
        "0",
    ])
    .problem(2, "invalid_field");
    cli.run(&[
        "link",
        "create",
        "https://example.com/x",
        "--expires",
        "2001-01-01T00:00:00Z",
    ])
    .problem(2, "invalid_field");
    let huge_title = "t".repeat(70_000);
    cli.run(&[
        "link",
        "create",
        "https://example.com/x",
        "--title",
        &huge_title,
    ])
    .problem(2, "payload_too_large");
    // Refused before asking the server.
    cli.run(&[
        "link",
        "create",
        "https://example.com/x",
        "--expires",
        "soon",
    ])
    .exits(2)
    .says("--expires");
    sandbox
        .remote_as("ftp://example.com", &server.admin_key)
        .run(&["link", "list"])
        .exits(2)
        .says("--server");
    cli.run(&["link", "create", "https://example.com/x", "--no-such-flag"])
        .exits(2);
    cli.run(&["link", "frobnicate"]).exits(2);
    assert_eq!(
        cli.run(&["link", "list", "--json"]).json(),
        json!([]),
        "nothing refused was created"
    );

    sandbox
        .remote_as(&server.base, &random_secret())
        .run(&["link", "list"])
        .problem(3, "unauthorized");

    for args in [
        &["link", "show", "nope1"][..],
        &["link", "edit", "nope1", "--title", "x"],
        &["link", "disable", "nope1"],
        &["link", "enable", "nope1"],
        &["link", "rm", "nope1"],
        &["link", "stats", "nope1"],
        &["link", "qr", "nope1"],
    ] {
        cli.run(args).problem(4, "not_found");
    }

    cli.run(&[
        "link",
        "create",
        "https://example.com/a",
        "--code",
        "taken1",
    ])
    .ok();
    let taken = cli.run(&[
        "link",
        "create",
        "https://example.com/b",
        "--code",
        "taken1",
    ]);
    taken.exits(5);
    assert_eq!(
        taken.stderr.trim_end(),
        "snip: code taken1 is taken (code_taken)",
        "{}",
        taken.context()
    );
    assert_eq!(taken.stdout, "", "nothing on stdout");
    assert_eq!(
        cli.run(&["link", "show", "taken1", "--json"]).json()["url"],
        "https://example.com/a",
        "the first link is untouched"
    );
}

/// A key over its rate limit (`serve --rate-limit 1`) gets 429 from the server: exit 6 with
/// the problem on stderr.
#[tokio::test]
async fn a_rate_limited_key_exits_6() {
    let server = start_server(&["--rate-limit", "1"]);
    let sandbox = Sandbox::new();
    let cli = sandbox.remote(&server);
    // One request per second with a burst of one: back-to-back runs soon hit the limit.
    let mut seen = Vec::new();
    let limited = loop {
        let run = cli.run(&["link", "list", "--limit", "1", "--json"]);
        seen.push(run.code);
        if run.code != Some(0) {
            break run;
        }
        assert!(seen.len() < 30, "no 429 in 30 back-to-back runs: {seen:?}");
    };
    limited.problem(6, "rate_limited");
}

/// A server nothing listens on (`127.0.0.1:1`) exits 69 at once, saying it cannot be reached;
/// `login` to it exits 69 too and saves nothing.
#[tokio::test]
async fn an_unreachable_server_exits_69_quickly() {
    let sandbox = Sandbox::new();
    let cli = sandbox.remote_as("http://127.0.0.1:1", &random_secret());
    for args in [
        &["link", "list"][..],
        &["link", "create", "https://example.com/x"],
        &["key", "list"],
    ] {
        let run = cli.run(args);
        run.exits(69).says("cannot be reached").says("snip: ");
        assert!(
            run.took < Duration::from_secs(10),
            "quickly: {}",
            run.context()
        );
    }
    sandbox
        .run(&[
            "login",
            "--server",
            "http://127.0.0.1:1",
            "--key",
            &random_secret(),
        ])
        .exits(69)
        .says("cannot be reached");
    assert!(
        !sandbox.config_file().exists(),
        "a failed login saves nothing"
    );
}

/// A server that accepts the connection but never answers: with `--timeout 2` the command
/// gives up after about two seconds with exit 69, saying it did not answer in time.
#[tokio::test]
async fn a_server_that_never_answers_exits_69_after_the_timeout() {
    // Connections complete in the kernel's backlog; nobody ever reads or answers.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind the silent server");
    let base = format!("http://{}", silent.local_addr().unwrap());
    let sandbox = Sandbox::new();
    let started = Instant::now();
    let run = sandbox.run_full(
        &[
            "link",
            "list",
            "--server",
            &base,
            "--key",
            &random_secret(),
            "--timeout",
            "2",
        ],
        &[],
        "",
        Duration::from_secs(15),
    );
    run.exits(69).says("did not answer in time");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(15),
        "waited for the 2 s timeout, not much longer: {took:?}; {}",
        run.context()
    );
    drop(silent);
}

/// A server error (5xx) is "server unavailable", exit 69, with the problem's detail or the
/// start of a non-JSON body on stderr; a 200 answer snip cannot read fails with exit 1.
#[tokio::test]
async fn a_server_error_exits_69_and_an_unreadable_answer_exits_1() {
    let sandbox = Sandbox::new();
    let key = random_secret();

    let problem = json!({
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "code": "store_unavailable",
        "detail": "the store does not answer",
    })
    .to_string();
    let unavailable = FakeServer::answering(
        "503 Service Unavailable",
        "application/problem+json",
        &problem,
    );
    sandbox
        .remote_as(&unavailable.base(), &key)
        .run(&["link", "show", "abc"])
        .problem(69, "store_unavailable")
        .says("the store does not answer");
    let requests = unavailable.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(
        requests[0].starts_with("GET /api/v1/links/abc "),
        "{requests:?}"
    );
    assert!(
        requests[0].to_ascii_lowercase().contains(&format!(
            "authorization: bearer {}",
            key.to_ascii_lowercase()
        )),
        "the key is sent as a bearer token: {requests:?}"
    );

    let broken =
        FakeServer::answering("500 Internal Server Error", "text/plain", "something broke");
    sandbox
        .remote_as(&broken.base(), &key)
        .run(&["link", "list"])
        .exits(69)
        .says("something broke");

    let garbage = FakeServer::answering("200 OK", "application/json", "this is not json");
    let run = sandbox
        .remote_as(&garbage.base(), &key)
        .run(&["link", "show", "abc"]);
    run.exits(1).says("snip: ");
    assert_eq!(run.stdout, "", "{}", run.context());
}

// ---------------------------------------------------------------------------------------------
// Login, the config file, and where the server and key come from
// ---------------------------------------------------------------------------------------------

/// `snip login` checks the key first (a wrong key: exit 3, nothing saved; a later wrong key
/// leaves the saved file as it was), reads the key from stdin without `--key`, saves the
/// server and key in `$XDG_CONFIG_HOME/snip/config.toml` (file 0600, directory 0700) which
/// later commands use; `snip logout` deletes it, and then commands exit 2 naming `snip login`.
#[tokio::test]
async fn login_saves_a_0600_config_that_commands_use_and_logout_removes_it() {
    let server = start_server(&[]);
    let sandbox = Sandbox::new();

    sandbox
        .run_full(
            &["login", "--server", &server.base],
            &[],
            &format!("{}\n", random_secret()),
            RUN_BOUND,
        )
        .problem(3, "unauthorized");
    assert!(!sandbox.config_file().exists(), "a wrong key is not saved");

    let with_slash = format!("{}/", server.base);
    sandbox
        .run_full(
            &["login", "--server", &with_slash],
            &[],
            &format!("{}\n", server.admin_key),
            RUN_BOUND,
        )
        .ok();
    let file = sandbox.config_file();
    assert_eq!(mode(&file), 0o600, "the config file is 0600");
    assert_eq!(mode(file.parent().unwrap()), 0o700, "its directory is 0700");
    let text = std::fs::read_to_string(&file).expect("read the config");
    let saved: toml::Table = toml::from_str(&text).expect("the config is TOML");
    assert_eq!(
        saved["server"].as_str().map(|s| s.trim_end_matches('/')),
        Some(server.base.as_str()),
        "{text}"
    );
    assert_eq!(
        saved["key"].as_str(),
        Some(server.admin_key.as_str()),
        "{text}"
    );

    // Later commands need neither flags nor variables.
    let created = sandbox.run(&[
        "link",
        "create",
        "https://example.com/saved",
        "--code",
        "saved1",
    ]);
    assert_eq!(created.ok(), format!("{}/saved1\n", server.base));
    assert_eq!(
        codes(&sandbox.run(&["link", "list", "--json"]).json()),
        ["saved1"]
    );

    // A failed login leaves the saved file alone.
    sandbox
        .run(&["login", "--server", &server.base, "--key", &random_secret()])
        .exits(3);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);

    sandbox.run(&["logout"]).ok();
    assert!(!file.exists(), "logout deletes the file");
    sandbox.run(&["link", "list"]).exits(2).says("snip login");
    sandbox.run(&["logout"]).ok();

    // `--key` works as well as stdin.
    login(&sandbox, &server);
    assert_eq!(mode(&sandbox.config_file()), 0o600);
    sandbox.run(&["link", "show", "saved1"]).ok();
}

/// A config file that group or others may read holds a secret in the open: commands refuse it
/// with exit 78 and tell how to fix it (`chmod 600`); at 0600 it works; a file that is not
/// valid TOML is refused with exit 78 too.
#[tokio::test]
async fn a_config_file_others_may_read_is_refused_with_exit_78() {
    let server = start_server(&[]);
    let sandbox = Sandbox::new();
    login(&sandbox, &server);
    let file = sandbox.config_file();
    sandbox.run(&["link", "list"]).ok();

    for unsafe_mode in [0o644, 0o640, 0o604] {
        chmod(&file, unsafe_mode);
        sandbox.run(&["link", "list"]).exits(78).says("chmod 600");
    }
    chmod(&file, 0o600);
    sandbox.run(&["link", "list"]).ok();

    std::fs::write(&file, "this is = = not toml\n").expect("spoil the config");
    chmod(&file, 0o600);
    sandbox.run(&["link", "list"]).exits(78).says("snip: ");
}

/// Where the server and key come from: flags before `SNIP_SERVER`/`SNIP_KEY`, and those before
/// the saved file; the variables alone are enough.
#[tokio::test]
async fn flags_beat_variables_and_variables_beat_the_saved_file() {
    let server = start_server(&[]);
    let down = "http://127.0.0.1:1";

    // Variables alone.
    let fresh = Sandbox::new();
    fresh
        .run_env(
            &[
                "link",
                "create",
                "https://example.com/env",
                "--code",
                "env1",
            ],
            &[
                ("SNIP_SERVER", &server.base),
                ("SNIP_KEY", &server.admin_key),
            ],
        )
        .ok();
    // A flag beats its variable.
    fresh
        .run_env(
            &["link", "show", "env1", "--server", &server.base],
            &[("SNIP_SERVER", down), ("SNIP_KEY", &server.admin_key)],
        )
        .ok();
    fresh
        .run_env(
            &["link", "show", "env1", "--key", &server.admin_key],
            &[
                ("SNIP_SERVER", &server.base),
                ("SNIP_KEY", &random_secret()),
            ],
        )
        .ok();

    // Variables beat the saved file.
    let saved = Sandbox::new();
    login(&saved, &server);
    saved.run(&["link", "show", "env1"]).ok();
    // SNIP_SERVER beats the saved server; the saved key stays with the saved server, so
    // there is no key for this one.
    saved
        .run_env(&["link", "show", "env1"], &[("SNIP_SERVER", down)])
        .exits(2)
        .says("--key");
    saved
        .run_env(&["link", "show", "env1"], &[("SNIP_KEY", &random_secret())])
        .problem(3, "unauthorized");
}

/// With no server anywhere (no flag, variable or saved file) a client command is a usage error
/// naming `snip login`; a server without any key is one too.
#[tokio::test]
async fn no_server_or_no_key_is_a_usage_error_naming_snip_login() {
    let sandbox = Sandbox::new();
    for args in [
        &["link", "list"][..],
        &["link", "show", "abc"],
        &["link", "create", "https://example.com/x"],
        &["key", "list"],
    ] {
        sandbox.run(args).exits(2).says("snip login");
    }
    sandbox
        .run(&["link", "list", "--server", "http://127.0.0.1:1"])
        .exits(2)
        .says("--key");
    assert!(!sandbox.config_file().exists());
}

/// The key saved by `snip login` belongs to the saved server: a command pointed at another
/// server (`--server` or `SNIP_SERVER`) must not send it the saved secret.
#[tokio::test]
async fn the_saved_key_is_not_sent_to_another_server() {
    let server = start_server(&[]);
    let sandbox = Sandbox::new();
    login(&sandbox, &server);
    let problem = json!({
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "code": "unauthorized",
        "detail": "a valid API key is required",
    })
    .to_string();
    let other = FakeServer::answering("401 Unauthorized", "application/problem+json", &problem);

    let by_flag = sandbox.run(&["link", "list", "--server", &other.base()]);
    let by_variable = sandbox.run_env(&["link", "list"], &[("SNIP_SERVER", &other.base())]);
    for run in [&by_flag, &by_variable] {
        assert_ne!(run.code, Some(0), "{}", run.context());
    }
    let leaked: Vec<String> = other
        .requests()
        .into_iter()
        .filter(|r| r.contains(&server.admin_key))
        .collect();
    assert!(
        leaked.is_empty(),
        "the key saved for {} was sent to {}:\n{}",
        server.base,
        other.base(),
        leaked.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Colours, completions, the man page
// ---------------------------------------------------------------------------------------------

/// Colours only on a terminal (run under `script`, which gives the command a pseudo-terminal)
/// and never with `NO_COLOR=1`, on stdout and on the `snip:` of errors. (Every other test
/// checks that captured output never has colour codes.)
#[tokio::test]
async fn colours_only_on_a_terminal_and_never_with_no_color() {
    let Some(script) = common::required_tool("script", "bsdutils") else {
        return;
    };
    let server = start_server(&[]);
    let sandbox = Sandbox::new();
    sandbox
        .remote(&server)
        .run(&["link", "create", "https://example.com/c", "--code", "col1"])
        .ok();
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let on_terminal = |code: &str, envs: &[(&str, &str)]| -> (Option<i32>, String) {
        let line = [
            SNIP,
            "link",
            "show",
            code,
            "--server",
            &server.base,
            "--key",
            &server.admin_key,
        ]
        .map(quote)
        .join(" ");
        let mut cmd = sandbox.command(&script.display().to_string());
        cmd.args(["-qec", &line, "/dev/null"])
            .envs(envs.iter().copied());
        let (status, out, _) = bounded_output(cmd, b"", RUN_BOUND, "script snip link show");
        (status.code(), String::from_utf8_lossy(&out).into_owned())
    };
    let short_url = format!("{}/col1", server.base);

    let (code, out) = on_terminal("col1", &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("\x1b[1m{short_url}")),
        "the short URL is bold on a terminal: {out:?}"
    );
    let (code, out) = on_terminal("col1", &[("NO_COLOR", "1")]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&short_url), "{out:?}");
    assert!(!out.contains('\x1b'), "NO_COLOR=1: no colours: {out:?}");

    let (code, out) = on_terminal("nope1", &[]);
    assert_eq!(code, Some(4), "{out}");
    assert!(
        out.contains("\x1b[31msnip:"),
        "a red snip: on a terminal: {out:?}"
    );
    let (code, out) = on_terminal("nope1", &[("NO_COLOR", "1")]);
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("snip: link not found"), "{out:?}");
    assert!(!out.contains('\x1b'), "NO_COLOR=1: no colours: {out:?}");
}

/// `snip completions bash|zsh|fish` print a script that knows `snip` and its subcommands; an
/// unknown shell is a usage error; `snip man` prints a roff man page of snip.
#[test]
fn completions_and_the_man_page() {
    let sandbox = Sandbox::new();
    for shell in ["bash", "zsh", "fish"] {
        let run = sandbox.run(&["completions", shell]);
        let script = run.ok();
        for word in ["snip", "link", "login", "completions"] {
            assert!(script.contains(word), "{shell}: {word}: {}", run.context());
        }
    }
    sandbox.run(&["completions", "tcsh"]).exits(2);

    let man = sandbox.run(&["man"]);
    let page = man.ok();
    assert!(
        page.starts_with(".ie") || page.starts_with(".TH"),
        "roff: {}",
        man.context()
    );
    assert!(page.contains(".TH snip"), "{}", man.context());
    assert!(page.contains(".SH"), "{}", man.context());
    assert!(page.contains("login"), "{}", man.context());
}

// ---------------------------------------------------------------------------------------------
// Import and export (smoke: tests/import_export covers them)
// ---------------------------------------------------------------------------------------------

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
