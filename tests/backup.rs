//! The embedded store's file is a backup after a graceful stop: `snip.db` alone, copied without
//! its `-wal`, holds every acknowledged link, even when readers served requests before the stop
//! (a read-only reader closing last could not checkpoint the WAL, which left `snip.db` alone
//! missing links). These tests name their SQLite file, so both passes of scripts/test.sh run
//! them the same way.

mod common;

use std::sync::Arc;

use common::{TestServer, code_of};
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
    let copy_dir = Arc::new(tempfile::tempdir().unwrap());
    let copy = copy_dir.path().join("snip.db");
    std::fs::copy(&db, &copy).unwrap();
    let restored = TestServer::builder()
        .dir(Arc::clone(&copy_dir))
        .database(&format!("sqlite://{}", copy.display()))
        .admin_key(&server.admin_key)
        .start();
    for code in &codes {
        let resp = restored
            .call(Method::GET, &format!("/api/v1/links/{code}"))
            .await;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "{code} is missing from the copy of snip.db"
        );
    }
}
