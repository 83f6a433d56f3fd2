//! What survives SIGTERM, `kill -9` and a locked store, against the real binary.
//! docs/guarantees.md (shutdown, crashes) and docs/api.md, "Errors" (503 `unavailable`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::{
    self, TestServer, code_of, expect_json, expect_problem, header, poll_for,
    single_connection_client,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_then_restart_keeps_every_click() {
    let flags: &[&str] = &["--click-flush-interval", "1h"];
    let mut server = TestServer::spawn(flags);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/k"}))
            .await,
    );
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = server.url(&format!("/{code}"));
        tasks.push(tokio::spawn(async move {
            let client = single_connection_client();
            for _ in 0..125 {
                let status = client.get(&url).send().await.unwrap().status();
                assert_eq!(status, StatusCode::FOUND);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    server.sigterm();
    let restarted = server.restart(flags);
    let total = restarted.total_clicks(&code).await;

    assert_eq!(total, 500, "every click made before SIGTERM is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_then_restart_keeps_every_link_answered_201() {
    let mut server = TestServer::spawn(&[]);
    let created = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for task in 0..4 {
        let url = server.url("/api/v1/links");
        let key = server.admin_key.clone();
        let created = Arc::clone(&created);
        tasks.push(tokio::spawn(async move {
            let client = single_connection_client();
            let mut confirmed = Vec::new();
            for i in 0..100_000 {
                let dest = format!("https://example.com/t{task}/{i}");
                let sent = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({ "url": dest }))
                    .send()
                    .await;
                let Ok(resp) = sent else { break };
                if resp.status() != StatusCode::CREATED {
                    break;
                }
                let Ok(link) = resp.json::<Value>().await else {
                    break;
                };
                confirmed.push((code_of(&link), dest));
                created.fetch_add(1, Ordering::SeqCst);
            }
            confirmed
        }));
    }
    poll_for(
        "200 links created by the writers",
        Duration::from_secs(20),
        || {
            let n = created.load(Ordering::SeqCst);
            async move { n }
        },
        |n| *n >= 200,
    )
    .await;

    server.kill9();
    let mut confirmed = Vec::new();
    for task in tasks {
        confirmed.extend(task.await.unwrap());
    }
    let restarted = server.restart(&[]);

    let mut lost = Vec::new();
    for (code, dest) in &confirmed {
        let resp = restarted.visit(code).await;
        if resp.status() != StatusCode::FOUND || header(&resp, "location") != *dest {
            lost.push((code.clone(), resp.status(), header(&resp, "location")));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} links answered 201 before kill -9 are lost: {:?}",
        lost.len(),
        confirmed.len(),
        &lost[..lost.len().min(10)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_locked_store_answers_503_while_redirects_keep_working() {
    if !common::is_sqlite() {
        eprintln!("SQLite's write lock only: PostgreSQL outages are tested in tests/postgres.rs");
        return;
    }
    let server = TestServer::spawn(&["--store-timeout", "300ms", "--click-flush-interval", "50ms"]);
    let warm = code_of(
        &server
            .new_link(json!({"url": "https://example.com/warm"}))
            .await,
    );
    let cold = code_of(
        &server
            .new_link(json!({"url": "https://example.com/cold"}))
            .await,
    );
    assert_eq!(server.visit(&warm).await.status(), StatusCode::FOUND);
    assert_eq!(server.wait_for_total_clicks(&warm, 1).await, 1);

    let db = rusqlite::Connection::open(&server.db_path).expect("open the server's database");
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE")
        .expect("take the write lock");

    let started = Instant::now();
    let create = server
        .create_link(json!({"url": "https://example.com/while-locked"}))
        .await;
    let create_took = started.elapsed();
    let warm_resp = server.visit(&warm).await;
    let cold_resp = server.visit(&cold).await;

    assert!(
        create_took < Duration::from_secs(5),
        "a blocked write should give up after about --store-timeout, took {create_took:?}"
    );
    common::assert_retry_after(&create, "create while the store is locked");
    expect_problem(
        create,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "create while the store is locked",
    )
    .await;
    assert_eq!(
        warm_resp.status(),
        StatusCode::FOUND,
        "cached redirect while locked"
    );
    assert_eq!(header(&warm_resp, "location"), "https://example.com/warm");
    assert_eq!(
        cold_resp.status(),
        StatusCode::FOUND,
        "uncached redirect while locked"
    );
    assert_eq!(header(&cold_resp, "location"), "https://example.com/cold");

    db.execute_batch("ROLLBACK")
        .expect("release the write lock");
    drop(db);
    let after = server
        .create_link(json!({"url": "https://example.com/after-unlock"}))
        .await;
    let after = expect_json(
        after,
        StatusCode::CREATED,
        "create after the lock is released",
    )
    .await;
    assert_eq!(
        server.visit(&code_of(&after)).await.status(),
        StatusCode::FOUND
    );
    let warm_total = server.wait_for_total_clicks(&warm, 2).await;
    let cold_total = server.wait_for_total_clicks(&cold, 1).await;
    assert_eq!(
        warm_total, 2,
        "the click made while locked is flushed later"
    );
    assert_eq!(
        cold_total, 1,
        "the click made while locked is flushed later"
    );
}

#[tokio::test]
async fn links_and_keys_survive_a_clean_restart() {
    let flags: &[&str] = &["--base-url", "http://sn.ip"];
    let mut server = TestServer::spawn(flags);
    let link = server
        .new_link(json!({"url": "https://example.com/keep", "code": "keep-me", "title": "T"}))
        .await;
    let user = server.create_key("user").await;
    let deleted = server
        .new_link(json!({"url": "https://example.com/del", "code": "del-me"}))
        .await;
    let delete = server
        .api(
            Method::DELETE,
            &format!("/api/v1/links/{}", code_of(&deleted)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);

    server.sigterm();
    let restarted = server.restart(flags);
    let read_back = restarted.call(Method::GET, "/api/v1/links/keep-me").await;
    let user_list = restarted
        .api_as(&user, Method::GET, "/api/v1/links")
        .send()
        .await
        .unwrap();
    let gone = restarted.visit("del-me").await;
    let reuse = restarted
        .create_link(json!({"url": "https://example.com/x", "code": "del-me"}))
        .await;

    assert_eq!(
        expect_json(read_back, StatusCode::OK, "link after restart").await,
        link
    );
    assert_eq!(user_list.status(), StatusCode::OK, "user key after restart");
    assert_eq!(
        gone.status(),
        StatusCode::GONE,
        "deleted link after restart"
    );
    expect_problem(
        reuse,
        StatusCode::CONFLICT,
        "code_taken",
        "deleted code after restart",
    )
    .await;
}

#[tokio::test]
async fn sigint_also_flushes_every_buffered_click_and_exits_0() {
    let flags: &[&str] = &["--click-flush-interval", "1h"];
    let mut server = TestServer::spawn(flags);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/i"}))
            .await,
    );
    for _ in 0..20 {
        assert_eq!(server.visit(&code).await.status(), StatusCode::FOUND);
    }

    server.sigint();
    let restarted = server.restart(flags);
    let total = restarted.total_clicks(&code).await;

    assert_eq!(total, 20, "every click made before SIGINT is kept");
}

#[tokio::test]
async fn exact_click_mode_commits_each_click_before_answering() {
    let flags: &[&str] = &["--click-mode", "exact", "--click-flush-interval", "1h"];
    let mut server = TestServer::spawn(flags);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/e"}))
            .await,
    );
    for _ in 0..5 {
        assert_eq!(server.visit(&code).await.status(), StatusCode::FOUND);
    }

    let at_once = server.total_clicks(&code).await;
    server.kill9();
    let restarted = server.restart(flags);
    let after_kill = restarted.total_clicks(&code).await;

    assert_eq!(at_once, 5, "exact clicks show in stats at once");
    assert_eq!(after_kill, 5, "exact clicks survive kill -9");
}

#[tokio::test]
async fn buffered_clicks_journalled_before_kill_9_survive_it() {
    // Flushed every 100 ms, but folded into the tables only once a minute: at the kill the
    // clicks are in the journal and in memory, not in the tables.
    let flags: &[&str] = &["--click-flush-interval", "100ms"];
    let mut server = TestServer::spawn(flags);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/j"}))
            .await,
    );
    for _ in 0..7 {
        assert_eq!(server.visit(&code).await.status(), StatusCode::FOUND);
    }
    poll_for(
        "the clicks journalled (/health: clicks backlog 0)",
        Duration::from_secs(10),
        || async {
            let health: Value = server
                .api(Method::GET, "/health")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            health["checks"]["clicks"].clone()
        },
        |clicks| clicks["backlog"] == 0,
    )
    .await;

    server.kill9();
    let restarted = server.restart(flags);
    // SQLite folds its journal on open; on PostgreSQL the restarted process is a new instance,
    // which replays the journal of the killed one once its session is gone (a housekeeping
    // round after start). Both say so on stderr (read by a thread of its own: polled).
    let total = restarted.wait_for_total_clicks(&code, 7).await;
    assert_eq!(total, 7, "journalled clicks survive kill -9");
    let said = if common::is_sqlite() {
        "folded into the tables"
    } else {
        "replayed the click journal of an instance that stopped flushing"
    };
    restarted
        .wait_for_stderr(said, Duration::from_secs(10))
        .await;
    assert_eq!(restarted.total_clicks(&code).await, 7, "replayed once");
}
