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

mod config;
mod exit_codes;
mod import_export;
mod keys;
mod links;
mod stats_and_qr;
mod terminal_output;

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

    /// `program` with the sandbox's environment: every `SNIP_*` variable and those of
    /// `common::CLIENT_ENV_REMOVED` (`NO_COLOR`, proxies) removed, as `common::snip_cli` does,
    /// `HOME` and `XDG_CONFIG_HOME` the sandbox's.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy();
            if name.starts_with("SNIP_") || common::CLIENT_ENV_REMOVED.contains(&name.as_ref()) {
                cmd.env_remove(key);
            }
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
