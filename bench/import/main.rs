//! How fast `snip import` moves a migration: (a) ROWS_API rows of snip's CSV over the API of a
//! running `snip serve` (the release binary, on a new SQLite store, default settings), target
//! under 60 s for 100,000 rows; then the same links back out with `snip export`; (b) ROWS_OFFLINE
//! rows written straight into a new SQLite store with `snip import --database` (the server
//! stopped), target at least 100,000 rows/s. Each count is checked in the store afterwards.
//! Prints a table with the machine, the date, rows, seconds and rows/s (docs/benchmarks.md).
//!
//! Usage: `cargo build --release --bin snip --example import`, then
//! `cargo run --release --example import [ROWS_API] [ROWS_OFFLINE]` (defaults 100000 and
//! 1000000). It runs `target/release/snip` (beside the directory of this example's own
//! executable) as separate processes, as a user would.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "snip_importbenchmarkkey000000000000000";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = |i: usize, default: u64| -> u64 {
        args.get(i).map_or(default, |a| {
            a.parse().unwrap_or_else(|_| {
                eprintln!("usage: import [ROWS_API] [ROWS_OFFLINE] (numbers of rows)");
                std::process::exit(2)
            })
        })
    };
    let rows_api = count(0, 100_000);
    let rows_offline = count(1, 1_000_000);
    let snip = snip_binary();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut results = Vec::new();

    // (a) Over the API.
    let api_csv = dir.path().join("api.csv");
    generate(&api_csv, rows_api);
    let api_db = dir.path().join("api.db");
    let database = format!("sqlite://{}", api_db.display());
    let mut server = Server::start(&snip, &database, dir.path());
    let started = Instant::now();
    let out = run(Command::new(&snip)
        .args(["import", "--from", "csv", "--no-progress", "--json"])
        .arg(&api_csv)
        .args(["--server", &server.base, "--key", KEY]));
    let secs = started.elapsed().as_secs_f64();
    check_summary(&out, rows_api, "the import over the API");
    results.push((
        "import over the API (--batch 500)",
        rows_api,
        secs,
        Target::Seconds(60.0 * rows_api as f64 / 100_000.0),
    ));

    let exported = dir.path().join("export.csv");
    let started = Instant::now();
    run(Command::new(&snip)
        .args([
            "export",
            "--no-progress",
            "--server",
            &server.base,
            "--key",
            KEY,
            "--out",
        ])
        .arg(&exported));
    let secs = started.elapsed().as_secs_f64();
    let lines = std::fs::read_to_string(&exported)
        .expect("read the export")
        .lines()
        .count() as u64;
    assert_eq!(
        lines,
        rows_api + 1,
        "the export has a header and every link"
    );
    results.push(("export (CSV)", rows_api, secs, Target::None));
    server.stop();
    assert_eq!(links_in(&api_db), rows_api, "links in the server's store");

    // (b) Straight into a store.
    let offline_csv = dir.path().join("offline.csv");
    generate(&offline_csv, rows_offline);
    let offline_db = dir.path().join("offline.db");
    let started = Instant::now();
    let out = run(Command::new(&snip)
        .args(["import", "--from", "csv", "--no-progress", "--json"])
        .arg(&offline_csv)
        .args(["--database", &format!("sqlite://{}", offline_db.display())]));
    let secs = started.elapsed().as_secs_f64();
    check_summary(&out, rows_offline, "the offline import");
    assert_eq!(links_in(&offline_db), rows_offline, "links in the store");
    results.push((
        "import --database (offline, SQLite)",
        rows_offline,
        secs,
        Target::RowsPerSecond(100_000.0),
    ));

    print_table(&results);
}

/// `target/release/snip`: beside `target/release/examples/`, where this example runs from.
fn snip_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the example's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the example runs from target/<profile>/examples/");
    let snip = profile_dir.join("snip");
    if !snip.is_file() {
        eprintln!(
            "{} is missing: build it first with `cargo build --release --bin snip --example import`",
            snip.display()
        );
        std::process::exit(1);
    }
    snip
}

/// Writes `rows` rows of snip's CSV: every column a migration brings, a code on each row.
fn generate(path: &Path, rows: u64) {
    let file = std::fs::File::create(path).expect("create the CSV");
    let mut out = std::io::BufWriter::new(file);
    writeln!(out, "code,url,title,tags,created_at,clicks").expect("write");
    // 2023-01-01T00:00:00Z, one row a minute after the other.
    let start = 1_672_531_200_i64;
    for i in 0..rows {
        let created = chrono::DateTime::from_timestamp(start + i as i64 * 60, 0)
            .expect("a time")
            .format("%Y-%m-%dT%H:%M:%SZ");
        writeln!(
            out,
            "b{i:07},https://example.com/articles/{i}?utm_source=bench,Article number {i},\
             bench;group-{},{created},{}",
            i % 10,
            i % 1000
        )
        .expect("write");
    }
    out.flush().expect("flush the CSV");
}

/// Runs a command to its end; panics with its output when it fails.
fn run(cmd: &mut Command) -> Output {
    for key in ["SNIP_SERVER", "SNIP_KEY", "SNIP_DATABASE"] {
        cmd.env_remove(key);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Checks `snip import --json`'s summary: complete, every row imported.
fn check_summary(out: &Output, rows: u64, what: &str) {
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: the summary is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(summary["complete"], true, "{what}: {summary}");
    assert_eq!(summary["rows"], rows, "{what}: {summary}");
    assert_eq!(summary["imported"], rows, "{what}: {summary}");
}

/// Live links in a SQLite store (read after its writer has stopped).
fn links_in(db: &Path) -> u64 {
    let conn = rusqlite::Connection::open(db).expect("open the store");
    conn.query_row(
        "SELECT count(*) FROM links WHERE deleted_at IS NULL",
        [],
        |row| row.get::<_, i64>(0),
    )
    .expect("count the links") as u64
}

/// `snip serve` as a child process.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(snip: &Path, database: &str, dir: &Path) -> Server {
        let mut child = Command::new(snip)
            .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
            .args(["--admin-key", KEY, "--log-format", "json"])
            .env_remove("SNIP_SERVER")
            .env_remove("SNIP_KEY")
            .env_remove("SNIP_DATABASE")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start snip serve");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("listening on http://") {
                    let addr: String = line[at + "listening on http://".len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':'))
                        .collect();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server reports its address within 30 s");
        Server {
            child,
            base: format!("http://{addr}"),
        }
    }

    /// SIGTERM, then waits (at most 30 s) for the exit.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.child.try_wait().expect("poll the server") {
                Some(status) => {
                    assert!(status.success(), "the server exited with {status}");
                    return;
                }
                None if Instant::now() > deadline => panic!("the server did not stop in 30 s"),
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a step should reach (docs/benchmarks.md).
enum Target {
    None,
    /// At most this many seconds (scaled to the rows: 60 s per 100,000).
    Seconds(f64),
    RowsPerSecond(f64),
}

impl Target {
    fn verdict(&self, rows: u64, secs: f64) -> String {
        match *self {
            Target::None => "".into(),
            Target::Seconds(max) => {
                let met = if secs < max { "met" } else { "MISSED" };
                format!("< {max:.0} s: {met}")
            }
            Target::RowsPerSecond(min) => {
                let met = if rows as f64 / secs >= min {
                    "met"
                } else {
                    "MISSED"
                };
                format!("≥ {min:.0} rows/s: {met}")
            }
        }
    }
}

fn print_table(results: &[(&str, u64, f64, Target)]) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    println!();
    println!("date: {}", chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"));
    println!("machine: {cpus} CPUs (nproc), {model}");
    println!("| step | rows | seconds | rows/s | target |");
    println!("|---|---:|---:|---:|---|");
    for (step, rows, secs, target) in results {
        println!(
            "| {step} | {rows} | {secs:.2} | {:.0} | {} |",
            *rows as f64 / secs.max(0.001),
            target.verdict(*rows, *secs)
        );
    }
}
