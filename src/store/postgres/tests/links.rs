//! Links, keys, idempotency and change notifications.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::NoTls;

use super::*;

#[tokio::test]
async fn links_are_created_read_changed_and_deleted_like_on_sqlite() {
    let Some((store, _, admin)) = store().await else {
        return;
    };
    let user = store
        .create_key("user".into(), Role::User, vec![2; 32])
        .await
        .unwrap();
    let link = created(
        store
            .create_link(
                new_link(Some("Promo"), "https://example.com/a", admin.row_id),
                None,
            )
            .await
            .unwrap(),
    );
    assert_eq!(link.code.as_str(), "Promo");
    assert_eq!(link.tags, vec!["t1".to_string()]);
    assert_eq!(link.max_clicks, Some(10));
    assert_eq!(store.get_link("Promo").await.unwrap(), Some(link.clone()));
    assert_eq!(
        store.get_link("promo").await.unwrap(),
        None,
        "case-sensitive"
    );

    let random = created(
        store
            .create_link(new_link(None, "https://example.com/r", user.row_id), None)
            .await
            .unwrap(),
    );
    assert_eq!(random.code.as_str().len(), 7);

    let patch = LinkPatch {
        url: Some(Destination::parse("https://example.com/b", &[]).unwrap()),
        title: Some(None),
        max_clicks: Some(None),
        disabled: Some(true),
        ..LinkPatch::default()
    };
    assert!(matches!(
        store
            .update_link("Promo", Some(user.row_id), patch.clone())
            .await,
        Err(StoreError::NotFound)
    ));
    let changed = store.update_link("Promo", None, patch).await.unwrap();
    assert_eq!(changed.url, "https://example.com/b");
    assert_eq!((changed.title.as_deref(), changed.max_clicks), (None, None));
    assert!(changed.disabled);
    assert_eq!(changed.tags, link.tags, "fields not in the patch are kept");
    assert_eq!(store.get_link("Promo").await.unwrap(), Some(changed));

    let listed = store.list_links(None, None, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|l| l.id).collect::<Vec<_>>(),
        vec![random.id, link.id],
        "newest first"
    );
    let mine = store.list_links(Some(user.row_id), None, 10).await.unwrap();
    assert_eq!(mine.len(), 1);
    let older = store.list_links(None, Some(random.id), 10).await.unwrap();
    assert_eq!(older.len(), 1);

    assert!(matches!(
        store.delete_link("Promo", Some(user.row_id)).await,
        Err(StoreError::NotFound)
    ));
    store.delete_link("Promo", None).await.unwrap();
    assert!(store.get_link("Promo").await.unwrap().unwrap().deleted);
    assert!(matches!(
        store.delete_link("Promo", None).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.update_link("Promo", None, LinkPatch::default()).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.list_links(None, None, 10).await.unwrap().len(), 1);
    // A tombstone keeps its code.
    assert!(matches!(
        store
            .create_link(
                new_link(Some("Promo"), "https://example.com/c", admin.row_id),
                None
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
}

#[tokio::test]
async fn a_taken_custom_code_is_a_conflict_and_keeps_the_connection() {
    let Some((store, _, admin)) = store().await else {
        return;
    };
    store
        .create_link(
            new_link(Some("taken"), "https://example.com/", admin.row_id),
            None,
        )
        .await
        .unwrap();
    let connections = store.primary.status().size;
    let err = store
        .create_link(
            new_link(Some("taken"), "https://example.com/", admin.row_id),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref m) if m.contains("taken")),
        "{err:?}"
    );
    assert_eq!(store.primary.status().size, connections, "not discarded");
}

#[tokio::test]
async fn an_idempotent_create_replays_the_first_link_and_refuses_another_body() {
    let Some((store, _, admin)) = store().await else {
        return;
    };
    let idem = |hash: u8| IdempotencyRequest {
        key_row_id: admin.row_id,
        idem_key: "k-1".into(),
        request_hash: vec![hash; 32],
    };
    let first = created(
        store
            .create_link(
                new_link(None, "https://example.com/i", admin.row_id),
                Some(idem(7)),
            )
            .await
            .unwrap(),
    );
    match store
        .create_link(
            new_link(None, "https://example.com/i", admin.row_id),
            Some(idem(7)),
        )
        .await
        .unwrap()
    {
        CreateOutcome::Replayed(link) => assert_eq!(link, first),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store
            .create_link(
                new_link(None, "https://example.com/j", admin.row_id),
                Some(idem(8))
            )
            .await
            .unwrap(),
        CreateOutcome::IdempotencyMismatch
    ));
    assert_eq!(store.list_links(None, None, 10).await.unwrap().len(), 1);
    // Purged records no longer replay.
    assert_eq!(store.purge_idempotency(now() + 10).await.unwrap(), 1);
    created(
        store
            .create_link(
                new_link(None, "https://example.com/i", admin.row_id),
                Some(idem(7)),
            )
            .await
            .unwrap(),
    );
}

#[tokio::test]
async fn concurrent_creates_with_one_idempotency_key_make_one_link() {
    let Some((store, _, admin)) = store().await else {
        return;
    };
    let store = Arc::new(store);
    for code in [None, Some("same")] {
        let idem = IdempotencyRequest {
            key_row_id: admin.row_id,
            idem_key: format!("race-{code:?}"),
            request_hash: vec![3; 32],
        };
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (store, idem) = (store.clone(), idem.clone());
                let new = new_link(code, "https://example.com/race", admin.row_id);
                tokio::spawn(async move { store.create_link(new, Some(idem)).await })
            })
            .collect();
        let mut ids = Vec::new();
        let mut created = 0;
        for t in tasks {
            match t.await.unwrap().unwrap() {
                CreateOutcome::Created(l) => {
                    created += 1;
                    ids.push(l.id);
                }
                CreateOutcome::Replayed(l) => ids.push(l.id),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(created, 1, "{code:?}");
        ids.dedup();
        assert_eq!(ids.len(), 1, "every answer is the same link ({code:?})");
    }
}

#[tokio::test]
async fn imports_skip_taken_codes() {
    let Some((store, _, admin)) = store().await else {
        return;
    };
    store
        .create_link(
            new_link(Some("old"), "https://example.com/", admin.row_id),
            None,
        )
        .await
        .unwrap();
    let links: Vec<_> = ["old", "new1", "new2", "new1"]
        .iter()
        .map(|c| {
            (
                ShortCode::parse_custom(c).unwrap(),
                Destination::parse(&format!("https://example.com/{c}"), &[]).unwrap(),
            )
        })
        .collect();
    assert_eq!(store.import_links(links, admin.row_id).await.unwrap(), 2);
    let new1 = store.get_link("new1").await.unwrap().unwrap();
    assert_eq!(new1.url, "https://example.com/new1");
    assert_eq!(new1.owner, admin.row_id);
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
        .update_link("note1", None, LinkPatch::default())
        .await
        .unwrap();
    assert_eq!(
        next().await,
        note("note1"),
        "a failed create announces nothing"
    );
    store.delete_link("note1", None).await.unwrap();
    assert_eq!(next().await, note("note1"));
    let import = vec![(
        ShortCode::parse_custom("note2").unwrap(),
        Destination::parse("https://example.com/", &[]).unwrap(),
    )];
    store.import_links(import, admin.row_id).await.unwrap();
    assert_eq!(next().await, note("note2"));
}

#[tokio::test]
async fn keys_are_created_found_listed_and_revoked() {
    let Some((store, _, admin)) = store().await else {
        return;
    };
    let user = store
        .create_key("u".into(), Role::User, vec![5; 32])
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_key("dup".into(), Role::User, vec![5; 32])
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.count_keys().await.unwrap(), 2);
    assert_eq!(
        store.find_key(vec![5; 32]).await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(store.list_keys().await.unwrap(), vec![admin, user.clone()]);
    store.revoke_key(&user.id, false).await.unwrap();
    assert!(matches!(
        store.revoke_key(&user.id, false).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.find_key(vec![5; 32]).await.unwrap(), None);
    assert_eq!(store.count_keys().await.unwrap(), 1);

    // --admin-key revives and promotes the key, also when instances start at once.
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.ensure_admin_key(vec![5; 32]).await })
        })
        .collect();
    for t in tasks {
        let key = t.await.unwrap().unwrap();
        assert_eq!((key.row_id, key.role), (user.row_id, Role::Admin));
    }
    assert_eq!(store.count_keys().await.unwrap(), 2);
    let fresh = store.ensure_admin_key(vec![6; 32]).await.unwrap();
    assert_eq!(store.find_key(vec![6; 32]).await.unwrap(), Some(fresh));
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
