//! The embedded store's file is a backup after a graceful stop: `snip.db` alone, copied without
//! its `-wal`, holds every acknowledged link, even when readers served requests before the stop
//! (a read-only reader closing last could not checkpoint the WAL, which left `snip.db` alone
//! missing links). These tests name their SQLite file, so both passes of scripts/test.sh run
//! them the same way.

use std::sync::Arc;

use crate::common::{TestServer, code_of};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn after_a_graceful_stop_the_database_file_alone_holds_every_link_even_after_reads() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let db = dir.path().join("snip.db");
    let database = format!("sqlite://{}", db.display());
    let mut server = TestServer::builder()
        .dir(Arc::clone(&dir))
        .database(&database)
        .start();
    let mut codes = Vec::new();
    for i in 0..300 {
        let link = server
            .new_link(json!({"url": format!("https://example.com/{i}")}))
            .await;
        codes.push(code_of(&link));
    }
    // Every kind of read a running server does: health checks, API reads, redirects.
    for code in codes.iter().take(50) {
        assert_eq!(
            server
                .call(Method::GET, &format!("/api/v1/links/{code}"))
                .await
                .status(),
            StatusCode::OK
        );
        assert_eq!(server.visit(code).await.status(), StatusCode::FOUND);
    }
    for _ in 0..10 {
        let health = server
            .client
            .get(server.url("/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        let list = server.call(Method::GET, "/api/v1/links?limit=100").await;
        assert_eq!(list.status(), StatusCode::OK);
    }

    server.sigterm();

    let wal = dir.path().join("snip.db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "the WAL still holds {} bytes after a graceful stop",
        std::fs::metadata(&wal).map_or(0, |m| m.len())
    );
    assert_a_server_on_a_copy_finds(&db, &server.admin_key, &codes).await;
}

/// Copies the database file `db` alone into a new directory, starts a server on the copy and
/// asserts that every one of `codes` is there.
async fn assert_a_server_on_a_copy_finds(db: &std::path::Path, admin_key: &str, codes: &[String]) {
    let copy_dir = Arc::new(tempfile::tempdir().unwrap());
    let copy = copy_dir.path().join("snip.db");
    std::fs::copy(db, &copy).unwrap();
    let restored = TestServer::builder()
        .dir(Arc::clone(&copy_dir))
        .database(&format!("sqlite://{}", copy.display()))
        .admin_key(admin_key)
        .start();
    for code in codes {
        let resp = restored
            .call(Method::GET, &format!("/api/v1/links/{code}"))
            .await;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "{code} is missing from the copy of {}",
            db.display()
        );
    }
}

/// Runs `snip ARGS` to completion (bounded) and returns its exit code, stdout and stderr.
fn snip(args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_snip"))
        .args(args)
        .env_remove("SNIP_DATABASE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn snip");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().expect("poll snip").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "snip {args:?} did not exit within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("snip's output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn snip_backup_copies_a_running_store_while_it_is_written() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let db = dir.path().join("snip.db");
    let database = format!("sqlite://{}", db.display());
    let server = TestServer::builder()
        .dir(Arc::clone(&dir))
        .database(&database)
        .start();
    let mut before = Vec::new();
    for i in 0..200 {
        let link = server
            .new_link(json!({"url": format!("https://example.com/before/{i}")}))
            .await;
        before.push(code_of(&link));
    }
    // Writes go on while the backup runs: creates, and the click flushes of redirects.
    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let writing = Arc::clone(&writing);
        let client = server.client.clone();
        let url = server.url("/api/v1/links");
        let key = server.admin_key.clone();
        let visit = server.url(&format!("/{}", before[0]));
        tokio::spawn(async move {
            let mut written = 0;
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                let resp = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({"url": format!("https://example.com/during/{written}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::CREATED);
                let _ = client.get(&visit).send().await.unwrap();
                written += 1;
            }
            written
        })
    };

    let dest = dir.path().join("backup.db");
    let dest_str = dest.display().to_string();
    let (status, stdout, stderr) = tokio::task::spawn_blocking({
        let database = database.clone();
        move || snip(&["backup", "--database", &database, &dest_str])
    })
    .await
    .unwrap();
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    let written_meanwhile = writer.await.unwrap();

    assert_eq!(status, Some(0), "snip backup: {stderr}");
    assert!(stdout.starts_with("backed up "), "{stdout}");
    assert!(written_meanwhile > 0, "no write ran beside the backup");
    // The server is still up, and its store still takes writes.
    assert_eq!(server.visit(&before[1]).await.status(), StatusCode::FOUND);

    // The copy, opened by a server of its own, holds every link created before the backup.
    assert_a_server_on_a_copy_finds(&dest, &server.admin_key, &before).await;

    // It never overwrites a file, and it is for the embedded store only.
    let dest_str = dest.display().to_string();
    let (status, _, stderr) = snip(&["backup", "--database", &database, &dest_str]);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("exists already"), "{stderr}");
    let (status, _, stderr) = snip(&["backup", "--database", "postgres://h/db", "x.db"]);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(stderr.contains("pg_dump"), "{stderr}");
}
