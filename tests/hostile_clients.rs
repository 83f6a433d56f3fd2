//! Clients that attack the server rather than use it: connections that send nothing, headers
//! that never end, bodies that never arrive, more connections than the process may open.
//! Each test here fails on a server without the connection limits (docs/security.md).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::{self, TestServer, code_of};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `request` on a new connection and reads the status line of the answer, or says why
/// there was none within `within` (a hang is the failure these tests look for).
async fn status_within(addr: SocketAddr, request: &[u8], within: Duration) -> Result<u16, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.write_all(request).await;
        let mut head = Vec::new();
        let mut chunk = [0u8; 1024];
        while !head.windows(2).any(|w| w == b"\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&head))),
                Ok(n) => head.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        let line = String::from_utf8_lossy(&head).into_owned();
        line.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not a status line: {line:?}"))
    };
    tokio::time::timeout(within, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {within:?}")))
}

/// Waits until the server closes `stream` (EOF or reset), reading and discarding what it
/// sends, for at most `within`; returns how long that took.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    let mut sink = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .map(|()| start.elapsed())
    .map_err(|_| format!("the server kept the connection open for {within:?}"))
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").into_bytes()
}

/// The resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_past_the_open_file_limit_never_stop_the_server_answering() {
    // 256 files: the server can hold at most 128 connections (the rest of its files are kept
    // for the store and for answering "too many connections").
    let server = TestServer::builder()
        .open_file_limit(256)
        .args(&["--header-read-timeout", "2s"])
        .start();
    let link = server
        .new_link(json!({"url": "https://example.com/silent"}))
        .await;
    let code = code_of(&link);

    let mut silent = Vec::new();
    for _ in 0..400 {
        silent.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    // While 400 connections sit silent (more than the process may open), a new client gets an
    // answer at once: its redirect, or 503 when every slot is taken. Never a hang.
    for attempt in 0..5 {
        let status = status_within(
            server.addr,
            &get(&format!("/{code}")),
            Duration::from_secs(3),
        )
        .await
        .unwrap_or_else(|e| panic!("attempt {attempt} with 400 silent connections: {e}"));
        assert!(
            status == 302 || status == 503,
            "attempt {attempt}: status {status}"
        );
    }
    // The silent connections are closed by the header-read timeout, and the slots come back.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let last = match status_within(
            server.addr,
            &get(&format!("/{code}")),
            Duration::from_secs(3),
        )
        .await
        {
            Ok(302) => break,
            other => format!("{other:?}"),
        };
        assert!(
            Instant::now() < deadline,
            "the redirect never came back after the silent connections timed out; last: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, stream) in silent.iter_mut().take(20).enumerate() {
        closed_within(stream, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("silent connection {i}: {e}"));
    }
    assert!(
        server
            .stderr_lines()
            .iter()
            .any(|l| l.contains("open-file limit")),
        "no warning about the low open-file limit"
    );
    server.assert_alive().await;
}

#[tokio::test]
async fn connections_over_the_cap_get_503_at_once_and_a_freed_slot_serves_again() {
    let server = TestServer::spawn(&["--max-connections", "4"]);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    // The accept loop takes them in order: wait until the fifth is the one turned away.
    let mut over = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = common::raw_exchange(server.addr, &get("/health/live"));
        match resp {
            Ok(r) if r.status == 503 => {
                over = String::from_utf8_lossy(&r.body).into_owned();
                assert_eq!(r.header("retry-after"), Some("1"));
                assert_eq!(r.header("content-type"), Some("application/problem+json"));
                break;
            }
            other => assert!(
                Instant::now() < deadline,
                "a fifth connection was not turned away: {other:?} {over}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let problem: serde_json::Value = serde_json::from_str(&over).expect("problem+json");
    assert_eq!(problem["code"], "overloaded", "{problem}");
    assert_eq!(problem["status"], 503, "{problem}");

    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let last = match common::raw_exchange(server.addr, &get("/health/live")) {
            Ok(r) if r.status == 200 => break,
            other => format!("{other:?}"),
        };
        assert!(
            Instant::now() < deadline,
            "a freed slot was not given to a new connection; last: {last}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(held);
    // The server frees the dropped connections' slots when it reads their end, which on a busy
    // machine can come after our next connect: ask until a slot answers, within a bound.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let resp = server
            .client
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        if status == StatusCode::OK {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "/metrics kept answering {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let shed: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("snip_connections_shed_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no snip_connections_shed_total in:\n{metrics}"));
    assert!(shed >= 1.0, "shed {shed}");
}

#[tokio::test]
async fn slow_headers_and_idle_keep_alive_connections_are_closed() {
    let server = TestServer::spawn(&["--header-read-timeout", "1s"]);

    // Slowloris: a header byte every 100 ms, never the end of the headers.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let trickle = async {
        for _ in 0..100 {
            if slow.write_all(b"a").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(8), trickle)
        .await
        .expect("the server still accepted header bytes after 8 s");
    let mut slow = slow;
    closed_within(&mut slow, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "slow headers were accepted for {:?}",
        started.elapsed()
    );

    // Keep-alive: one request answered, then nothing; the server closes the idle connection.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    idle.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    closed_within(&mut idle, Duration::from_secs(5))
        .await
        .expect("an idle keep-alive connection");

    // The same after cached redirects (answered within one poll, marking the connection busy
    // their own way): the connection is idle once they are answered.
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/idle"}))
            .await,
    );
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    for _ in 0..3 {
        idle.write_all(format!("GET /{code} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut head = [0u8; 12];
        idle.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 302");
        // The rest of this answer's head (no body): up to the blank line.
        let mut tail = Vec::new();
        while !tail.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            idle.read_exact(&mut byte).await.unwrap();
            tail.push(byte[0]);
        }
    }
    closed_within(&mut idle, Duration::from_secs(5))
        .await
        .expect("an idle keep-alive connection after cached redirects");

    // A silent connection (not even a request line) is closed too, and so is one that stops
    // inside the HTTP/2 preface (before the protocol is known).
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    closed_within(&mut silent, Duration::from_secs(5))
        .await
        .expect("a silent connection");
    let mut preface = TcpStream::connect(server.addr).await.unwrap();
    preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    closed_within(&mut preface, Duration::from_secs(5))
        .await
        .expect("a connection stopped inside the HTTP/2 preface");
    server.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_larger_than_the_cap_get_431_and_never_ending_headers_do_not_pin_memory() {
    let server = TestServer::spawn(&[]);
    let big = format!(
        "GET /health/live HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(20_000)
    );
    let resp = common::raw_exchange(server.addr, big.as_bytes()).expect("an answer");
    assert_eq!(resp.status, 431, "{resp:?}");
    let fits = format!(
        "GET /health/live HTTP/1.1\r\nHost: localhost\r\nX-Fits: {}\r\nConnection: close\r\n\r\n",
        "f".repeat(12_000)
    );
    assert_eq!(
        common::raw_exchange(server.addr, fits.as_bytes())
            .unwrap()
            .status,
        200
    );

    // 200 connections, each sending 400 KB of one header that never ends (as in the audit,
    // where RSS grew by 170 MB): each is answered 431 and closed after a few KB.
    let before = rss_kib(server.pid());
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let _ = stream
                .write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nX-Endless: ")
                .await;
            let chunk = vec![b'x'; 16 * 1024];
            let mut sent = 0;
            while sent < 400 * 1024 {
                if stream.write_all(&chunk).await.is_err() {
                    break;
                }
                sent += chunk.len();
            }
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
                .await;
            (sent, answer)
        }));
    }
    let mut refused = 0;
    let mut peak = before;
    for task in tasks {
        let (sent, answer) = task.await.unwrap();
        peak = peak.max(rss_kib(server.pid()));
        if sent < 400 * 1024 || answer.starts_with(b"HTTP/1.1 431") {
            refused += 1;
        }
    }
    assert_eq!(refused, 200, "every endless header must be cut off");
    let grown = peak.saturating_sub(before);
    assert!(
        grown < 40 * 1024,
        "RSS grew by {grown} KiB (from {before} KiB) under 200 endless headers"
    );
    server.assert_alive().await;
}

#[tokio::test]
async fn a_request_body_that_never_arrives_gets_408() {
    let server = TestServer::spawn(&["--request-body-timeout", "1s"]);
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/links HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"url\":",
        server.admin_key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(8), stream.read_to_end(&mut answer))
        .await
        .expect("no answer within 8 s to a body that stopped")
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":\"request_timeout\""), "{text}");

    // A body that does arrive in time is served as usual.
    let resp = server
        .create_link(json!({"url": "https://example.com/in-time"}))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn bad_connection_limits_are_refused_before_start() {
    for (flag, value) in [
        ("--max-header-bytes", "100"),
        ("--max-header-bytes", "99999999"),
        ("--max-connections", "0"),
        ("--header-read-timeout", "0s"),
        ("--request-body-timeout", "soon"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_snip"))
            .args(["serve", "--listen", "127.0.0.1:0", flag, value])
            .env("SNIP_DATABASE", "sqlite:///nonexistent-dir/never.db")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
    }
}
