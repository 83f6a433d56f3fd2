//! The shared Redis cache (`--redis`): used when it answers, bypassed when it does not, never
//! a reason for a failed or wrong redirect. Each test starts its own Redis with
//! `scripts/redis.sh` (which installs Debian's redis-server when missing) so that it can stop it.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{TestServer, code_of, eventually, header};
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

    fn stop(&self) {
        Self::run("stop", &self.dir);
    }

    /// Starts it again on the same port.
    fn restart(&self) {
        let port = self.url.rsplit(':').next().expect("a port").to_string();
        let out = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port,
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--daemonize", "yes", "--pidfile"])
            .arg(self.dir.path().join("redis.pid"))
            .output()
            .expect("run redis-server");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
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
    let traffic = {
        let (server_base, links) = (server.base.clone(), links.clone());
        tokio::spawn(async move {
            let client = common::http_client();
            let mut answered = 0;
            for round in 0..30 {
                for (code, dest) in &links {
                    let r = client
                        .get(format!("{server_base}/{code}"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), StatusCode::FOUND, "round {round}: {code}");
                    assert_eq!(header(&r, "location"), *dest, "round {round}: {code}");
                    answered += 1;
                }
            }
            answered
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    redis.stop();
    assert_eq!(traffic.await.unwrap(), 30 * links.len());
    check_all(&server, &links, 3).await;
    let (status, body) = health(&server).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "Redis down is not a reason to fail: {body}"
    );
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["checks"]["redis"]["healthy"], false, "{body}");

    // A change while Redis is down, then Redis comes back empty: still the new destination.
    let patched = server
        .patch_link(&code0, json!({"url": "https://example.com/r/newer"}))
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    links[0].1 = "https://example.com/r/newer".into();
    redis.restart();
    let (_, body) = eventually(
        Duration::from_secs(10),
        || health(&server),
        |(_, b)| b["checks"]["redis"]["healthy"] == true,
    )
    .await;
    assert_eq!(
        body["checks"]["redis"]["healthy"], true,
        "Redis is used again: {body}"
    );
    check_all(&server, &links, 4).await;
    check_all(&server, &links, 5).await;
}
