//! `snip import` on a real terminal: inside tmux (a server of the test's own, a fixed 120×30
//! window), an import of 200,000 rows over the API draws its progress bar on stderr (the bar,
//! the percentage, "N rows, R rows/s", the ETA) while it runs, and the summary at the end.
//!
//! Needs tmux (Debian package `tmux`): without it this test fails, saying so.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{self, TestServer};

const ROWS: u64 = 200_000;
/// How long the bar may take to show up, and the whole import to finish (a debug build).
const BAR_TIMEOUT: Duration = Duration::from_secs(60);
const IMPORT_TIMEOUT: Duration = Duration::from_secs(600);

/// The tmux binary; the test fails when it is missing.
fn tmux_binary() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("tmux"))
                .find(|p| p.is_file())
        })
        .expect(
            "tmux is missing: this test drives `snip import` on a terminal through tmux; install \
             it (Debian: apt-get install -y tmux) and run again",
        )
}

/// A tmux server on a socket of its own, killed on drop (also when the test fails).
struct Tmux {
    bin: PathBuf,
    socket: String,
}

impl Tmux {
    fn new() -> Tmux {
        Tmux {
            bin: tmux_binary(),
            socket: format!("snip-test-{:016x}", common::random_u64()),
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env_remove("TMUX").args(["-L", &self.socket]);
        cmd
    }

    /// Runs a tmux command to its end (at most 20 s); panics when it fails.
    fn run(&self, args: &[&str]) -> Output {
        let out = common::output_within(self.command().args(args), Duration::from_secs(20));
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// What the window shows now, with the lines scrolled off its top before (`-S -`: when
    /// the pane's process ends, tmux 3.3 scrolls the pane up a line to write "Pane is dead").
    fn screen(&self, target: &str) -> String {
        String::from_utf8_lossy(
            &self
                .run(&["capture-pane", "-p", "-S", "-", "-t", target])
                .stdout,
        )
        .into_owned()
    }

    /// Polls the screen until `done` accepts it; panics after `timeout` showing the last one.
    fn wait_for_screen(
        &self,
        target: &str,
        what: &str,
        timeout: Duration,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen(target);
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not on the screen within {timeout:?}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = common::output_within(self.command().arg("kill-server"), Duration::from_secs(20));
    }
}

/// Single-quotes `s` for sh.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Writes snip's CSV of `rows` links `t000000`…; the rows numbered in `bad` (0-based) get a
/// destination no import accepts instead.
fn write_csv(path: &Path, rows: u64, bad: &[u64]) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create the CSV"));
    writeln!(out, "code,url,title").unwrap();
    for i in 0..rows {
        if bad.contains(&i) {
            writeln!(out, "t{i:06},javascript:alert({i}),Row {i}").unwrap();
        } else {
            writeln!(out, "t{i:06},https://example.com/terminal/{i},Row {i}").unwrap();
        }
    }
    out.flush().unwrap();
}

/// Whether a screen line is (a piece of) the progress bar: its ETA or its bar characters.
fn bar_remnant(line: &str) -> bool {
    line.contains("ETA") || line.contains('█') || line.contains('▌')
}

/// A server (on SQLite whatever the backend of the run: this is about the terminal) and an
/// import of `rows` rows (`bad` ones rejected) running in a tmux window of 120×30.
struct Scene {
    tmux: Tmux,
    server: TestServer,
    /// The CSV, the client's HOME and the store (removed when the scene ends).
    _work: tempfile::TempDir,
    csv: PathBuf,
}

const SESSION: &str = "import";

impl Scene {
    fn start(rows: u64, bad: &[u64]) -> Scene {
        let tmux = Tmux::new();
        let work = tempfile::tempdir().expect("temp dir");
        // reqwest is built with `rustls-no-provider`: the harness's client needs one installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = TestServer::builder()
            .database(&format!(
                "sqlite://{}",
                work.path().join("snip.db").display()
            ))
            .start();
        let csv = work.path().join("links.csv");
        write_csv(&csv, rows, bad);
        let home = work.path().join("home");
        std::fs::create_dir_all(home.join(".config")).unwrap();

        // The pane runs this script: the client as a user runs it, then its exit status.
        let script = work.path().join("import.sh");
        std::fs::write(
            &script,
            format!(
                "unset SNIP_SERVER SNIP_KEY SNIP_DATABASE {removed}\n\
                 export HOME={home} XDG_CONFIG_HOME={config}\n\
                 cd {home}\n\
                 {snip} import --from csv --batch 200 --server {base} --key {key} {csv}\n\
                 echo \"snip exited with status $?\"\n",
                removed = common::CLIENT_ENV_REMOVED.join(" "),
                home = quoted(&home.display().to_string()),
                config = quoted(&home.join(".config").display().to_string()),
                snip = quoted(env!("CARGO_BIN_EXE_snip")),
                base = quoted(&server.base),
                key = quoted(&server.admin_key),
                csv = quoted(&csv.display().to_string()),
            ),
        )
        .unwrap();
        // A configuration of its own (not the user's): the pane stays on the screen after the
        // script ends, so that the summary can be read.
        let conf = work.path().join("tmux.conf");
        std::fs::write(
            &conf,
            "set -g remain-on-exit on\nset -g history-limit 1000\n",
        )
        .unwrap();
        let script_arg = format!("sh {}", quoted(&script.display().to_string()));
        tmux.run(&[
            "-f",
            &conf.display().to_string(),
            "new-session",
            "-d",
            "-x",
            "120",
            "-y",
            "30",
            "-s",
            SESSION,
            &script_arg,
        ]);
        Scene {
            tmux,
            server,
            _work: work,
            csv,
        }
    }

    /// Polls until the bar is drawn with the rows and the rate; that line.
    fn wait_for_bar(&self) -> String {
        let screen = self
            .tmux
            .wait_for_screen(SESSION, "the progress bar", BAR_TIMEOUT, |s| {
                s.lines().any(is_bar)
            });
        screen.lines().find(|l| is_bar(l)).unwrap().to_string()
    }

    /// Polls until the script has ended; the screen.
    fn wait_for_end(&self) -> String {
        self.tmux
            .wait_for_screen(SESSION, "the end of the import", IMPORT_TIMEOUT, |s| {
                s.contains("snip exited with status")
            })
    }
}

/// The bar while the import runs: its bar, percentage, rows, rate and ETA on one line.
fn is_bar(line: &str) -> bool {
    line.contains('%')
        && line.contains(" rows, ")
        && line.contains("rows/s")
        && line.contains("ETA")
        && line.contains('[')
        && line.contains(']')
}

#[tokio::test(flavor = "multi_thread")]
async fn import_on_a_terminal_draws_a_progress_bar_then_prints_the_summary() {
    let scene = Scene::start(ROWS, &[]);
    let bar = scene.wait_for_bar();
    assert!(
        bar.chars().count() <= 120,
        "the bar fits the 120-column window: {bar:?}"
    );
    let percent: u32 = bar
        .split('%')
        .next()
        .and_then(|before| before.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a percentage before '%' in {bar:?}"));
    assert!(percent <= 100, "percentage {percent} in {bar:?}");

    // The end: the summary on stdout and a clean exit; the bar is cleared.
    let screen = scene.wait_for_end();
    let summary =
        format!("imported {ROWS}, already present 0, taken by another destination 0, rejected 0");
    assert!(
        screen.lines().any(|l| l.trim_end() == summary),
        "the summary line {summary:?} is on the screen:\n{screen}"
    );
    assert!(
        screen.contains("snip exited with status 0"),
        "snip exits with 0:\n{screen}"
    );
    assert!(
        !screen.lines().any(bar_remnant),
        "the bar is cleared at the end:\n{screen}"
    );
    assert!(
        !Path::new(&format!("{}.import-checkpoint", scene.csv.display())).exists(),
        "the checkpoint is removed at the end"
    );

    // The first and the last row are links of the server.
    for i in [0, ROWS - 1] {
        let code = format!("t{i:06}");
        let resp = scene
            .server
            .call(reqwest::Method::GET, &format!("/api/v1/links/{code}"))
            .await;
        let link = common::expect_json(resp, reqwest::StatusCode::OK, &code).await;
        assert_eq!(link["url"], format!("https://example.com/terminal/{i}"));
        assert_eq!(link["title"], format!("Row {i}"));
    }
}

/// Rejected rows reported on stderr while the bar is drawn: the messages are readable and no
/// piece of the bar is left on the screen at the end.
#[tokio::test(flavor = "multi_thread")]
async fn rejected_rows_reported_under_the_bar_leave_no_piece_of_it() {
    const ROWS: u64 = 50_000;
    let bad = [45_000, 45_001, 45_002];
    let scene = Scene::start(ROWS, &bad);
    scene.wait_for_bar();
    let screen = scene.wait_for_end();
    let summary = format!(
        "imported {}, already present 0, taken by another destination 0, rejected 3",
        ROWS - 3
    );
    assert!(
        screen.lines().any(|l| l.trim_end() == summary),
        "the summary line {summary:?} is on the screen:\n{screen}"
    );
    for row in bad {
        // Source line: the header is line 1.
        let line = format!("line {}: rejected: ", row + 2);
        assert!(
            screen.lines().any(|l| l.starts_with(&line)),
            "{line:?} on a line of its own:\n{screen}"
        );
    }
    assert!(
        screen.contains("snip exited with status 0"),
        "snip exits with 0:\n{screen}"
    );
    let remnants: Vec<&str> = screen.lines().filter(|l| bar_remnant(l)).collect();
    assert!(
        remnants.is_empty(),
        "pieces of the progress bar are left on the screen: {remnants:?}\nthe screen:\n{screen}"
    );
}
