//! The README is executed: every `sh` example of its "Quick start" runs, in order, in one shell
//! session against a real server started the way the README starts it, and its output must
//! match the `text` block that follows it, line by line.
//!
//! What may differ between the README and a run, and nothing else:
//! - random codes: a 7-character token of letters and digits with at least one of each, in an
//!   expected output, names a code; its first sight binds it to what the run printed there, and
//!   every later sight must print the same code (two names never bind one code);
//! - API keys (`snip_` + 32), key ids (`key_` + 12), RFC 3339 times, the `date:` header's
//!   value and `next_cursor` values;
//! - the port: the README's `127.0.0.1:8080` is replaced, in commands and outputs, by the
//!   server's port, chosen among free ports 8080–8999 so that lengths (and `content-length`)
//!   stay the same.
//!
//! A line `…` in an expected output accepts whatever follows; trailing blank lines are ignored. The block that starts the server
//! (`cargo run --release -- serve`) is checked against the server's real first-start output,
//! and the README's `export SNIP_KEY=snip_…` (a placeholder for the reader) is replaced by the
//! key the server printed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common;
use regex::Regex;

const README_ADDR: &str = "127.0.0.1:8080";
const SERVE_COMMAND: &str = "cargo run --release -- serve";
const BLOCK_TIMEOUT: Duration = Duration::from_secs(60);
/// The sections whose `sh` blocks run (in order, in one shell session).
const EXECUTED_SECTIONS: [&str; 2] = ["Quick start", "Command line"];

/// A fenced block of the README.
#[derive(Debug, Clone)]
struct Block {
    lang: String,
    text: String,
    /// 1-based line of the opening fence.
    line: usize,
    /// The `## ` section it is in.
    section: String,
}

fn fenced_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut section = String::new();
    let mut open: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        match &mut open {
            Some(block) => {
                if line.starts_with("```") {
                    blocks.push(open.take().expect("a block is open"));
                } else {
                    block.text.push_str(line);
                    block.text.push('\n');
                }
            }
            None => {
                if let Some(lang) = line.strip_prefix("```") {
                    open = Some(Block {
                        lang: lang.trim().to_string(),
                        text: String::new(),
                        line: i + 1,
                        section: section.clone(),
                    });
                } else if let Some(title) = line.strip_prefix("## ") {
                    section = title.trim().to_string();
                }
            }
        }
    }
    assert!(open.is_none(), "README has an unclosed code fence");
    blocks
}

/// Turns expected outputs into patterns and remembers which code each name bound to.
#[derive(Default)]
struct Matcher {
    /// Code named in the README → code the run printed.
    codes: HashMap<String, String>,
}

fn is_code_name(word: &str) -> bool {
    word.len() == 7
        && word.bytes().all(|b| b.is_ascii_alphanumeric())
        && word.bytes().any(|b| b.is_ascii_digit())
        && word.bytes().any(|b| b.is_ascii_alphabetic())
}

fn tokens() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r#"(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)|(?P<key>snip_[A-Za-z0-9]{32})|(?P<kid>key_[A-Za-z0-9]{12})|(?P<cursor>"next_cursor":"[A-Za-z0-9_=-]+")|(?P<word>[0-9A-Za-z_-]+)"#,
        )
        .expect("a valid regex")
    })
}

impl Matcher {
    /// Checks one actual line against one expected line; on success, binds new code names.
    fn line(&mut self, expected: &str, actual: &str) -> Result<(), String> {
        if let Some(value) = expected.strip_prefix("date: ") {
            return match actual.strip_prefix("date: ") {
                Some(v) if !v.is_empty() && !value.is_empty() => Ok(()),
                _ => Err("expected a date: header".into()),
            };
        }
        let mut pattern = String::from("^");
        let mut names = Vec::new();
        let mut last = 0;
        for m in tokens().captures_iter(expected) {
            let whole = m.get(0).expect("group 0 always matches");
            pattern.push_str(&regex::escape(&expected[last..whole.start()]));
            last = whole.end();
            if m.name("ts").is_some() {
                pattern.push_str(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z");
            } else if m.name("key").is_some() {
                pattern.push_str("snip_[A-Za-z0-9]{32}");
            } else if m.name("kid").is_some() {
                pattern.push_str("key_[A-Za-z0-9]{12}");
            } else if m.name("cursor").is_some() {
                pattern.push_str(r#""next_cursor":"[A-Za-z0-9_=-]+""#);
            } else {
                let word = whole.as_str();
                match self.codes.get(word) {
                    Some(bound) => pattern.push_str(&regex::escape(bound)),
                    None if is_code_name(word) => {
                        pattern.push_str("([0-9A-Za-z]{7})");
                        names.push(word.to_string());
                    }
                    None => pattern.push_str(&regex::escape(word)),
                }
            }
        }
        pattern.push_str(&regex::escape(&expected[last..]));
        pattern.push('$');
        let re = Regex::new(&pattern).map_err(|e| format!("bad pattern {pattern}: {e}"))?;
        let caps = re
            .captures(actual)
            .ok_or_else(|| format!("does not match (pattern {pattern})"))?;
        let mut new: HashMap<String, String> = HashMap::new();
        for (i, name) in names.iter().enumerate() {
            let value = caps
                .get(i + 1)
                .expect("every code name has a group")
                .as_str();
            if let Some(previous) = new.insert(name.clone(), value.to_string())
                && previous != value
            {
                return Err(format!("{name} stands for both {previous} and {value}"));
            }
        }
        for (name, value) in new {
            if let Some((other, _)) = self.codes.iter().find(|(_, v)| **v == value) {
                return Err(format!(
                    "{name} and {other} both stand for the code {value}"
                ));
            }
            self.codes.insert(name, value);
        }
        Ok(())
    }

    /// Checks a whole output; `…` alone on an expected line accepts the rest.
    fn output(&mut self, expected: &str, actual: &str) -> Result<(), String> {
        // Trailing blank lines (the end of a header block) are not shown in the README.
        let mut expected: Vec<&str> = expected.lines().collect();
        let mut actual: Vec<&str> = actual.lines().map(|l| l.trim_end_matches('\r')).collect();
        while expected.last() == Some(&"") {
            expected.pop();
        }
        while actual.last() == Some(&"") {
            actual.pop();
        }
        for (i, want) in expected.iter().enumerate() {
            if *want == "…" {
                return Ok(());
            }
            let Some(got) = actual.get(i) else {
                return Err(format!(
                    "line {}: expected {want:?}, the output has only {} lines",
                    i + 1,
                    actual.len()
                ));
            };
            self.line(want, got)
                .map_err(|e| format!("line {}: expected {want:?}, got {got:?}: {e}", i + 1))?;
        }
        if actual.len() > expected.len() {
            return Err(format!(
                "the output has {} more lines than expected, from {:?}",
                actual.len() - expected.len(),
                actual[expected.len()]
            ));
        }
        Ok(())
    }
}

/// The server the README starts, run as it says: `snip serve` in a fresh working directory,
/// embedded store and all defaults but the port (and the database on the PostgreSQL pass).
struct Server {
    child: Child,
    port: u16,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn drain(reader: impl std::io::Read + Send + 'static, sink: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            match line {
                Ok(line) => sink.lock().unwrap().push(line),
                Err(_) => break,
            }
        }
    });
}

impl Server {
    fn start(workdir: &Path) -> Server {
        let database = match common::backend() {
            common::Backend::Sqlite => None,
            common::Backend::Postgres(server) => {
                let name = format!("snip_readme_{:016x}", common::random_u64());
                common::psql(&server, &format!("CREATE DATABASE {name}"));
                Some(common::with_database(&server, &name))
            }
        };
        let mut failures = Vec::new();
        for port in 8080..=8999u16 {
            if TcpListener::bind(("127.0.0.1", port)).is_err() {
                continue;
            }
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_snip"));
            for (key, _) in std::env::vars() {
                if key.starts_with("SNIP_") {
                    cmd.env_remove(key);
                }
            }
            cmd.arg("serve")
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(database.iter().flat_map(|d| ["--database", d.as_str()]))
                .current_dir(workdir)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().expect("spawn snip serve");
            let stdout = Arc::new(Mutex::new(Vec::new()));
            let stderr = Arc::new(Mutex::new(Vec::new()));
            drain(child.stdout.take().expect("piped"), stdout.clone());
            drain(child.stderr.take().expect("piped"), stderr.clone());
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if stdout
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|l| l.starts_with("listening on"))
                {
                    return Server {
                        child,
                        port,
                        stdout,
                        stderr,
                    };
                }
                if let Some(status) = child.try_wait().expect("poll snip serve") {
                    // Another process took the port between the probe and the bind: next one.
                    failures.push(format!("port {port}: {status}"));
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "snip serve did not print its address within 30 s; stderr: {:?}",
                    stderr.lock().unwrap()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(
                failures.len() < 20,
                "snip serve did not start: {failures:?}"
            );
        }
        panic!("no free port in 8080–8999: {failures:?}");
    }

    /// Lines of the first-start output seen so far, stdout's then stderr's.
    fn output_lines(&self) -> Vec<String> {
        let mut lines = self.stdout.lock().unwrap().clone();
        lines.extend(self.stderr.lock().unwrap().iter().cloned());
        lines
    }

    fn admin_key(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self.stderr.lock().unwrap().iter().find_map(|l| {
                l.strip_prefix("snip: created admin API key: ")
                    .map(|k| k.trim().to_string())
            });
            if let Some(key) = found {
                return key;
            }
            assert!(
                Instant::now() < deadline,
                "no admin key on stderr: {:?}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then waits (bounded) for the exit the README promises: status 0.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("poll snip serve") {
                assert!(
                    status.success(),
                    "snip serve exited with {status} after SIGTERM"
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "snip serve still runs 30 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `script` in bash, in `workdir`, with the variables the previous blocks left in `state`.
fn run_block(script: &str, workdir: &Path, state: &Path, bin_dir: &Path) -> (bool, String, String) {
    let full = format!(
        "set -a\nset -e\n. {state}\ncd {workdir}\n{script}\nexport -p > {state}\n",
        state = state.display(),
        workdir = workdir.display(),
    );
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("bash")
        .args(["--noprofile", "--norc", "-c", &full])
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bash");
    let (tx, rx) = mpsc::channel();
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        let _ = tx.send((0, s));
    });
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        let _ = tx2.send((1, s));
    });
    let deadline = Instant::now() + BLOCK_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll bash") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("README block did not finish within {BLOCK_TIMEOUT:?}:\n{script}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut outputs = [String::new(), String::new()];
    for _ in 0..2 {
        let (i, s) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the block's output pipes close after it exits");
        outputs[i] = s;
    }
    let [stdout, stderr] = outputs;
    (status.success(), stdout, stderr)
}

#[test]
fn every_quick_start_example_in_the_readme_prints_what_the_readme_shows() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
    let blocks = fenced_blocks(&readme);

    let work = tempfile::tempdir().expect("temp dir");
    let workdir = work.path().join("work");
    let bin_dir = work.path().join("bin");
    std::fs::create_dir_all(&workdir).unwrap();
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_snip"), bin_dir.join("snip")).unwrap();
    let state = work.path().join("state.sh");

    let server = Server::start(&workdir);
    let addr = format!("127.0.0.1:{}", server.port);
    let key = server.admin_key();
    // The command line's own config file goes to a fresh directory, never the user's.
    let config = work.path().join("config");
    std::fs::write(
        &state,
        format!(
            "export SNIP_KEY='{key}'\nexport XDG_CONFIG_HOME='{}'\nexport HOME='{}'\n",
            config.display(),
            work.path().display()
        ),
    )
    .unwrap();
    let mut matcher = Matcher::default();

    // The start block: the README's first-start output is what the server printed.
    let start = blocks
        .iter()
        .position(|b| b.lang == "sh" && b.text.trim() == SERVE_COMMAND)
        .unwrap_or_else(|| panic!("README has no `{SERVE_COMMAND}` block"));
    let shown = blocks
        .get(start + 1)
        .filter(|b| b.lang == "text")
        .expect("the serve block is followed by its output");
    let printed = server.output_lines();
    for want in shown.text.lines() {
        let want = want.replace(README_ADDR, &addr);
        assert!(
            printed.iter().any(|got| matcher.line(&want, got).is_ok()),
            "README line {} shows {want:?} at first start; the server printed:\n{}",
            shown.line,
            printed.join("\n")
        );
    }

    let mut checked = 0;
    let mut run = 0;
    for (i, block) in blocks.iter().enumerate() {
        if !EXECUTED_SECTIONS.contains(&block.section.as_str()) || block.lang != "sh" {
            continue;
        }
        let script: String = block
            .text
            .lines()
            .filter(|l| !l.trim_start().starts_with("export SNIP_KEY=snip_…"))
            .map(|l| l.replace(README_ADDR, &addr) + "\n")
            .collect();
        let (ok, stdout, stderr) = run_block(&script, &workdir, &state, &bin_dir);
        run += 1;
        assert!(
            ok,
            "README block at line {} failed:\n{}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            block.line, block.text
        );
        if let Some(expected) = blocks.get(i + 1).filter(|b| b.lang == "text") {
            let expected_text = expected.text.replace(README_ADDR, &addr);
            if std::env::var_os("SNIP_README_PRINT").is_some() {
                // Refreshing the README: show every output instead of stopping at a mismatch.
                let verdict = matcher.output(&expected_text, &stdout);
                eprintln!(
                    "=== README line {} ({}):\n{}",
                    expected.line,
                    verdict.err().unwrap_or_else(|| "matches".into()),
                    stdout.replace(&addr, README_ADDR)
                );
                checked += 1;
                continue;
            }
            if let Err(why) = matcher.output(&expected_text, &stdout) {
                panic!(
                    "README block at line {} prints something else than the README shows \
                     (line {}): {why}\n--- command:\n{}--- README shows:\n{}--- printed:\n{stdout}\
                     --- stderr:\n{stderr}",
                    block.line, expected.line, block.text, expected.text
                );
            }
            checked += 1;
        }
    }
    assert!(
        run >= 15 && checked >= 12,
        "the Quick start should have its examples: ran {run} blocks, checked {checked} outputs"
    );
    server.stop();
}

#[test]
fn the_checker_refuses_a_changed_status_header_or_json_field() {
    let shown = "HTTP/1.1 201 Created\nlocation: /api/v1/links/4bxTaMC\n\n\
                 {\"code\":\"4bxTaMC\",\"title\":\"Example\",\"created_at\":\"2026-11-28T04:23:13Z\"}\n";
    let real = "HTTP/1.1 201 Created\r\nlocation: /api/v1/links/Zq81xPe\r\n\r\n\
                {\"code\":\"Zq81xPe\",\"title\":\"Example\",\"created_at\":\"2026-11-29T22:01:02Z\"}\n";
    Matcher::default()
        .output(shown, real)
        .expect("codes and times may differ");
    for (what, wrong) in [
        ("status", real.replace("201 Created", "200 OK")),
        ("header", real.replace("location:", "content-location:")),
        (
            "header value",
            real.replace("/api/v1/links/", "/api/v2/links/"),
        ),
        ("a JSON field", real.replace("\"title\"", "\"name\"")),
        ("a JSON value", real.replace("Example", "Exampel")),
        (
            "one code printed as two",
            real.replace("\"code\":\"Zq81xPe\"", "\"code\":\"Zq81xPf\""),
        ),
        ("a missing line", real.replace("\r\n\r\n", "\r\n")),
        ("an extra line", format!("{real}more\n")),
    ] {
        assert!(
            Matcher::default().output(shown, &wrong).is_err(),
            "a changed {what} must fail the check"
        );
    }
    let mut m = Matcher::default();
    m.output("[\"4bxTaMC\",\"J8xlcKM\"]", "[\"Zq81xPe\",\"Zq81xPe\"]")
        .expect_err("two names cannot stand for one code");
    let mut m = Matcher::default();
    m.output("4bxTaMC\n…\n", "Zq81xPe\nanything\nelse\n")
        .expect("… accepts the rest");
    m.output("{\"code\":\"4bxTaMC\"}", "{\"code\":\"Yq81xPe\"}")
        .expect_err("a bound code must stay the same");
}
