//! The store contract: the same cases run against every backend (`sqlite` below, and
//! `postgres` against the server in `SNIP_TEST_POSTGRES`, which `scripts/test.sh` starts:
//! without it they print a note and pass, unless `SNIP_TEST_REQUIRE_SERVICES` is set, when
//! they fail). Backend-specific behaviour (connections, notifications, files) is tested beside
//! each backend.

use std::sync::Arc;

use super::*;
use crate::domain::link::CodeChoice;
use crate::domain::time::now;
use crate::domain::{Destination, ShortCode};

/// How many live links an admin lists, at most `limit`.
async fn live(store: &dyn Store, limit: usize) -> usize {
    let listed = store
        .list_links(Scope::All, ListFilter::default(), page(None, limit))
        .await;
    listed.unwrap().len()
}

/// A page of `limit` links past `past_id`.
fn page(past_id: Option<i64>, limit: usize) -> Cursor {
    Cursor { past_id, limit }
}

/// A store with an admin key (links need an owner).
pub(crate) struct Fixture {
    pub store: Arc<dyn Store>,
    pub admin: ApiKey,
    /// Keeps the SQLite file's directory.
    _dir: Option<tempfile::TempDir>,
}

async fn with_admin(store: Arc<dyn Store>, dir: Option<tempfile::TempDir>) -> Fixture {
    let admin = store
        .create_key("admin".into(), Role::Admin, vec![1; 32])
        .await
        .unwrap();
    Fixture {
        store,
        admin,
        _dir: dir,
    }
}

async fn sqlite() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite::SqliteStore::open(
        &dir.path().join("snip.db"),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    Some(with_admin(Arc::new(store), Some(dir)).await)
}

async fn postgres() -> Option<Fixture> {
    let url = postgres::tests::fresh_database().await?;
    let store = postgres::PgStore::connect(&url, &[], postgres::tests::opts())
        .await
        .unwrap();
    Some(with_admin(Arc::new(store), None).await)
}

/// A link to create: a custom `code` or a random one, with a title, a tag and `max_clicks`.
pub(crate) fn new_link(code: Option<&str>, url: &str, owner: i64) -> NewLink {
    NewLink {
        created_at: None,
        imported_clicks: 0,
        code: match code {
            Some(c) => CodeChoice::Custom(ShortCode::parse_custom(c).unwrap()),
            None => CodeChoice::Random { len: 7 },
        },
        url: Destination::parse(url, &[]).unwrap(),
        title: Some("a title".into()),
        tags: vec!["t1".into()],
        owner,
        expires_at: None,
        max_clicks: Some(10),
    }
}

/// Creates a link with the custom `code` (no idempotency record).
pub(crate) async fn create_custom(
    store: &dyn Store,
    code: &str,
    url: &str,
    owner: i64,
) -> StoreResult<CreateOutcome> {
    store
        .create_link(new_link(Some(code), url, owner), None)
        .await
}

fn created(outcome: CreateOutcome) -> Link {
    match outcome {
        CreateOutcome::Created(link) => link,
        other => panic!("expected Created, got {other:?}"),
    }
}

/// Runs `case` on each backend, as one test per backend.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let fixture = super::sqlite().await.expect("a SQLite store");
                    super::$case(fixture).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    if let Some(fixture) = super::postgres().await {
                        super::$case(fixture).await;
                    }
                }
            )*
        }
    };
}

contract!(
    links_are_created_read_changed_and_deleted,
    a_taken_custom_code_is_a_conflict,
    an_idempotent_create_replays_the_first_link_and_refuses_another_body,
    concurrent_creates_with_one_idempotency_key_make_one_link,
    imports_skip_taken_codes,
    keys_are_created_found_listed_and_revoked,
    the_last_active_admin_key_is_kept_unless_forced,
    the_visitor_key_of_a_day_stays_until_its_day_is_gone,
    lists_are_searched_by_text_and_tag_in_either_order,
    sessions_act_as_their_key_until_they_end,
    a_scope_sums_its_links_clicks_per_window_and_day,
);

async fn lists_are_searched_by_text_and_tag_in_either_order(f: Fixture) {
    let (store, admin) = (f.store, f.admin);
    let user = store
        .create_key("u".into(), Role::User, vec![7; 32])
        .await
        .unwrap();
    let mut ids = Vec::new();
    for (code, url, title, tags, owner) in [
        (
            "Alpha",
            "https://one.example/a",
            "First",
            vec!["red"],
            admin.row_id,
        ),
        (
            "beta",
            "https://two.example/Path",
            "Second",
            vec!["red", "blue"],
            admin.row_id,
        ),
        (
            "gamma",
            "https://three.example/",
            "Third ALPHA",
            vec![],
            user.row_id,
        ),
    ] {
        let mut new = new_link(Some(code), url, owner);
        new.title = Some(title.into());
        new.tags = tags.into_iter().map(String::from).collect();
        ids.push(created(store.create_link(new, None).await.unwrap()).id);
    }
    let codes = |links: Vec<Link>| {
        links
            .into_iter()
            .map(|l| l.code.to_string())
            .collect::<Vec<_>>()
    };
    let list = |scope, text: Option<&str>, tag: Option<&str>, order, past| {
        let store = store.clone();
        let filter = ListFilter {
            text: text.map(String::from),
            tag: tag.map(String::from),
            order,
        };
        async move {
            codes(
                store
                    .list_links(scope, filter, page(past, 10))
                    .await
                    .unwrap(),
            )
        }
    };
    use ListOrder::{NewestFirst, OldestFirst};
    // The text is found in the code, the destination or the title, whatever the case.
    assert_eq!(
        list(Scope::All, Some("alpha"), None, NewestFirst, None).await,
        ["gamma", "Alpha"]
    );
    assert_eq!(
        list(Scope::All, Some("path"), None, NewestFirst, None).await,
        ["beta"]
    );
    assert_eq!(
        list(Scope::All, Some("%"), None, NewestFirst, None).await,
        Vec::<String>::new()
    );
    assert_eq!(
        list(Scope::All, None, Some("red"), OldestFirst, None).await,
        ["Alpha", "beta"]
    );
    assert_eq!(
        list(Scope::All, None, Some("re"), OldestFirst, None).await,
        Vec::<String>::new()
    );
    assert_eq!(
        list(Scope::All, None, None, OldestFirst, Some(ids[0])).await,
        ["beta", "gamma"]
    );
    assert_eq!(
        list(
            Scope::OwnedBy(user.row_id),
            Some("alpha"),
            None,
            NewestFirst,
            None
        )
        .await,
        ["gamma"]
    );
    assert_eq!(
        store.link_tags(Scope::All, 10).await.unwrap(),
        ["blue", "red"]
    );
    assert_eq!(store.link_tags(Scope::All, 1).await.unwrap(), ["blue"]);
    assert!(
        store
            .link_tags(Scope::OwnedBy(user.row_id), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn sessions_act_as_their_key_until_they_end(f: Fixture) {
    let (store, admin) = (f.store, f.admin);
    let user = store
        .create_key("u".into(), Role::User, vec![8; 32])
        .await
        .unwrap();
    let at = now();
    store
        .create_session(vec![1; 32], admin.row_id, at + 60)
        .await
        .unwrap();
    store
        .create_session(vec![2; 32], user.row_id, at + 60)
        .await
        .unwrap();
    store
        .create_session(vec![3; 32], admin.row_id, at - 1)
        .await
        .unwrap();
    assert_eq!(
        store.find_session(vec![1; 32], at).await.unwrap(),
        Some(admin.clone())
    );
    assert_eq!(
        store.find_session(vec![2; 32], at).await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(
        store.find_session(vec![3; 32], at).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        store.find_session(vec![1; 32], at + 60).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        store.find_session(vec![9; 32], at).await.unwrap(),
        None,
        "unknown"
    );
    store.delete_session(vec![1; 32]).await.unwrap();
    store.delete_session(vec![1; 32]).await.unwrap();
    assert_eq!(
        store.find_session(vec![1; 32], at).await.unwrap(),
        None,
        "signed out"
    );
    store.revoke_key(&user.id, false).await.unwrap();
    assert_eq!(
        store.find_session(vec![2; 32], at).await.unwrap(),
        None,
        "key revoked"
    );
    // Expired sessions are purged with the idempotency records (and a live one is kept).
    store
        .create_session(vec![4; 32], admin.row_id, at + 600)
        .await
        .unwrap();
    store.purge_idempotency(0).await.unwrap();
    assert_eq!(
        store.find_session(vec![4; 32], at).await.unwrap(),
        Some(admin)
    );
}

async fn a_scope_sums_its_links_clicks_per_window_and_day(f: Fixture) {
    let (store, admin) = (f.store, f.admin);
    let user = store
        .create_key("u".into(), Role::User, vec![9; 32])
        .await
        .unwrap();
    let a = created(
        create_custom(store.as_ref(), "suma", "https://a.example/", admin.row_id)
            .await
            .unwrap(),
    );
    let b = created(
        create_custom(store.as_ref(), "sumb", "https://b.example/", user.row_id)
            .await
            .unwrap(),
    );
    let hour = now().div_euclid(3600);
    let count = |link_id, hour, clicks, bots| HourCount {
        link_id,
        hour,
        clicks,
        bots,
    };
    let dims = |link_id, day, key: &str, human| DayDetail {
        link_id,
        day,
        dims: vec![DimCount {
            dim: Dim::Country,
            key: key.into(),
            human,
            bot: 0,
        }],
        ..DayDetail::default()
    };
    let batch = ClickBatch {
        // a: 3 clicks now (1 of them a bot), 5 two days ago, 7 twenty days ago; b: 2 now.
        hourly: vec![
            count(a.id, hour, 3, 1),
            count(a.id, hour - 48, 5, 0),
            count(a.id, hour - 480, 7, 0),
            count(b.id, hour, 2, 0),
            count(b.id, hour - 2000, 100, 0),
        ],
        days: vec![
            dims(a.id, hour.div_euclid(24), "FR", 2),
            dims(b.id, hour.div_euclid(24), "FR", 2),
            dims(b.id, hour.div_euclid(24), "DE", 1),
        ],
        unknown: vec![],
    };
    store.add_clicks(Arc::new(batch), true).await.unwrap();
    let at = hour * 3600 + 1;
    let windows = [at - 30 * 86_400, at - 7 * 86_400, at - 86_400];
    let all = store.scope_clicks(Scope::All, windows).await.unwrap();
    let mut per_link = all.per_link.clone();
    per_link.sort();
    assert_eq!(
        per_link,
        vec![
            (a.id, "suma".to_string(), [14, 7, 2]),
            (b.id, "sumb".to_string(), [2, 2, 2])
        ]
    );
    assert_eq!(all.per_day.iter().map(|d| d.1).sum::<u64>(), 16);
    assert_eq!(all.per_day.last(), Some(&(hour.div_euclid(24), 4)));
    let countries = &crate::store::dims::scope_dims(&all.dims, &[], 10)[Dim::Country as usize];
    assert_eq!(countries, &[("FR".to_string(), 4), ("DE".to_string(), 1)]);
    let mine = store
        .scope_clicks(Scope::OwnedBy(user.row_id), windows)
        .await
        .unwrap();
    assert_eq!(mine.per_link, vec![(b.id, "sumb".to_string(), [2, 2, 2])]);
    store.delete_link("sumb", Scope::All).await.unwrap();
    let gone = store
        .scope_clicks(Scope::OwnedBy(user.row_id), windows)
        .await
        .unwrap();
    assert_eq!(
        gone,
        ScopeClicks::default(),
        "a deleted link's clicks leave the overview"
    );
}

async fn links_are_created_read_changed_and_deleted(f: Fixture) {
    let (store, admin) = (f.store, f.admin);
    let user = store
        .create_key("user".into(), Role::User, vec![2; 32])
        .await
        .unwrap();
    let link = created(
        create_custom(
            store.as_ref(),
            "Promo",
            "https://example.com/a",
            admin.row_id,
        )
        .await
        .unwrap(),
    );
    assert_eq!(link.code.as_str(), "Promo");
    assert_eq!(link.tags, vec!["t1".to_string()]);
    assert_eq!(link.max_clicks, Some(10));
    assert_eq!(link.owner, admin.row_id);
    assert!(!link.deleted && !link.disabled);
    assert_eq!(store.get_link("Promo").await.unwrap(), Some(link.clone()));
    assert_eq!(
        store.get_link_primary("Promo").await.unwrap(),
        Some(link.clone())
    );
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
            .update_link("Promo", Scope::OwnedBy(user.row_id), patch.clone())
            .await,
        Err(StoreError::NotFound)
    ));
    let changed = store.update_link("Promo", Scope::All, patch).await.unwrap();
    assert_eq!(changed.url, "https://example.com/b");
    assert_eq!((changed.title.as_deref(), changed.max_clicks), (None, None));
    assert!(changed.disabled);
    assert_eq!(changed.tags, link.tags, "fields not in the patch are kept");
    assert_eq!(store.get_link("Promo").await.unwrap(), Some(changed));

    let taken_down = LinkPatch {
        disabled: Some(true),
        takedown: Some(Some("phishing".into())),
        ..LinkPatch::default()
    };
    let down = store
        .update_link("Promo", Scope::All, taken_down)
        .await
        .unwrap();
    assert_eq!(down.takedown.as_deref(), Some("phishing"));
    let lifted = LinkPatch {
        disabled: Some(false),
        takedown: Some(None),
        ..LinkPatch::default()
    };
    let up = store
        .update_link("Promo", Scope::All, lifted)
        .await
        .unwrap();
    assert_eq!((up.takedown, up.disabled), (None, false));

    let listed = store
        .list_links(Scope::All, ListFilter::default(), page(None, 10))
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|l| l.id).collect::<Vec<_>>(),
        vec![random.id, link.id],
        "newest first"
    );
    let mine = store
        .list_links(
            Scope::OwnedBy(user.row_id),
            ListFilter::default(),
            page(None, 10),
        )
        .await
        .unwrap();
    assert_eq!(
        mine.iter().map(|l| l.id).collect::<Vec<_>>(),
        vec![random.id]
    );
    let older = store
        .list_links(Scope::All, ListFilter::default(), page(Some(random.id), 10))
        .await
        .unwrap();
    assert_eq!(
        older.iter().map(|l| l.id).collect::<Vec<_>>(),
        vec![link.id]
    );
    assert_eq!(live(store.as_ref(), 1).await, 1);

    assert!(matches!(
        store
            .delete_link("Promo", Scope::OwnedBy(user.row_id))
            .await,
        Err(StoreError::NotFound)
    ));
    store.delete_link("Promo", Scope::All).await.unwrap();
    assert!(store.get_link("Promo").await.unwrap().unwrap().deleted);
    assert!(matches!(
        store.delete_link("Promo", Scope::All).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .update_link("Promo", Scope::All, LinkPatch::default())
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(live(store.as_ref(), 10).await, 1);
    // A tombstone keeps its code.
    assert!(matches!(
        create_custom(
            store.as_ref(),
            "Promo",
            "https://example.com/c",
            admin.row_id
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
}

async fn a_taken_custom_code_is_a_conflict(f: Fixture) {
    let (store, admin) = (f.store, f.admin);
    create_custom(
        store.as_ref(),
        "taken",
        "https://example.com/",
        admin.row_id,
    )
    .await
    .unwrap();
    let err = create_custom(
        store.as_ref(),
        "taken",
        "https://example.com/",
        admin.row_id,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref m) if m.contains("taken")),
        "{err:?}"
    );
    // The store still works after the conflict.
    created(
        create_custom(
            store.as_ref(),
            "other",
            "https://example.com/",
            admin.row_id,
        )
        .await
        .unwrap(),
    );
}

async fn an_idempotent_create_replays_the_first_link_and_refuses_another_body(f: Fixture) {
    let (store, admin) = (f.store, f.admin);
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
    assert_eq!(live(store.as_ref(), 10).await, 1);
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

async fn concurrent_creates_with_one_idempotency_key_make_one_link(f: Fixture) {
    let (store, admin) = (f.store, f.admin);
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

async fn imports_skip_taken_codes(f: Fixture) {
    let (store, admin) = (f.store, f.admin);
    create_custom(store.as_ref(), "old", "https://example.com/", admin.row_id)
        .await
        .unwrap();
    create_custom(
        store.as_ref(),
        "gone",
        "https://example.com/gone",
        admin.row_id,
    )
    .await
    .unwrap();
    store.delete_link("gone", Scope::All).await.unwrap();
    let import = |code: &str, url: &str| ImportLink {
        code: ShortCode::parse_custom(code).unwrap(),
        url: Destination::parse(url, &[]).unwrap(),
        title: Some(format!("title of {code}")),
        tags: vec!["imported".into()],
        expires_at: Some(1_000),
        max_clicks: Some(9),
        created_at: Some(500),
        imported_clicks: 42,
    };
    let links = vec![
        import("old", "https://example.com/"),
        import("new1", "https://example.com/new1"),
        import("new2", "https://example.com/new2"),
        import("new1", "https://example.com/other"),
        import("new2", "https://example.com/new2"),
        import("gone", "https://example.com/gone"),
    ];
    use ImportOutcome::*;
    assert_eq!(
        store.import_links(links, admin.row_id).await.unwrap(),
        [Present, Imported, Imported, Taken, Present, Taken]
    );
    let new1 = store.get_link("new1").await.unwrap().unwrap();
    assert_eq!(new1.url, "https://example.com/new1");
    assert_eq!(new1.owner, admin.row_id);
    assert_eq!(new1.title.as_deref(), Some("title of new1"));
    assert_eq!(new1.tags, ["imported"]);
    assert_eq!(
        (
            new1.created_at,
            new1.expires_at,
            new1.max_clicks,
            new1.imported_clicks
        ),
        (500, Some(1_000), Some(9), 42)
    );
    let old = store.get_link("old").await.unwrap().unwrap();
    assert_eq!(
        old.url, "https://example.com/",
        "an import never overwrites"
    );
    assert_eq!(old.imported_clicks, 0);
}

async fn keys_are_created_found_listed_and_revoked(f: Fixture) {
    let (store, admin) = (f.store, f.admin);
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

async fn the_last_active_admin_key_is_kept_unless_forced(f: Fixture) {
    let (store, admin) = (f.store, f.admin);
    assert!(matches!(
        store.revoke_key(&admin.id, false).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.find_key(vec![1; 32]).await.unwrap(),
        Some(admin.clone())
    );
    store.revoke_key(&admin.id, true).await.unwrap();
    assert_eq!(store.find_key(vec![1; 32]).await.unwrap(), None);
    assert_eq!(store.count_keys().await.unwrap(), 0);
}

async fn the_visitor_key_of_a_day_stays_until_its_day_is_gone(f: Fixture) {
    let store = f.store;
    let key = store.visitor_key(100).await.unwrap();
    assert_eq!(
        store.visitor_key(100).await.unwrap(),
        key,
        "the same all day"
    );
    assert_ne!(
        store.visitor_key(101).await.unwrap(),
        key,
        "a new day, a new key"
    );
}
