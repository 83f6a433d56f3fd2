//! Several stateless instances on one PostgreSQL store (README "Running several instances"):
//! what one instance writes, every other one serves; clicks from all of them add up.
//!
//! These run in the PostgreSQL pass of `scripts/test.sh` (`SNIP_TEST_BACKEND=postgres`); the
//! SQLite pass has no shared store to test and says so.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::{self, PgCluster, TestServer, code_of, header, poll_for};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Two servers on one fresh database (same admin key), or None on the SQLite pass.
fn two_instances(args: &[&str]) -> Option<(TestServer, TestServer)> {
    if common::is_sqlite() {
        eprintln!("PostgreSQL only: run through scripts/test.sh (SNIP_TEST_BACKEND=postgres)");
        return None;
    }
    let a = TestServer::spawn(args);
    let b = TestServer::builder()
        .database(&a.database)
        .admin_key(&a.admin_key)
        .args(args)
        .start();
    Some((a, b))
}

#[tokio::test]
async fn a_link_created_on_one_instance_redirects_at_once_from_another() {
    let Some((a, b)) = two_instances(&[]) else {
        return;
    };
    let link = a
        .new_link(json!({"url": "https://example.com/made-on-a"}))
        .await;
    let on_b = b.visit(&code_of(&link)).await;
    assert_eq!(on_b.status(), StatusCode::FOUND);
    assert_eq!(header(&on_b, "location"), "https://example.com/made-on-a");

    // B answered 404 for a code just before A created it: B's "unknown" entry is dropped by
    // A's notification, well before the negative TTL (5 s).
    assert_eq!(b.visit("fresh1").await.status(), StatusCode::NOT_FOUND);
    a.new_link(json!({"url": "https://example.com/fresh", "code": "fresh1"}))
        .await;
    let took = seen_within(&b, "fresh1", StatusCode::FOUND, "https://example.com/fresh").await;
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

/// How long until `code` answers `status` (and `location`, unless empty) on `server`, polling
/// every 20 ms for up to 5 s; panics with the last answer seen otherwise.
async fn seen_within(
    server: &TestServer,
    code: &str,
    status: StatusCode,
    location: &str,
) -> Duration {
    let started = Instant::now();
    poll_for(
        &format!("{code} answering {status} {location} on the other instance"),
        Duration::from_secs(5),
        || async {
            let r = server.visit(code).await;
            (r.status(), header(&r, "location"))
        },
        |(s, l)| *s == status && (location.is_empty() || l == location),
    )
    .await;
    started.elapsed()
}

#[tokio::test]
async fn changes_on_one_instance_reach_the_cache_of_another_within_a_second() {
    let Some((a, b)) = two_instances(&[]) else {
        return;
    };
    let code = code_of(&a.new_link(json!({"url": "https://example.com/v1"})).await);
    // Cached on B.
    assert_eq!(
        header(&b.visit(&code).await, "location"),
        "https://example.com/v1"
    );
    assert_eq!(
        header(&b.visit(&code).await, "location"),
        "https://example.com/v1"
    );

    let patch = |body: serde_json::Value| a.patch_link(&code, body);
    assert_eq!(
        patch(json!({"url": "https://example.com/v2"}))
            .await
            .status(),
        StatusCode::OK
    );
    let took = seen_within(&b, &code, StatusCode::FOUND, "https://example.com/v2").await;
    assert!(
        took < Duration::from_secs(1),
        "a new destination took {took:?} to reach B"
    );

    assert_eq!(
        patch(json!({"disabled": true})).await.status(),
        StatusCode::OK
    );
    let took = seen_within(&b, &code, StatusCode::GONE, "").await;
    assert!(
        took < Duration::from_secs(1),
        "disabling took {took:?} to reach B"
    );

    assert_eq!(
        patch(json!({"disabled": false})).await.status(),
        StatusCode::OK
    );
    let took = seen_within(&b, &code, StatusCode::FOUND, "https://example.com/v2").await;
    assert!(
        took < Duration::from_secs(1),
        "re-enabling took {took:?} to reach B"
    );

    let deleted = a
        .api(Method::DELETE, &format!("/api/v1/links/{code}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let took = seen_within(&b, &code, StatusCode::GONE, "").await;
    assert!(
        took < Duration::from_secs(1),
        "deleting took {took:?} to reach B"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clicks_counted_on_two_instances_add_up_exactly() {
    // Another instance's clicks reach the stats when that instance folds them.
    let flags: &[&str] = &[
        "--click-flush-interval",
        "100ms",
        "--click-fold-interval",
        "1s",
    ];
    let Some((mut a, mut b)) = two_instances(flags) else {
        return;
    };
    let code = code_of(&a.new_link(json!({"url": "https://example.com/both"})).await);
    let (on_a, on_b) = (37, 58);
    let visits_a = async {
        for _ in 0..on_a {
            assert_eq!(a.visit(&code).await.status(), StatusCode::FOUND);
        }
    };
    let visits_b = async {
        for _ in 0..on_b {
            assert_eq!(b.visit(&code).await.status(), StatusCode::FOUND);
        }
    };
    tokio::join!(visits_a, visits_b);
    // Either instance reports both instances' flushed clicks.
    assert_eq!(
        a.wait_for_total_clicks(&code, on_a + on_b).await,
        on_a + on_b
    );
    assert_eq!(
        b.wait_for_total_clicks(&code, on_a + on_b).await,
        on_a + on_b
    );
    // A graceful stop of both flushes nothing twice.
    a.sigterm();
    b.sigterm();
    let c = a.restart(&[]);
    assert_eq!(c.total_clicks(&code).await, on_a + on_b);
    let stats = c.stats(&code, "").await;
    assert_eq!(stats["human_clicks"], on_a + on_b, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_its_replica_paused_an_instance_still_serves_new_and_changed_links() {
    if common::is_sqlite() {
        eprintln!("PostgreSQL only");
        return;
    }
    let primary = PgCluster::start();
    let replica = primary.replica();
    let primary_db = primary.database("replicated");
    let replica_db = common::with_database(&replica.url, "replicated");
    let a = TestServer::builder().database(&primary_db).start();
    let b = TestServer::builder()
        .database(&primary_db)
        .admin_key(&a.admin_key)
        .args(&["--database-replica", &replica_db])
        .start();
    let old = code_of(&a.new_link(json!({"url": "https://example.com/old"})).await);
    // Wait until the replica has it, then stop its replay.
    poll_for(
        "the replica catching up with the first link",
        Duration::from_secs(10),
        || async {
            common::psql_try(
                &replica_db,
                &format!("SELECT count(*) FROM links WHERE code = '{old}'"),
            )
            .unwrap_or_else(|error| error)
        },
        |count| count == "1",
    )
    .await;
    // Once this returns, replay stops at its next record (PostgreSQL checks for a pause
    // request before applying each one, at worst one record late): a link created from here on
    // (row, index entries, commit: several records) is not committed on the replica.
    common::psql(&replica.url, "SELECT pg_wal_replay_pause()");
    assert_eq!(
        header(&b.visit(&old).await, "location"),
        "https://example.com/old"
    );

    // Created on A while the replica is frozen: B finds it on the primary.
    let new = code_of(&a.new_link(json!({"url": "https://example.com/new"})).await);
    let on_b = b.visit(&new).await;
    assert_eq!(
        on_b.status(),
        StatusCode::FOUND,
        "a new link redirects from B at once"
    );
    assert_eq!(header(&on_b, "location"), "https://example.com/new");
    assert_eq!(
        common::psql(
            &replica_db,
            &format!("SELECT count(*) FROM links WHERE code = '{new}'")
        ),
        "0",
        "the replica really is behind"
    );

    // Changed on A: B must not reload the old row from the frozen replica.
    let patched = a
        .patch_link(&old, json!({"url": "https://example.com/changed"}))
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let took = seen_within(&b, &old, StatusCode::FOUND, "https://example.com/changed").await;
    assert!(
        took < Duration::from_secs(1),
        "the change took {took:?} to reach B"
    );
    // And it stays changed (no later reload from the replica brings the old one back). A
    // deliberate wait: this asserts that something does not happen within 300 ms.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        header(&b.visit(&old).await, "location"),
        "https://example.com/changed"
    );
    common::psql(&replica.url, "SELECT pg_wal_replay_resume()");

    // Several hosts with target_session_attrs=read-write, the standby listed first: the pool
    // skips it and writes to the primary (what finds the new primary after a failover).
    let port = |url: &str| {
        url.rsplit(':')
            .next()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string()
    };
    let multi = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/replicated?target_session_attrs=read-write",
        port(&replica.url),
        port(&primary.url)
    );
    let c = TestServer::builder()
        .database(&multi)
        .admin_key(&a.admin_key)
        .start();
    let made = code_of(
        &c.new_link(json!({"url": "https://example.com/via-multi-host"}))
            .await,
    );
    assert_eq!(
        header(&a.visit(&made).await, "location"),
        "https://example.com/via-multi-host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_postgres_crashes_redirects_keep_working_writes_fail_fast_and_no_click_is_lost() {
    if common::is_sqlite() {
        eprintln!("PostgreSQL only");
        return;
    }
    let pg = PgCluster::start();
    let db = pg.database("outage");
    let server = TestServer::builder()
        .database(&db)
        .args(&["--click-flush-interval", "100ms"])
        .start();
    let mut codes = Vec::new();
    for i in 0..5 {
        let code = code_of(
            &server
                .new_link(json!({"url": format!("https://example.com/o{i}")}))
                .await,
        );
        // Visited once, so cached.
        assert_eq!(server.visit(&code).await.status(), StatusCode::FOUND);
        codes.push(code);
    }
    let mut visits = vec![1_i64; codes.len()];
    assert_eq!(server.wait_for_total_clicks(&codes[0], 1).await, 1);
    // Changed just before the crash: the instance that wrote it keeps its new state cached.
    let edited = code_of(
        &server
            .new_link(json!({"url": "https://example.com/edited-before"}))
            .await,
    );
    let patch = server
        .patch_link(&edited, json!({"url": "https://example.com/edited-after"}))
        .await;
    assert_eq!(patch.status(), StatusCode::OK);

    // Traffic runs while the database goes away.
    let answered = Arc::new(AtomicUsize::new(0));
    let during = {
        let (base, codes) = (server.base.clone(), codes.clone());
        let total = Arc::clone(&answered);
        tokio::spawn(async move {
            let client = common::http_client();
            let mut answered = vec![0_i64; codes.len()];
            for _ in 0..40 {
                for (i, code) in codes.iter().enumerate() {
                    let r = client.get(format!("{base}/{code}")).send().await.unwrap();
                    assert_eq!(r.status(), StatusCode::FOUND, "{code} while crashing");
                    assert_eq!(header(&r, "location"), format!("https://example.com/o{i}"));
                    answered[i] += 1;
                    total.fetch_add(1, Ordering::SeqCst);
                }
            }
            answered
        })
    };
    // Crashed once the traffic is under way (a few of its 40 rounds answered).
    let under_way = 3 * codes.len();
    poll_for(
        "the traffic before the crash",
        Duration::from_secs(10),
        || async { answered.load(Ordering::SeqCst) },
        |n| *n >= under_way,
    )
    .await;
    // Returns once the server is gone (process exited, port refusing connections).
    pg.crash();
    for (i, n) in during.await.unwrap().into_iter().enumerate() {
        visits[i] += n;
    }

    // Cached redirects keep answering, with the right destination.
    for round in 0..20 {
        for (i, code) in codes.iter().enumerate() {
            let r = server.visit(code).await;
            assert_eq!(
                r.status(),
                StatusCode::FOUND,
                "round {round}: {code} during the outage"
            );
            assert_eq!(header(&r, "location"), format!("https://example.com/o{i}"));
            visits[i] += 1;
        }
    }
    let r = server.visit(&edited).await;
    assert_eq!(
        r.status(),
        StatusCode::FOUND,
        "link changed just before the outage"
    );
    assert_eq!(header(&r, "location"), "https://example.com/edited-after");
    // Writes answer 503 with Retry-After, fast.
    let started = Instant::now();
    let create = server
        .create_link(json!({"url": "https://example.com/during"}))
        .await;
    assert_eq!(create.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(create.headers().contains_key("retry-after"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let patch = server.patch_link(&codes[0], json!({"title": "x"})).await;
    assert_eq!(patch.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    // Health tells the truth; readiness stays up (redirects are served from the cache).
    let (status, health) = poll_for(
        "/health unhealthy with the database down",
        Duration::from_secs(10),
        || async {
            let r = server.api(Method::GET, "/health").send().await.unwrap();
            (r.status(), r.json::<serde_json::Value>().await.unwrap())
        },
        |(status, _)| *status == StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!(health["checks"]["database"]["healthy"], false, "{health}");
    let ready = server
        .api(Method::GET, "/health/ready")
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);

    pg.restart();

    // Writes work again without restarting snip.
    poll_for(
        "creates recovering after the restart",
        Duration::from_secs(10),
        || async {
            server
                .create_link(json!({"url": "https://example.com/after"}))
                .await
                .status()
        },
        |status| *status == StatusCode::CREATED,
    )
    .await;
    // Every click, before and during the outage, counted once.
    for (i, code) in codes.iter().enumerate() {
        assert_eq!(
            server.wait_for_total_clicks(code, visits[i]).await,
            visits[i],
            "{code}"
        );
    }
    // A deliberate wait: no later flush may add a click twice within 500 ms.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (i, code) in codes.iter().enumerate() {
        assert_eq!(
            server.total_clicks(code).await,
            visits[i],
            "{code}: counted twice?"
        );
    }
}

/// A TCP proxy to PostgreSQL that can black-hole its connections: while cut, every byte is
/// read and thrown away in both directions, and sockets stay open (what a dropped network
/// path looks like to the application, minus TCP retransmissions: keepalives still succeed,
/// so only the application's own heartbeat can notice). Connections that were black-holed
/// stay so after `heal`; new ones pass.
struct BlackHole {
    url: String,
    state: std::sync::Arc<BlackHoleState>,
}

#[derive(Default)]
struct BlackHoleState {
    cut: std::sync::atomic::AtomicBool,
    /// Bumped by every cut: a connection forwards only while this is its own epoch.
    epoch: std::sync::atomic::AtomicU64,
}

impl BlackHoleState {
    fn passes(&self, epoch: u64) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        !self.cut.load(SeqCst) && self.epoch.load(SeqCst) == epoch
    }
}

impl BlackHole {
    /// A proxy to the server of `database` (a PostgreSQL URL); `url` is `database` through it.
    /// It runs on a thread and runtime of its own: the test's runtime blocks while a server
    /// starts, and the server connects through the proxy as it starts.
    fn start(database: &str) -> BlackHole {
        use std::sync::atomic::Ordering::SeqCst;
        let mut url = reqwest::Url::parse(database).expect("database URL");
        let upstream = format!(
            "{}:{}",
            url.host_str().expect("host"),
            url.port().unwrap_or(5432)
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        url.set_port(Some(listener.local_addr().unwrap().port()))
            .unwrap();
        let state = std::sync::Arc::new(BlackHoleState::default());
        let shared = state.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                while let Ok((client, _)) = listener.accept().await {
                    let epoch = shared.epoch.load(SeqCst);
                    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                        continue;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::spawn(pump(client_read, server_write, epoch, shared.clone()));
                    tokio::spawn(pump(server_read, client_write, epoch, shared.clone()));
                }
            });
        });
        BlackHole {
            url: url.to_string(),
            state,
        }
    }

    fn cut(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.state.epoch.fetch_add(1, SeqCst);
        self.state.cut.store(true, SeqCst);
    }

    fn heal(&self) {
        self.state
            .cut
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    epoch: u64,
    state: std::sync::Arc<BlackHoleState>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if state.passes(epoch) && to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn an_instance_cut_off_from_the_database_leaves_rotation_and_catches_up_when_it_returns() {
    if common::is_sqlite() {
        eprintln!("PostgreSQL only: run through scripts/test.sh (SNIP_TEST_BACKEND=postgres)");
        return;
    }
    let direct = TestServer::spawn(&[]);
    let proxy = BlackHole::start(&direct.database);
    let cut_off = TestServer::builder()
        .database(&proxy.url)
        .admin_key(&direct.admin_key)
        .args(&["--store-timeout", "1s"])
        .start();
    let health = |server: &TestServer, path: &str| {
        let request = server.api(Method::GET, path);
        async move { request.send().await.map(|r| r.status()).ok() }
    };
    // Created on the instance to be cut off: the create's own notification is ignored there,
    // so it cannot arrive late and drop the entry cached below.
    let code = code_of(
        &cut_off
            .new_link(json!({"url": "https://example.com/before"}))
            .await,
    );
    assert_eq!(cut_off.visit(&code).await.status(), StatusCode::FOUND);
    assert_eq!(
        health(&cut_off, "/health").await,
        Some(StatusCode::OK),
        "listening before the cut"
    );

    proxy.cut();
    // Changed on the other instance: the notification to the cut-off one is lost for good.
    let patch = direct
        .patch_link(&code, json!({"url": "https://example.com/after"}))
        .await;
    assert_eq!(patch.status(), StatusCode::OK);

    // It says so on /health (a load balancer checking it takes it out of rotation)...
    poll_for(
        "/health 503 while cut off",
        Duration::from_secs(10),
        || health(&cut_off, "/health"),
        |status| *status == Some(StatusCode::SERVICE_UNAVAILABLE),
    )
    .await;
    // ...and stays ready at once: it can still serve redirects from its cache.
    let started = Instant::now();
    let ready = cut_off
        .api(Method::GET, "/health/ready")
        .send()
        .await
        .unwrap();
    let status = ready.status();
    let body = ready.text().await.unwrap();
    let stderr = cut_off.stderr_lines().join("\n");
    assert_eq!(status, StatusCode::OK, "{body}\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "readiness waited for the store: {:?}",
        started.elapsed()
    );

    proxy.heal();
    // The black-holed listener never hears the change (its connection stays silent, TCP sees
    // nothing wrong): only the heartbeat gives it up, and the new listener clears the cache.
    // Without that, the old destination would be served for the cache TTL (60 s).
    let took = seen_within(
        &cut_off,
        &code,
        StatusCode::FOUND,
        "https://example.com/after",
    )
    .await;
    assert!(took < Duration::from_secs(5), "took {took:?}");
    poll_for(
        "/health 200 again after the link came back",
        Duration::from_secs(10),
        || health(&cut_off, "/health"),
        |status| *status == Some(StatusCode::OK),
    )
    .await;
}

#[tokio::test]
async fn a_takedown_on_one_instance_reaches_the_cache_of_another_within_a_second() {
    let Some((a, b)) = two_instances(&[]) else {
        return;
    };
    let code = code_of(&a.new_link(json!({"url": "https://example.com/td"})).await);
    assert_eq!(b.visit(&code).await.status(), StatusCode::FOUND); // cached on B
    let down = a
        .api(Method::POST, &format!("/api/v1/links/{code}/takedown"))
        .json(&json!({"reason": "phishing"}))
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), StatusCode::OK);
    let took = seen_within(&b, &code, StatusCode::GONE, "").await;
    assert!(
        took < Duration::from_secs(1),
        "a takedown took {took:?} to reach B"
    );
    let body: serde_json::Value = b.visit(&code).await.json().await.unwrap();
    assert_eq!(body["code"], "taken_down", "{body}");
}
