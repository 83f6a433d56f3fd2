//! The shared Redis cache (`--redis`): used when it answers, bypassed when it does not, never
//! a reason for a failed or wrong redirect. Each test starts its own Redis with
//! `scripts/redis.sh` (which installs Debian's redis-server when missing) so that it can stop it.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::{self, TestServer, code_of, header, poll_for};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A Redis server of this test's own; stopped on drop.
struct Redis {
    dir: tempfile::TempDir,
    url: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/redis.sh")
}

impl Redis {
    fn start() -> Redis {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = Self::run("start", &dir);
        Redis { dir, url }
    }

    fn run(cmd: &str, dir: &tempfile::TempDir) -> String {
        common::project_script(
            "redis.sh",
            &[cmd, dir.path().to_str().expect("utf-8 temp path")],
        )
    }

    /// `scripts/redis.sh stop`: returns once the server is gone.
    fn stop(&self) {
        Self::run("stop", &self.dir);
    }

    /// `scripts/redis.sh start` again: on the same port, answering when it returns.
    fn restart(&self) {
        let url = Self::run("start", &self.dir);
        assert_eq!(url, self.url, "restarted on the same port");
    }

    fn addr(&self) -> SocketAddr {
        self.url
            .trim_start_matches("redis://")
            .parse()
            .unwrap_or_else(|e| panic!("{}: not redis://HOST:PORT: {e}", self.url))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", self.dir.path().to_str().unwrap_or_default()])
            .output();
    }
}

/// Every link redirects to its destination.
async fn check_all(server: &TestServer, links: &[(String, String)], round: usize) {
    for (code, dest) in links {
        let r = server.visit(code).await;
        assert_eq!(r.status(), StatusCode::FOUND, "round {round}: {code}");
        assert_eq!(header(&r, "location"), *dest, "round {round}: {code}");
    }
}

async fn health(server: &TestServer) -> (StatusCode, Value) {
    let resp = server.api(Method::GET, "/health").send().await.unwrap();
    (resp.status(), resp.json().await.unwrap())
}

/// `scripts/redis.sh stop` returns only once Redis is gone: tests (and the deploy scripts) that
/// stop it assert what follows at once. Checked right after the script returns, without
/// waiting: the old script sent SIGTERM and returned while Redis still answered.
#[test]
fn the_stop_script_returns_only_once_redis_refuses_connections() {
    for round in 0..3 {
        let redis = Redis::start();
        let addr = redis.addr();
        // A client connected, as the server's cache would be: Redis closes it as it goes.
        let client = TcpStream::connect(addr).expect("connect to the fresh Redis");
        redis.stop();
        let after = TcpStream::connect_timeout(&addr, Duration::from_secs(2));
        assert!(
            matches!(&after, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
            "round {round}: {addr} right after `scripts/redis.sh stop` returned: {after:?} \
             (expected connection refused)"
        );
        drop(client);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redirects_never_fail_or_go_wrong_when_redis_dies_and_comes_back() {
    let redis = Redis::start();
    // No in-process cache: every redirect asks Redis first, then the store.
    let server = TestServer::spawn(&["--redis", &redis.url, "--cache-capacity", "0"]);
    let mut links = Vec::new();
    for i in 0..20 {
        let link = server
            .new_link(json!({"url": format!("https://example.com/r/{i}")}))
            .await;
        links.push((code_of(&link), format!("https://example.com/r/{i}")));
    }
    // Twice: the first pass fills Redis, the second is served from it.
    check_all(&server, &links, 0).await;
    check_all(&server, &links, 1).await;
    let (status, body) = health(&server).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["checks"]["redis"]["healthy"], true, "{body}");
    assert_eq!(body["status"], "healthy", "{body}");

    // A change deletes the shared entry: nobody is sent to the old destination.
    let (code0, _) = links[0].clone();
    let patched = server
        .patch_link(&code0, json!({"url": "https://example.com/r/new"}))
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    links[0].1 = "https://example.com/r/new".into();
    check_all(&server, &links, 2).await;

    // Redis goes away in the middle of traffic.
    let answered = Arc::new(AtomicUsize::new(0));
    let traffic = {
        let (server_base, links) = (server.base.clone(), links.clone());
        let answered = Arc::clone(&answered);
        tokio::spawn(async move {
            let client = common::http_client();
            for round in 0..30 {
                for (code, dest) in &links {
                    let r = client
                        .get(format!("{server_base}/{code}"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), StatusCode::FOUND, "round {round}: {code}");
                    assert_eq!(header(&r, "location"), *dest, "round {round}: {code}");
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            }
            answered.load(Ordering::SeqCst)
        })
    };
    // Stopped once the traffic is under way (a few rounds of 30 answered).
    let under_way = 3 * links.len();
    poll_for(
        "the traffic before stopping Redis",
        Duration::from_secs(10),
        || async { answered.load(Ordering::SeqCst) },
        |n| *n >= under_way,
    )
    .await;
    redis.stop();
    assert_eq!(traffic.await.unwrap(), 30 * links.len());
    check_all(&server, &links, 3).await;
    // /health pings Redis each time: degraded once it is gone, and never a failure meanwhile.
    let (status, body) = poll_for(
        "/health degraded with Redis stopped",
        Duration::from_secs(10),
        || health(&server),
        |(status, body)| {
            assert_eq!(
                *status,
                StatusCode::OK,
                "Redis down is not a reason to fail: {body}"
            );
            body["checks"]["redis"]["healthy"] == false
        },
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["checks"]["redis"]["healthy"], false, "{body}");

    // A change while Redis is down, then Redis comes back empty: still the new destination.
    let patched = server
        .patch_link(&code0, json!({"url": "https://example.com/r/newer"}))
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    links[0].1 = "https://example.com/r/newer".into();
    redis.restart();
    // The server reconnects on its own: polled.
    poll_for(
        "Redis used again after its restart (/health)",
        Duration::from_secs(10),
        || health(&server),
        |(_, b)| b["checks"]["redis"]["healthy"] == true,
    )
    .await;
    check_all(&server, &links, 4).await;
    check_all(&server, &links, 5).await;
}
