//! What only the PostgreSQL store does with links: a conflict keeps its pooled connection,
//! committed changes are announced, every instance shares the visitor key (the rest is the
//! store contract, `crate::store::contract`).

use std::collections::HashMap;
use std::time::Duration;

use tokio_postgres::NoTls;

use super::*;

#[tokio::test]
async fn a_taken_custom_code_is_a_conflict_and_keeps_the_connection() {
    let Some((store, _, admin)) = store().await else {
        return;
    };
    create_custom(&store, "taken", "https://example.com/", admin.row_id)
        .await
        .unwrap();
    let connections = store.primary.status().size;
    let err = create_custom(&store, "taken", "https://example.com/", admin.row_id)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref m) if m.contains("taken")),
        "{err:?}"
    );
    assert_eq!(store.primary.status().size, connections, "not discarded");
}

#[tokio::test]
async fn committed_link_changes_are_announced() {
    let Some((store, url, admin)) = store().await else {
        return;
    };
    let (listener, mut connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let _ = tx.send((n.channel().to_string(), n.payload().to_string()));
            }
        }
    });
    listener
        .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
        .await
        .unwrap();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap()
    };
    let instance = store.instance_id().unwrap().to_string();
    let note = |code: &str| (NOTIFY_CHANNEL.to_string(), format!("{instance} {code}"));
    let idem = IdempotencyRequest {
        key_row_id: admin.row_id,
        idem_key: "n".into(),
        request_hash: vec![1; 32],
    };
    store
        .create_link(
            new_link(Some("note1"), "https://example.com/", admin.row_id),
            Some(idem),
        )
        .await
        .unwrap();
    assert_eq!(next().await, note("note1"));
    let _ = store
        .create_link(
            new_link(Some("note1"), "https://example.com/", admin.row_id),
            None,
        )
        .await;
    store
        .update_link("note1", Scope::All, LinkPatch::default())
        .await
        .unwrap();
    assert_eq!(
        next().await,
        note("note1"),
        "a failed create announces nothing"
    );
    store.delete_link("note1", Scope::All).await.unwrap();
    assert_eq!(next().await, note("note1"));
    let import = vec![crate::domain::ImportLink::new(
        crate::domain::ShortCode::parse_custom("note2").unwrap(),
        crate::domain::Destination::parse("https://example.com/", &[]).unwrap(),
    )];
    store.import_links(import, admin.row_id).await.unwrap();
    assert_eq!(next().await, note("note2"));
}

#[tokio::test]
async fn every_instance_gets_the_same_visitor_key_of_the_day() {
    let Some((a, url, _)) = store().await else {
        return;
    };
    let b = PgStore::connect(&url, &[], opts()).await.unwrap();
    let key = a.visitor_key(100).await.unwrap();
    assert_eq!(b.visitor_key(100).await.unwrap(), key);
    assert_ne!(b.visitor_key(101).await.unwrap(), key);
    b.visitor_key(103).await.unwrap();
    assert_ne!(
        a.visitor_key(100).await.unwrap(),
        key,
        "day 100's key was deleted"
    );
}

/// Creates arriving together share a transaction (group commit), each with its own outcome:
/// random codes all created, of two creates of one custom code exactly one wins.
#[tokio::test]
async fn concurrent_creates_are_committed_in_groups_each_with_its_own_outcome() {
    let Some((store, _, admin)) = store().await else {
        return;
    };
    let store = std::sync::Arc::new(store);
    let mut creates = Vec::new();
    for i in 0..300 {
        let store = store.clone();
        let code = (i % 6 == 0).then(|| format!("pair{}", i % 60));
        creates.push(tokio::spawn(async move {
            let url = format!("https://example.com/{i}");
            let new = new_link(code.as_deref(), &url, admin.row_id);
            (code, url, store.create_link(new, None).await)
        }));
    }
    let (mut winners, mut conflicts) = (HashMap::new(), HashMap::new());
    let mut codes = std::collections::HashSet::new();
    for create in creates {
        let (custom, url, outcome) = create.await.unwrap();
        match (custom, outcome) {
            (None, Ok(CreateOutcome::Created(link))) => {
                assert!(codes.insert(link.code.clone()), "{} twice", link.code);
                let stored = store.get_link(link.code.as_str()).await.unwrap().unwrap();
                assert_eq!(stored.url, url);
            }
            (Some(code), Ok(CreateOutcome::Created(link))) => {
                assert_eq!(link.code.as_str(), code);
                assert!(winners.insert(code, url).is_none(), "two winners");
            }
            (Some(code), Err(StoreError::Conflict(_))) => {
                *conflicts.entry(code).or_insert(0) += 1;
            }
            (custom, outcome) => panic!("{custom:?}: {outcome:?}"),
        }
    }
    assert_eq!(codes.len(), 250);
    assert_eq!(winners.len(), 10);
    assert!(conflicts.values().all(|n| *n == 4), "{conflicts:?}");
    for (code, url) in winners {
        let stored = store.get_link(&code).await.unwrap().unwrap();
        assert_eq!(stored.url, url, "{code}: the acknowledged winner is stored");
    }
    assert!(store.group.get().unwrap().grouped() > 0, "no group formed");
}

#[tokio::test]
async fn concurrent_lookups_share_queries_and_each_gets_its_own_link() {
    let Some((store, _, admin)) = store().await else {
        return;
    };
    let store = std::sync::Arc::new(store);
    for i in 0..40 {
        let new = new_link(
            Some(&format!("look{i}")),
            &format!("https://example.com/{i}"),
            admin.row_id,
        );
        store.create_link(new, None).await.unwrap();
    }
    let mut lookups = Vec::new();
    for round in 0..10 {
        for i in 0..60 {
            let store = store.clone();
            // Codes 40..59 do not exist; every code is looked up ten times at once.
            lookups.push(tokio::spawn(async move {
                let found = if (i + round) % 2 == 0 {
                    store.get_link(&format!("look{i}")).await
                } else {
                    store.get_link_primary(&format!("look{i}")).await
                };
                (i, found)
            }));
        }
    }
    for lookup in lookups {
        let (i, found) = lookup.await.unwrap();
        match found.unwrap() {
            Some(link) => {
                assert!(i < 40, "look{i} does not exist");
                assert_eq!(link.code.as_str(), format!("look{i}"));
                assert_eq!(link.url, format!("https://example.com/{i}"));
            }
            None => assert!(i >= 40, "look{i} exists"),
        }
    }
    assert!(
        store.primary_reads.get().unwrap().batched() > 0,
        "no batch formed"
    );
}

/// An insert the server refuses (a NUL in a text column) rolls its group back; the others are
/// then created one by one and only it fails.
#[tokio::test]
async fn a_create_the_server_refuses_fails_alone_in_its_group() {
    let Some((store, _, admin)) = store().await else {
        return;
    };
    let store = std::sync::Arc::new(store);
    let mut creates = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        creates.push(tokio::spawn(async move {
            let mut new = new_link(None, &format!("https://example.com/{i}"), admin.row_id);
            if i == 25 {
                new.title = Some("nul \0 byte".into());
            }
            (i, store.create_link(new, None).await)
        }));
    }
    for create in creates {
        let (i, outcome) = create.await.unwrap();
        match outcome {
            Ok(CreateOutcome::Created(link)) if i != 25 => {
                assert!(store.get_link(link.code.as_str()).await.unwrap().is_some());
            }
            Err(StoreError::Other(_)) if i == 25 => {}
            other => panic!("{i}: {other:?}"),
        }
    }
    assert!(store.group.get().unwrap().grouped() > 0, "no group formed");
}
