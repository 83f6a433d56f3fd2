//! Black-box test harness: starts the real `snip` binary on port 0 with a fresh data directory,
//! waits for its `listening on http://ADDR` line, and offers small HTTP helpers around it.
//!
//! A module of the test binary (`tests/suite.rs`) that every file of `tests/` uses; one crate now,
//! so a helper no test uses is reported as dead code.

pub mod mmdb_writer;

use std::collections::hash_map::RandomState;
use std::fmt::Debug;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use tempfile::TempDir;

/// How long a server may take to print its listening line, and to exit after SIGTERM.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the reader of an exited server's stderr may take to reach the end of the pipe.
const STDERR_EOF_TIMEOUT: Duration = Duration::from_secs(10);

/// A browser-like User-Agent, so that clicks made by tests are counted as human clicks.
pub const BROWSER_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 \
                              (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

/// The store the black-box suite runs against: SQLite unless `SNIP_TEST_BACKEND=postgres`,
/// which needs `SNIP_TEST_POSTGRES` (a server URL whose user may create databases;
/// `scripts/test.sh` starts one). Each test server gets a fresh database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

pub fn backend() -> Backend {
    match std::env::var("SNIP_TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => Backend::Sqlite,
        Ok("postgres") => Backend::Postgres(std::env::var("SNIP_TEST_POSTGRES").expect(
            "SNIP_TEST_BACKEND=postgres needs SNIP_TEST_POSTGRES (run scripts/test.sh, which \
             starts a throwaway PostgreSQL)",
        )),
        Ok(other) => panic!("SNIP_TEST_BACKEND must be sqlite or postgres, not {other:?}"),
    }
}

/// Whether this run tests the embedded store: tests of SQLite's own files (its journal, a
/// copied database) only make sense there.
pub fn is_sqlite() -> bool {
    backend() == Backend::Sqlite
}

/// A database of its own on the test PostgreSQL server for the data directory `dir`, created
/// on first use; a server restarted on the same directory gets the same database.
fn postgres_database(server: &str, dir: &TempDir) -> String {
    let marker = dir.path().join("postgres-database");
    let name = match std::fs::read_to_string(&marker) {
        Ok(name) => name,
        Err(_) => {
            let name = format!("snip_t_{:016x}", RandomState::new().build_hasher().finish());
            psql(server, &format!("CREATE DATABASE {name}"));
            std::fs::write(&marker, &name).expect("remember the test database");
            name
        }
    };
    with_database(server, &name)
}

/// `server` (a PostgreSQL URL) with its database replaced by `name`.
pub fn with_database(server: &str, name: &str) -> String {
    let mut url = reqwest::Url::parse(server).expect("SNIP_TEST_POSTGRES is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Runs one SQL command with `psql` against `url`; panics with its output when it fails.
pub fn psql(url: &str, sql: &str) -> String {
    psql_try(url, sql).unwrap_or_else(|e| panic!("psql {sql:?} failed: {e}"))
}

/// [`psql`], with the error as a value (for probes that wait for a server to catch up).
pub fn psql_try(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("run psql (scripts/postgres.sh installs it)");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A running `snip serve` child process and what a test needs to talk to it.
pub struct TestServer {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// The `--admin-listen` address, when the server has one.
    pub admin_addr: Option<SocketAddr>,
    /// `http://ADDR`, without a trailing slash.
    pub base: String,
    pub admin_key: String,
    /// Shared so that a restarted server can reuse the data directory of a stopped one.
    pub dir: Arc<TempDir>,
    pub db_path: PathBuf,
    /// The `--database` value the server runs with.
    pub database: String,
    pub client: reqwest::Client,
    /// Every line the server wrote to stderr so far.
    stderr: Arc<Mutex<Vec<String>>>,
    /// The thread reading stderr: finished once the pipe is closed (the server has exited).
    stderr_reader: Option<JoinHandle<()>>,
}

/// Options for starting a server; `TestServer::spawn` and friends cover the usual cases.
pub struct ServerBuilder {
    dir: Option<Arc<TempDir>>,
    admin_key: Option<String>,
    database: Option<String>,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    current_dir: Option<PathBuf>,
    open_file_limit: Option<u64>,
}

impl ServerBuilder {
    /// Reuse an existing data directory (for restarts).
    pub fn dir(mut self, dir: Arc<TempDir>) -> Self {
        self.dir = Some(dir);
        self
    }

    /// Use this admin key instead of a freshly generated one.
    pub fn admin_key(mut self, key: &str) -> Self {
        self.admin_key = Some(key.to_owned());
        self
    }

    /// Start without `--admin-key`, so that the server has to print one.
    pub fn no_admin_key(mut self) -> Self {
        self.admin_key = None;
        self
    }

    /// Pass this `--database` value instead of `sqlite:///<dir>/snip.db`.
    pub fn database(mut self, database: &str) -> Self {
        self.database = Some(database.to_owned());
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn current_dir(mut self, dir: PathBuf) -> Self {
        self.current_dir = Some(dir);
        self
    }

    /// Run the server with this soft and hard limit on open files (through `prlimit`, which
    /// execs it: the process id stays the server's).
    pub fn open_file_limit(mut self, limit: u64) -> Self {
        self.open_file_limit = Some(limit);
        self
    }

    /// Spawn the binary and wait until it reports its listening address.
    pub fn start(self) -> TestServer {
        let dir = self
            .dir
            .unwrap_or_else(|| Arc::new(tempfile::tempdir().expect("create temp dir")));
        let db_path = dir.path().join("snip.db");
        let database = self.database.unwrap_or_else(|| match backend() {
            Backend::Sqlite => format!("sqlite://{}", db_path.display()),
            Backend::Postgres(server) => postgres_database(&server, &dir),
        });

        let mut cmd = match self.open_file_limit {
            None => Command::new(env!("CARGO_BIN_EXE_snip")),
            Some(limit) => {
                let mut cmd = Command::new("prlimit");
                cmd.arg(format!("--nofile={limit}:{limit}"))
                    .arg("--")
                    .arg(env!("CARGO_BIN_EXE_snip"));
                cmd
            }
        };
        for (key, _) in std::env::vars() {
            if key.starts_with("SNIP_") {
                cmd.env_remove(key);
            }
        }
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(["--database", &database])
            .args(["--log-format", "json"]);
        if let Some(key) = &self.admin_key {
            cmd.args(["--admin-key", key]);
        }
        cmd.args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .current_dir(self.current_dir.unwrap_or_else(|| dir.path().to_owned()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn the snip binary");

        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stderr_reader = drain_lines(child.stderr.take().expect("stderr is piped"), {
            let stderr = Arc::clone(&stderr);
            move |line| stderr.lock().unwrap().push(line)
        });
        let (tx, rx) = mpsc::channel();
        drain_lines(child.stdout.take().expect("stdout is piped"), move |line| {
            let _ = tx.send(line);
        });

        let (addr, admin_addr) = match wait_for_listening_line(&rx) {
            Ok(addrs) => addrs,
            Err(why) => {
                let _ = child.kill();
                let status = child.wait().ok();
                // The stderr thread picks up the last lines once the process has exited.
                wait_for_thread(&stderr_reader, STDERR_EOF_TIMEOUT);
                let log = stderr.lock().unwrap().join("\n");
                panic!(
                    "snip did not report its listening address: {why}; exit status {status:?}; \
                     stderr:\n{log}"
                );
            }
        };

        TestServer {
            child: Some(child),
            addr,
            admin_addr,
            base: format!("http://{addr}"),
            admin_key: self.admin_key.unwrap_or_default(),
            dir,
            db_path,
            database,
            client: http_client(),
            stderr,
            stderr_reader: Some(stderr_reader),
        }
    }
}

/// Read `reader` line by line on a background thread until EOF, handing each line to `sink`,
/// so that the child never blocks on a full pipe. The thread finishes at EOF.
fn drain_lines<R: Read + Send + 'static>(
    reader: R,
    mut sink: impl FnMut(String) + Send + 'static,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => sink(String::from_utf8_lossy(&buf).trim_end().to_owned()),
            }
        }
    })
}

/// Wait (polling, at most `timeout`) until `thread` has finished; returns whether it did.
fn wait_for_thread(thread: &JoinHandle<()>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while !thread.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
    true
}

/// The address of the `listening on` line, and of the `admin listener on` line printed before it
/// (with `--admin-listen`).
fn wait_for_listening_line(
    rx: &mpsc::Receiver<String>,
) -> Result<(SocketAddr, Option<SocketAddr>), String> {
    const MARKER: &str = "listening on http://";
    const ADMIN: &str = "admin listener on http://";
    let mut admin = None;
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!("no listening line within {STARTUP_TIMEOUT:?}"));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err("stdout closed before the listening line".into());
            }
        };
        let address = |at: usize| -> Result<SocketAddr, String> {
            let addr: String = line[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
                .collect();
            addr.parse()
                .map_err(|e| format!("cannot parse address {addr:?} in {line:?}: {e}"))
        };
        if let Some(pos) = line.find(ADMIN) {
            admin = Some(address(pos + ADMIN.len())?);
        } else if let Some(pos) = line.find(MARKER) {
            return Ok((address(pos + MARKER.len())?, admin));
        }
    }
}

impl TestServer {
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            dir: None,
            admin_key: Some(random_secret()),
            database: None,
            args: Vec::new(),
            envs: Vec::new(),
            current_dir: None,
            open_file_limit: None,
        }
    }

    /// A fresh server with its own data directory and admin key.
    pub fn spawn(extra_args: &[&str]) -> TestServer {
        Self::builder().args(extra_args).start()
    }

    /// Start a new server on this (stopped) server's data directory with the same admin key.
    pub fn restart(&self, extra_args: &[&str]) -> TestServer {
        assert!(
            self.child.is_none(),
            "stop the old server before restarting"
        );
        Self::builder()
            .dir(Arc::clone(&self.dir))
            .admin_key(&self.admin_key)
            .args(extra_args)
            .start()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// Send SIGTERM, wait for the process to exit and assert that it exited with status 0.
    pub fn sigterm(&mut self) {
        self.stop_with("TERM");
    }

    /// Send SIGINT, wait for the process to exit and assert that it exited with status 0.
    pub fn sigint(&mut self) {
        self.stop_with("INT");
    }

    fn stop_with(&mut self, signal: &str) {
        let pid = self.pid();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid} failed: {status}");
        let exit = self.wait_for_exit(SHUTDOWN_TIMEOUT);
        assert!(
            exit.success(),
            "snip should exit with status 0 after SIG{signal}, got {exit}"
        );
    }

    /// Kill the server with SIGKILL and reap it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("server is running");
        child.kill().expect("kill -9 the server");
        child.wait().expect("reap the server");
    }

    fn wait_for_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("server is running");
        wait_within(&mut child, timeout, "snip")
    }

    /// Everything the server has written to stderr so far (as far as the thread reading the
    /// pipe has got: a line written just now may not be here yet; see `wait_for_stderr` and
    /// `stderr_after_exit`).
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Poll the server's stderr until a line contains `needle` and return that line; panics
    /// after `timeout` showing every line seen.
    pub async fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> String {
        let lines = eventually(
            timeout,
            || async { self.stderr_lines() },
            |lines| lines.iter().any(|l| l.contains(needle)),
        )
        .await;
        lines
            .iter()
            .find(|l| l.contains(needle))
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "no stderr line with {needle:?} within {timeout:?}; stderr:\n{}",
                    lines.join("\n")
                )
            })
    }

    /// Everything the server wrote to stderr, complete: only after it has been stopped
    /// (`sigterm`, `sigint`, `kill9`), once the reader has reached the end of the pipe. For
    /// assertions that a line was never written.
    pub fn stderr_after_exit(&self) -> Vec<String> {
        assert!(
            self.child.is_none(),
            "stop the server before reading all of its stderr"
        );
        let reader = self.stderr_reader.as_ref().expect("stderr is read");
        assert!(
            wait_for_thread(reader, STDERR_EOF_TIMEOUT),
            "the server's stderr was not closed within {STDERR_EOF_TIMEOUT:?} of its exit"
        );
        self.stderr_lines()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request to `path` authenticated with the admin key.
    pub fn api(&self, method: Method, path: &str) -> RequestBuilder {
        self.api_as(&self.admin_key, method, path)
    }

    /// A request to `path` authenticated with `key`.
    /// Sends an admin-authenticated request without a body.
    pub async fn call(&self, method: Method, path: &str) -> Response {
        self.api(method, path)
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {path} failed: {e}"))
    }

    pub fn api_as(&self, key: &str, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(key)
    }

    /// `POST /api/v1/links` with the admin key.
    pub async fn create_link(&self, body: Value) -> Response {
        self.create_link_as(&self.admin_key, body).await
    }

    pub async fn create_link_as(&self, key: &str, body: Value) -> Response {
        self.api_as(key, Method::POST, "/api/v1/links")
            .json(&body)
            .send()
            .await
            .expect("POST /api/v1/links")
    }

    /// `PATCH /api/v1/links/{code}` with the admin key.
    pub async fn patch_link(&self, code: &str, body: Value) -> Response {
        self.api(Method::PATCH, &format!("/api/v1/links/{code}"))
            .json(&body)
            .send()
            .await
            .expect("PATCH /api/v1/links/{code}")
    }

    /// Create a link for `url`, assert 201 and return the link object.
    pub async fn new_link(&self, body: Value) -> Value {
        let resp = self.create_link(body.clone()).await;
        expect_json(resp, StatusCode::CREATED, &format!("creating {body}")).await
    }

    /// Create an API key with `role` and return its secret.
    pub async fn create_key(&self, role: &str) -> String {
        let key = self.create_key_object("test key", role).await;
        key["key"].as_str().expect("key secret").to_owned()
    }

    /// Create an API key and return the whole `{"id","name","role","key","created_at"}` object.
    pub async fn create_key_object(&self, name: &str, role: &str) -> Value {
        let resp = self
            .api(Method::POST, "/api/v1/keys")
            .json(&serde_json::json!({ "name": name, "role": role }))
            .send()
            .await
            .expect("POST /api/v1/keys");
        expect_json(resp, StatusCode::CREATED, "creating an API key").await
    }

    /// An unauthenticated GET of a short link (redirects are not followed).
    pub async fn visit(&self, code: &str) -> Response {
        self.client
            .get(self.url(&format!("/{code}")))
            .send()
            .await
            .expect("GET /{code}")
    }

    pub async fn head(&self, code: &str) -> Response {
        self.client
            .head(self.url(&format!("/{code}")))
            .send()
            .await
            .expect("HEAD /{code}")
    }

    /// `GET /api/v1/links/{code}/stats{query}` as admin; asserts 200.
    pub async fn stats(&self, code: &str, query: &str) -> Value {
        let resp = self
            .api(Method::GET, &format!("/api/v1/links/{code}/stats{query}"))
            .send()
            .await
            .expect("GET stats");
        expect_json(resp, StatusCode::OK, "reading stats").await
    }

    /// `total_clicks` of a link, as reported by the stats endpoint.
    pub async fn total_clicks(&self, code: &str) -> i64 {
        let stats = self.stats(code, "").await;
        stats["total_clicks"]
            .as_i64()
            .unwrap_or_else(|| panic!("total_clicks is not an integer: {stats}"))
    }

    /// Poll stats until `total_clicks` of `code` reaches `expected` (or time runs out) and return
    /// the last value seen.
    pub async fn wait_for_total_clicks(&self, code: &str, expected: i64) -> i64 {
        eventually(
            Duration::from_secs(10),
            || self.total_clicks(code),
            |total| *total >= expected,
        )
        .await
    }

    /// Assert that `GET /health/live` still answers 200.
    pub async fn assert_alive(&self) {
        let resp = self
            .client
            .get(self.url("/health/live"))
            .send()
            .await
            .expect("the server should still accept connections");
        assert_eq!(resp.status(), StatusCode::OK, "GET /health/live");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The settings of every test's client: no redirect following, 10 s timeout, no proxies, a
/// browser's user agent.
fn client_builder() -> reqwest::ClientBuilder {
    snip::cli::client::install_tls_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .user_agent(BROWSER_UA)
}

/// The client every test uses (see [`client_builder`]).
pub fn http_client() -> reqwest::Client {
    client_builder().build().expect("build reqwest client")
}

/// A client that keeps at most one idle connection, for "N concurrent connections" tests.
pub fn single_connection_client() -> reqwest::Client {
    client_builder()
        .pool_max_idle_per_host(1)
        .build()
        .expect("build reqwest client")
}

/// A client speaking HTTP/2 by prior knowledge (h2c, as a proxy to its backend).
pub fn http2_client() -> reqwest::Client {
    client_builder()
        .http2_prior_knowledge()
        .build()
        .expect("build an HTTP/2 client")
}

/// A random `u64` from the standard library's randomly seeded hasher.
pub fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// A fresh secret that looks like a snip API key: `snip_` and 32 base62 characters.
pub fn random_secret() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = XorShift::new(random_u64());
    let body: String = (0..32)
        .map(|_| ALPHABET[(rng.next() % ALPHABET.len() as u64) as usize] as char)
        .collect();
    format!("snip_{body}")
}

/// A tiny deterministic PRNG for bounded randomized tests (seed it and print the seed).
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Poll `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub async fn wait_until<F, Fut>(mut condition: F, timeout: Duration) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of an unlabelled series on the server's `/metrics` (0 when it is not there yet).
pub async fn metric(server: &TestServer, name: &str) -> f64 {
    let text = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("read /metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

/// The path of command-line tool `name` (from Debian package `package`), which scripts/test.sh
/// installs. When it is missing, a run of scripts/test.sh (`SNIP_TEST_REQUIRE_SERVICES`) fails
/// here; a bare `cargo test` prints a note and the caller returns.
pub fn required_tool(name: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("SNIP_TEST_REQUIRE_SERVICES").is_none(),
            "{name} is missing (Debian package {package}; scripts/test.sh installs it)"
        );
        eprintln!("{name} is missing (Debian package {package}): run through scripts/test.sh");
    }
    found
}

/// Poll `probe` every 20 ms until `done` accepts its value and return that value; panics after
/// `timeout` with `what` (the fact waited for) and the last value seen.
pub async fn poll_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    probe: F,
    done: impl Fn(&T) -> bool,
) -> T
where
    T: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let value = eventually(timeout, probe, &done).await;
    assert!(
        done(&value),
        "{what}: not within {timeout:?}; last seen: {value:?}"
    );
    value
}

/// Poll `probe` every 20 ms until `done` accepts its value or `timeout` passes; returns the last
/// value, so that the caller's assertion can show what was seen.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut probe: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let value = probe().await;
        if done(&value) || Instant::now() >= deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Assert the status of `resp` and parse its body as JSON.
pub async fn expect_json(resp: Response, status: StatusCode, what: &str) -> Value {
    let got = resp.status();
    let text = resp.text().await.expect("read response body");
    assert_eq!(got, status, "{what}: unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {text}"))
}

/// Assert that `resp` is an RFC 9457 problem with this status and `code`, and return its body.
pub async fn expect_problem(resp: Response, status: StatusCode, code: &str, what: &str) -> Value {
    let got = resp.status();
    let content_type = header(&resp, "content-type");
    let text = resp.text().await.expect("read response body");
    assert_eq!(
        got, status,
        "{what}: expected {status} `{code}`, got {got}; body: {text}"
    );
    assert!(
        content_type.starts_with("application/problem+json"),
        "{what}: content-type should be application/problem+json, got {content_type:?}; body: {text}"
    );
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{what}: problem body is not JSON ({e}): {text}"));
    assert_eq!(body["code"], code, "{what}: problem code; body: {text}");
    assert_eq!(
        body["status"],
        status.as_u16(),
        "{what}: problem status member; body: {text}"
    );
    for member in ["type", "title", "detail"] {
        assert!(
            body[member].is_string(),
            "{what}: problem member `{member}` should be a string; body: {text}"
        );
    }
    body
}

/// A header value as a string ("" when absent or not visible ASCII).
pub fn header(resp: &Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Assert that a `Retry-After` header is present and is a whole number of seconds.
pub fn assert_retry_after(resp: &Response, what: &str) {
    let value = header(resp, "retry-after");
    assert!(
        value.parse::<u64>().is_ok(),
        "{what}: Retry-After should be an integer number of seconds, got {value:?}"
    );
}

/// The `code` member of a link object.
pub fn code_of(link: &Value) -> String {
    link["code"]
        .as_str()
        .unwrap_or_else(|| panic!("link has no code: {link}"))
        .to_owned()
}

/// An RFC 3339 UTC timestamp `offset` from now, with milliseconds.
pub fn rfc3339_from_now(offset: chrono::Duration) -> String {
    (chrono::Utc::now() + offset).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A response read off a raw TCP connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header lines as sent, lower-cased names: `("content-type", "text/plain")`.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Send raw bytes over a new TCP connection (the request should say `Connection: close`) and
/// read the whole response. A write error is tolerated when the server answered early (it may
/// reject a request before reading all of it); the response is what counts. Returns a
/// description of the failure when no complete status line and header block arrived.
pub fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Result<RawResponse, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let write_error = stream.write_all(request).err();
    let mut response = Vec::new();
    let mut chunk = [0u8; 8192];
    let read_error = loop {
        match stream.read(&mut chunk) {
            Ok(0) => break None,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            Err(e) => break Some(e),
        }
    };
    let Some(head_end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(format!(
            "no complete response head (write error: {write_error:?}, read error: \
             {read_error:?}); received {:?}",
            String::from_utf8_lossy(&response)
        ));
    };
    let head = String::from_utf8_lossy(&response[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.split(' ');
    let status = match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(version), Some(Ok(status))) if version.starts_with("HTTP/1.") => status,
        _ => return Err(format!("not an HTTP/1 status line: {status_line:?}")),
    };
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut raw = RawResponse {
        status,
        headers,
        body: response[head_end + 4..].to_vec(),
    };
    if raw
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        raw.body = dechunk(&raw.body);
    }
    Ok(raw)
}

/// Decode a `Transfer-Encoding: chunked` body (as far as it is well-formed).
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim().to_owned();
        let Ok(size) = usize::from_str_radix(&size_text, 16) else {
            break;
        };
        let start = line_end + 2;
        if size == 0 || data.len() < start + size {
            break;
        }
        out.extend_from_slice(&data[start..start + size]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

/// The status code of `raw_exchange`.
pub fn raw_request(addr: SocketAddr, request: &[u8]) -> Result<u16, String> {
    raw_exchange(addr, request).map(|r| r.status)
}

/// A PostgreSQL cluster of a test's own (`scripts/postgres.sh`), for tests that stop, restart
/// or replicate it; stopped on drop.
pub struct PgCluster {
    pub dir: TempDir,
    /// Server URL (database `postgres`).
    pub url: String,
}

/// Runs one of the project's `scripts/` (e.g. `postgres.sh`) with `args`; panics with its
/// stderr when it fails, returns its trimmed stdout.
pub fn project_script(name: &str, args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("scripts")
                .join(name),
        )
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run scripts/{name}: {e}"));
    assert!(
        out.status.success(),
        "scripts/{name} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn postgres_script(args: &[&str]) -> String {
    project_script("postgres.sh", args)
}

impl PgCluster {
    pub fn start() -> PgCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = postgres_script(&["start", &dir.path().join("data").display().to_string()]);
        PgCluster { dir, url }
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// A streaming replica of this cluster (`pg_basebackup -R`), on a port of its own.
    pub fn replica(&self) -> PgCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = postgres_script(&[
            "replica",
            &self.data(),
            &dir.path().join("data").display().to_string(),
        ]);
        PgCluster { dir, url }
    }

    /// `pg_ctl stop -m immediate`: like a crash or a power cut of the database server.
    pub fn crash(&self) {
        postgres_script(&["stop", &self.data(), "immediate"]);
    }

    /// Starts it again on the same port.
    pub fn restart(&self) {
        let url = postgres_script(&["start", &self.data()]);
        assert_eq!(url, self.url, "restarted on the same port");
    }

    /// A new database on this cluster; returns its URL.
    pub fn database(&self, name: &str) -> String {
        psql(&self.url, &format!("CREATE DATABASE {name}"));
        with_database(&self.url, name)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres.sh"))
            .args(["stop", &self.data(), "immediate"])
            .output();
    }
}

/// Variables of the test's environment that a client run must not see (besides `SNIP_*`).
pub const CLIENT_ENV_REMOVED: &[&str] = &[
    "NO_COLOR",
    "TMUX",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

/// `snip ARGS` as a user runs the client: a fresh empty HOME and XDG_CONFIG_HOME under `home`
/// (no saved login), and none of the `SNIP_*` variables, `NO_COLOR`, `TMUX` or proxy settings
/// of the test's environment (a test sets what it means to).
pub fn snip_cli(home: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_snip"));
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if name.starts_with("SNIP_") || CLIENT_ENV_REMOVED.contains(&name.as_ref()) {
            cmd.env_remove(key);
        }
    }
    let config = home.join(".config");
    std::fs::create_dir_all(&config).expect("create the test HOME");
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", &config)
        .current_dir(home);
    cmd
}

/// The output of a command run to its end, with stdin closed; its pipes are read while it
/// runs. Panics (after killing it) when it has not exited within `timeout`.
pub fn output_within(cmd: &mut Command, timeout: Duration) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("piped")));
    let stderr = read_all(Box::new(child.stderr.take().expect("piped")));
    let status = wait_within(&mut child, timeout, &format!("{cmd:?}"));
    std::process::Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Waits (polling) at most `bound` for `child` to exit; kills it and panics after that.
pub fn wait_within(child: &mut Child, bound: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {bound:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}
