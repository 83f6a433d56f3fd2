//! The first minutes of a new user: a first start that fails leaves nothing behind (so the
//! admin key is printed by the start that works), bad flags exit 2 before touching the disk,
//! `--help` shows the defaults, and `snip import` works on a fresh directory and says plainly
//! what it did.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common;

/// Runs `snip ARGS` in `dir` with no `SNIP_*` variables, feeding `stdin`; waits at most 60 s.
fn snip(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_snip"));
    for (key, _) in std::env::vars() {
        if key.starts_with("SNIP_") {
            cmd.env_remove(key);
        }
    }
    // The command line's saved server and key, if the user has any, stay out of it.
    let mut child = cmd
        .env("XDG_CONFIG_HOME", dir.join(".no-config"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn snip");
    {
        use std::io::Write;
        let mut input = child.stdin.take().expect("piped");
        input.write_all(stdin.as_bytes()).expect("write stdin");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("poll snip").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("snip {args:?} did not exit within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("collect snip's output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every path under `dir`, for "nothing was written" assertions.
fn entries(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let path = e.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            found.push(path.display().to_string());
        }
    }
    found
}

/// The admin key a server printed at its first start (polled: stderr is read by a thread).
fn generated_key(server: &common::TestServer) -> String {
    let found = common::eventually(
        Duration::from_secs(10),
        || {
            let lines = server.stderr_lines();
            async move {
                lines.iter().find_map(|l| {
                    l.strip_prefix("snip: created admin API key: ")
                        .map(str::to_string)
                })
            }
        },
        |k| k.is_some(),
    );
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(found)
        .unwrap_or_else(|| panic!("no admin key printed: {:?}", server.stderr_lines()))
}

#[test]
fn a_first_start_on_a_busy_port_fails_without_creating_the_store_and_the_next_prints_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();

    let out = snip(
        dir.path(),
        &["serve", "--listen", &format!("127.0.0.1:{port}")],
        "",
    );

    assert!(!out.status.success(), "a busy port must fail the start");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("binding 127.0.0.1:"), "{stderr}");
    assert!(!stderr.contains("created admin API key"), "{stderr}");
    assert_eq!(
        entries(dir.path()),
        Vec::<String>::new(),
        "no store, no key"
    );
    drop(busy);

    // The same first start on a free port creates the store and shows the key.
    let mut server = common::TestServer::builder()
        .no_admin_key()
        .database("sqlite://snip-data/snip.db")
        .current_dir(dir.path().to_path_buf())
        .start();
    let key = generated_key(&server);
    assert!(key.starts_with("snip_"), "{key}");
    assert!(dir.path().join("snip-data/snip.db").exists());
    server.sigterm();
}

#[test]
fn bad_flags_exit_2_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["serve", "--listen", "notanaddress"][..],
        &["serve", "--listen", "127.0.0.1"],
        &["serve", "--listen", "127.0.0.1:99999"],
        &["serve", "--click-mode", "sometimes"],
        &["serve", "--trusted-proxies", "not-a-network"],
        &["serve", "--geoip-db", "missing.mmdb"],
        &["serve", "--country-header", "bad header"],
        &["serve", "--redis", "http://127.0.0.1:6379"],
        &["serve", "--base-url", "https://sn.ip/path"],
        &["serve", "--store-timeout", "0s"],
        &["serve", "--admin-key", "a"],
        &["serve", "--admin-key", "snip_only31charactersxxxxxxxxxx"],
        &["serve", "--redirect-referrer-policy", "everything"],
        &["serve", "--admin-listen", "nowhere"],
        &["serve", "--no-such-flag"],
        &["import", "--database", "mysql://x", "-"],
    ] {
        let out = snip(dir.path(), args, "");
        assert_eq!(
            out.status.code(),
            Some(2),
            "snip {args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(
            entries(dir.path()),
            Vec::<String>::new(),
            "snip {args:?} wrote to the disk"
        );
    }
}

#[test]
fn serve_help_shows_every_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = snip(dir.path(), &["serve", "--help"], "");
    assert!(out.status.success());
    let help = text(&out.stdout);
    for shown in [
        "[default: 127.0.0.1:8080]",
        "[default: sqlite://snip-data/snip.db]",
        "[default: 1s]",
        "[default: buffered]",
        "[default: 302]",
        "[default: 7]",
        "[default: 100000]",
        "[default: 5s]",
        "[default: 1000]",
        "[default: 10s]",
        "[default: 60s]",
        "[default: 16]",
        "[default: 35d]",
        "[default: local]",
        "[env: SNIP_LISTEN=]",
        // Allowed values of the flags that take one of a list.
        "[possible values: 301, 302, 307, 308]",
        "- buffered:",
        "- exact:",
        "- pretty:",
        "- json:",
    ] {
        assert!(help.contains(shown), "serve --help lacks {shown}:\n{help}");
    }
    // Each option's help that names a list of values shows them.
    for flag in [
        "--click-mode",
        "--log-format",
        "--click-durability",
        "--redirect-status",
    ] {
        let section = help.split(&format!("{flag} <")).nth(1).expect(flag);
        let section = section.split("\n      --").next().unwrap();
        assert!(
            section.to_lowercase().contains("possible values"),
            "{flag} shows no allowed values:\n{section}"
        );
    }
}

#[test]
fn import_works_on_a_fresh_directory_reports_rejected_lines_and_strict_refuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let input = "home\thttps://example.com/\napi\thttps://example.com/api\nblog\thttps://example.com/blog\n";

    let strict = snip(dir.path(), &["import", "--strict", "-"], input);
    assert_eq!(strict.status.code(), Some(1), "{}", text(&strict.stderr));
    assert!(
        text(&strict.stderr).contains("line 2: "),
        "{}",
        text(&strict.stderr)
    );
    assert_eq!(
        entries(dir.path()),
        vec![
            dir.path()
                .join("snip-import.rejected.csv")
                .display()
                .to_string()
        ],
        "--strict wrote more than the rejected rows"
    );
    let rejected = std::fs::read_to_string(dir.path().join("snip-import.rejected.csv")).unwrap();
    assert!(rejected.contains("2,rejected,"), "{rejected}");
    std::fs::remove_file(dir.path().join("snip-import.rejected.csv")).unwrap();

    let out = snip(dir.path(), &["import", "-"], input);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        text(&out.stdout).trim(),
        "imported 2, already present 0, taken by another destination 0, rejected 1"
    );
    assert!(stderr.contains("line 2: rejected: "), "{stderr}");
    assert!(stderr.contains("1 rows not imported"), "{stderr}");
    assert!(
        stderr.contains("writing into the store sqlite://snip-data/snip.db"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "colours when not on a terminal: {stderr:?}"
    );

    // The links are there, and the first serve still generates an admin key.
    let server = common::TestServer::builder()
        .no_admin_key()
        .database("sqlite://snip-data/snip.db")
        .current_dir(dir.path().to_path_buf())
        .start();
    let key = generated_key(&server);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let link = server
            .api_as(&key, reqwest::Method::GET, "/api/v1/links/blog")
            .send()
            .await
            .unwrap();
        assert_eq!(link.status(), 200);
        let resp = server.visit("home").await;
        assert_eq!(resp.status(), 302);
    });
}
