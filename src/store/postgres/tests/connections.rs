//! Migrations at concurrent starts, replicas, timeouts and discarded connections.

use std::time::{Duration, Instant};

use super::*;

#[tokio::test]
async fn four_instances_starting_at_once_migrate_once() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::connect(&url, &[], opts()).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap().ping().await.unwrap();
    }
    let rows = client(&url)
        .await
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    let all: Vec<i32> = crate::store::postgres::schema::MIGRATIONS
        .iter()
        .map(|(v, _)| *v)
        .collect();
    assert_eq!(versions, all, "each migration applied once");
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn redirect_reads_fall_back_to_the_primary_when_a_replica_cannot_answer() {
    let Some((primary, url, admin)) = store().await else {
        return;
    };
    primary
        .create_link(
            new_link(Some("onprimary"), "https://example.com/", admin.row_id),
            None,
        )
        .await
        .unwrap();
    // A "replica" that lags (an empty database) and one that is down.
    let (lagging_url, lagging) = {
        let Some((s, u, a)) = store().await else {
            return;
        };
        s.create_link(
            new_link(Some("onreplica"), "https://example.com/", a.row_id),
            None,
        )
        .await
        .unwrap();
        (u, s)
    };
    let down = format!("postgres://postgres@127.0.0.1:{}/postgres", closed_port());
    let store = PgStore::connect(&url, &[lagging_url, down], opts())
        .await
        .unwrap();
    for _ in 0..4 {
        let started = Instant::now();
        let link = store.get_link("onprimary").await.unwrap();
        assert_eq!(link.unwrap().code.as_str(), "onprimary");
        assert!(started.elapsed() < opts().timeout);
    }
    // Replicas are read first: a code only the replica has is found on the replica's turn.
    let mut seen = false;
    for _ in 0..2 {
        seen |= store.get_link("onreplica").await.unwrap().is_some();
    }
    assert!(seen);
    assert_eq!(store.get_link_primary("onreplica").await.unwrap(), None);
    drop(lagging);
}

#[tokio::test]
async fn a_store_that_cannot_be_reached_answers_unavailable_within_the_timeout() {
    // One server refuses connections, the other accepts them and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let timeout = Duration::from_millis(500);
    for port in [closed_port(), silent.local_addr().unwrap().port()] {
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let opts = PgOptions {
            timeout,
            ..PgOptions::default()
        };
        let store = PgStore::unmigrated(pg_config(&url, timeout).unwrap(), &[], opts).unwrap();
        let started = Instant::now();
        assert!(matches!(
            store.ping().await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            store.get_link("abc").await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(started.elapsed() < 2 * timeout + Duration::from_millis(200));
        let err = PgStore::connect(
            &url,
            &[],
            PgOptions {
                timeout,
                ..PgOptions::default()
            },
        )
        .await;
        assert!(err.is_err(), "connect needs the primary");
    }
}

#[tokio::test]
async fn a_call_that_times_out_discards_its_connection() {
    let Some((store, _, _)) = store().await else {
        return;
    };
    store.ping().await.unwrap();
    assert_eq!(store.primary.status().size, 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let conn = lease(&store.primary, deadline).await.unwrap();
    let result = within(
        tokio::time::Instant::now() + Duration::from_millis(100),
        async {
            conn.execute("SELECT pg_sleep(5)", &[]).await?;
            Ok(())
        },
    )
    .await;
    assert!(matches!(
        settle(conn, result),
        Err(StoreError::Unavailable(_))
    ));
    assert_eq!(store.primary.status().size, 0, "detached from the pool");
    store.ping().await.unwrap();
}

#[test]
fn transient_server_states_are_unavailable_and_constraint_errors_are_not() {
    assert!(is_transient("08006"));
    assert!(is_transient("57P01"));
    assert!(is_transient("25006"));
    assert!(is_transient("53300"));
    assert!(is_transient("40P01"));
    assert!(!is_transient("23505"));
    assert!(!is_transient("42P01"));
}
