//! The links API (`/api/v1/links…`): creating, reading, PATCH/DELETE, listing, idempotent
//! retries, random codes. docs/api.md, "Links". Input validation lives in `link_validation.rs`.

use std::collections::HashSet;
use std::sync::Arc;

use crate::common::{
    self, TestServer, code_of, expect_json, expect_problem, header, rfc3339_from_now,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn is_base62(code: &str) -> bool {
    code.chars().all(|c| c.is_ascii_alphanumeric())
}

fn parses_as_rfc3339(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

#[tokio::test]
async fn creating_a_link_returns_201_with_location_and_the_link_object() {
    let server = TestServer::spawn(&["--base-url", "http://sn.ip"]);

    let resp = server
        .create_link(json!({"url": "https://example.com/a/long/path?q=1"}))
        .await;

    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = header(&resp, "location");
    let link: Value = resp.json().await.unwrap();
    let code = code_of(&link);
    assert_eq!(location, format!("/api/v1/links/{code}"));
    assert_eq!(code.len(), 7, "default random code length");
    assert!(is_base62(&code), "random code alphabet: {code}");
    assert_eq!(link["short_url"], format!("http://sn.ip/{code}"));
    assert_eq!(link["url"], "https://example.com/a/long/path?q=1");
    assert_eq!(link["title"], Value::Null);
    assert_eq!(link["tags"], json!([]));
    assert_eq!(link["expires_at"], Value::Null);
    assert_eq!(link["max_clicks"], Value::Null);
    assert_eq!(link["disabled"], false);
    assert!(parses_as_rfc3339(&link["created_at"]), "created_at: {link}");
    assert!(parses_as_rfc3339(&link["updated_at"]), "updated_at: {link}");
}

#[tokio::test]
async fn short_url_defaults_to_the_listen_address() {
    let server = TestServer::spawn(&[]);

    let link = server
        .new_link(json!({"url": "https://example.com/"}))
        .await;

    assert_eq!(
        link["short_url"],
        format!("{}/{}", server.base, code_of(&link))
    );
}

#[tokio::test]
async fn a_created_link_can_be_read_back() {
    let server = TestServer::spawn(&[]);
    let expires_at = rfc3339_from_now(chrono::Duration::days(1));
    let created = server
        .new_link(json!({
            "url": "https://example.com/r",
            "code": "read-back",
            "title": "A title",
            "tags": ["a", "b"],
            "expires_at": expires_at,
            "max_clicks": 10,
        }))
        .await;

    let resp = server.call(Method::GET, "/api/v1/links/read-back").await;

    let link = expect_json(resp, StatusCode::OK, "GET link").await;
    assert_eq!(link, created);
    assert_eq!(link["code"], "read-back");
    assert_eq!(link["title"], "A title");
    assert_eq!(link["tags"], json!(["a", "b"]));
    assert_eq!(link["max_clicks"], 10);
    assert!(parses_as_rfc3339(&link["expires_at"]), "expires_at: {link}");
}

#[tokio::test]
async fn getting_an_unknown_link_returns_404() {
    let server = TestServer::spawn(&[]);

    let resp = server.call(Method::GET, "/api/v1/links/nosuch1").await;

    expect_problem(resp, StatusCode::NOT_FOUND, "not_found", "GET unknown link").await;
}

#[tokio::test]
async fn random_codes_are_distinct_base62_strings() {
    let server = TestServer::spawn(&[]);
    let mut codes = HashSet::new();

    for i in 0..30 {
        let link = server
            .new_link(json!({"url": format!("https://example.com/{i}")}))
            .await;
        codes.insert(code_of(&link));
    }

    assert_eq!(codes.len(), 30, "codes are distinct");
    assert!(
        codes.iter().all(|c| c.len() == 7 && is_base62(c)),
        "{codes:?}"
    );
}

#[tokio::test]
async fn creating_a_taken_code_returns_409() {
    let server = TestServer::spawn(&[]);
    server
        .new_link(json!({"url": "https://example.com/1", "code": "taken"}))
        .await;

    let resp = server
        .create_link(json!({"url": "https://example.com/2", "code": "taken"}))
        .await;

    expect_problem(resp, StatusCode::CONFLICT, "code_taken", "second create").await;
    let redirect = server.visit("taken").await;
    assert_eq!(header(&redirect, "location"), "https://example.com/1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_creates_of_one_code_yield_one_201_and_49_409() {
    let server = Arc::new(TestServer::spawn(&[]));

    let mut tasks = Vec::new();
    for i in 0..50 {
        let server = Arc::clone(&server);
        tasks.push(tokio::spawn(async move {
            let resp = server
                .create_link(json!({"url": format!("https://example.com/{i}"), "code": "race"}))
                .await;
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (status, body)
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }

    let created: Vec<_> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .collect();
    let conflicts = results
        .iter()
        .filter(|(s, b)| *s == StatusCode::CONFLICT && b["code"] == "code_taken")
        .count();
    assert_eq!(created.len(), 1, "exactly one 201; results: {results:?}");
    assert_eq!(conflicts, 49, "49 × 409 code_taken; results: {results:?}");
    let winner_url = created[0].1["url"].as_str().unwrap().to_owned();
    let redirect = server.visit("race").await;
    assert_eq!(header(&redirect, "location"), winner_url);
}

#[tokio::test]
async fn random_codes_survive_collisions_in_a_tiny_code_space() {
    let server = TestServer::spawn(&["--code-length", "1"]);
    let mut codes = HashSet::new();

    for i in 0..40 {
        let resp = server
            .create_link(json!({"url": format!("https://example.com/{i}")}))
            .await;
        let link = expect_json(resp, StatusCode::CREATED, &format!("create #{i}")).await;
        codes.insert(code_of(&link));
    }

    assert_eq!(codes.len(), 40, "40 distinct codes: {codes:?}");
    assert!(
        codes.iter().all(|c| c.len() == 1 && is_base62(c)),
        "{codes:?}"
    );
}

#[tokio::test]
async fn exhausting_the_code_space_answers_503_and_deleted_codes_are_not_reissued() {
    let server = TestServer::spawn(&["--code-length", "1"]);
    let mut codes = HashSet::new();

    let mut last = None;
    for i in 0..100 {
        let resp = server
            .create_link(json!({"url": format!("https://example.com/{i}")}))
            .await;
        if resp.status() != StatusCode::CREATED {
            last = Some(resp);
            break;
        }
        codes.insert(code_of(&resp.json::<Value>().await.unwrap()));
    }
    let last = last.expect("creates never stopped succeeding in a 62-code space");
    common::assert_retry_after(&last, "exhausted code space");
    expect_problem(
        last,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "create in an exhausted code space",
    )
    .await;
    assert_eq!(
        codes.len(),
        62,
        "every one-character code is handed out before the first 503"
    );

    let victim = codes.iter().next().unwrap().clone();
    let delete = server
        .call(Method::DELETE, &format!("/api/v1/links/{victim}"))
        .await;
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    let after_delete = server
        .create_link(json!({"url": "https://example.com/after-delete"}))
        .await;
    let custom = server
        .create_link(json!({"url": "https://example.com/custom", "code": "custom-code"}))
        .await;

    expect_problem(
        after_delete,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "a deleted code is not reissued",
    )
    .await;
    assert_eq!(
        custom.status(),
        StatusCode::CREATED,
        "custom codes still work"
    );
}

#[tokio::test]
async fn patch_changes_present_fields_and_null_clears_them() {
    let server = TestServer::spawn(&[]);
    let expires_at = rfc3339_from_now(chrono::Duration::days(1));
    let created = server
        .new_link(json!({
            "url": "https://example.com/p",
            "code": "patch-me",
            "title": "Title",
            "tags": ["one"],
            "expires_at": expires_at,
            "max_clicks": 5,
        }))
        .await;
    let path = "/api/v1/links/patch-me";

    let tags_only = server
        .api(Method::PATCH, path)
        .json(&json!({"tags": ["two", "three"]}))
        .send()
        .await
        .unwrap();
    let tags_only = expect_json(tags_only, StatusCode::OK, "PATCH tags").await;
    let cleared = server
        .api(Method::PATCH, path)
        .json(&json!({"title": null, "expires_at": null, "max_clicks": null}))
        .send()
        .await
        .unwrap();
    let cleared = expect_json(cleared, StatusCode::OK, "PATCH nulls").await;
    let read_back = server.api(Method::GET, path).send().await.unwrap();
    let read_back = expect_json(read_back, StatusCode::OK, "GET after PATCH").await;

    assert_eq!(tags_only["tags"], json!(["two", "three"]));
    assert_eq!(tags_only["title"], "Title", "absent field unchanged");
    assert_eq!(tags_only["max_clicks"], 5, "absent field unchanged");
    assert_eq!(tags_only["expires_at"], created["expires_at"]);
    assert_eq!(tags_only["url"], "https://example.com/p");
    assert_eq!(cleared["title"], Value::Null);
    assert_eq!(cleared["expires_at"], Value::Null);
    assert_eq!(cleared["max_clicks"], Value::Null);
    assert_eq!(cleared["tags"], json!(["two", "three"]));
    assert_eq!(read_back, cleared);
    assert_eq!(read_back["created_at"], created["created_at"]);
    let created_at = chrono::DateTime::parse_from_rfc3339(created["created_at"].as_str().unwrap());
    let updated_at =
        chrono::DateTime::parse_from_rfc3339(read_back["updated_at"].as_str().unwrap());
    assert!(updated_at.unwrap() >= created_at.unwrap(), "{read_back}");
}

#[tokio::test]
async fn patching_or_deleting_an_unknown_link_returns_404() {
    let server = TestServer::spawn(&[]);

    let patch = server
        .api(Method::PATCH, "/api/v1/links/nosuch1")
        .json(&json!({"title": "x"}))
        .send()
        .await
        .unwrap();
    let delete = server.call(Method::DELETE, "/api/v1/links/nosuch1").await;

    expect_problem(patch, StatusCode::NOT_FOUND, "not_found", "PATCH unknown").await;
    expect_problem(delete, StatusCode::NOT_FOUND, "not_found", "DELETE unknown").await;
}

#[tokio::test]
async fn listing_pages_through_every_link_once_newest_first() {
    let server = TestServer::spawn(&[]);
    let mut created = Vec::new();
    for i in 0..120 {
        let link = server
            .new_link(json!({"url": format!("https://example.com/{i}")}))
            .await;
        created.push(code_of(&link));
    }

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/links?limit=7&cursor={c}"),
            None => "/api/v1/links?limit=7".to_owned(),
        };
        let resp = server.api(Method::GET, &path).send().await.unwrap();
        let page = expect_json(resp, StatusCode::OK, &format!("GET {path}")).await;
        let items = page["items"].as_array().expect("items array");
        assert!(items.len() <= 7, "page larger than limit: {}", items.len());
        seen.extend(items.iter().map(code_of));
        pages += 1;
        assert!(pages <= 40, "pagination does not terminate");
        match &page["next_cursor"] {
            Value::String(c) => cursor = Some(c.clone()),
            Value::Null => break,
            other => panic!("next_cursor should be a string or null, got {other}"),
        }
    }

    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(seen.len(), 120, "every link seen exactly once");
    assert_eq!(unique.len(), 120, "no link seen twice");
    let newest_first: Vec<String> = created.into_iter().rev().collect();
    assert_eq!(seen, newest_first, "listing order is newest first");
}

#[tokio::test]
async fn list_query_parameters_out_of_range_return_422() {
    let server = TestServer::spawn(&[]);
    server
        .new_link(json!({"url": "https://example.com/"}))
        .await;

    for query in [
        "limit=0",
        "limit=1001",
        "limit=-1",
        "cursor=not-a-cursor!!",
        "cursor=%ff",
    ] {
        let resp = server
            .call(Method::GET, &format!("/api/v1/links?{query}"))
            .await;

        expect_problem(
            resp,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            &format!("list ?{query}"),
        )
        .await;
    }
    for query in ["limit=1", "limit=1000"] {
        let resp = server
            .call(Method::GET, &format!("/api/v1/links?{query}"))
            .await;
        let page = expect_json(resp, StatusCode::OK, query).await;
        assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{query}");
    }
}

#[tokio::test]
async fn an_idempotent_retry_returns_the_first_result_without_a_second_link() {
    let server = TestServer::spawn(&[]);
    let body = json!({"url": "https://example.com/idem", "title": "once"});
    let send = |key: String, body: Value| {
        let req = server
            .api_as(&key, Method::POST, "/api/v1/links")
            .header("idempotency-key", "retry-42")
            .json(&body);
        async move { req.send().await.unwrap() }
    };

    let first = send(server.admin_key.clone(), body.clone()).await;
    let first_status = first.status();
    let first_body: Value = first.json().await.unwrap();
    let retry = send(server.admin_key.clone(), body.clone()).await;
    let retry_status = retry.status();
    let retry_body: Value = retry.json().await.unwrap();
    let list = server.call(Method::GET, "/api/v1/links").await;
    let list = expect_json(list, StatusCode::OK, "list").await;

    assert_eq!(first_status, StatusCode::CREATED);
    assert_eq!(retry_status, first_status, "retry status");
    assert_eq!(retry_body, first_body, "retry body");
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "one link: {list}"
    );
}

#[tokio::test]
async fn an_idempotent_retry_after_the_link_was_deleted_answers_like_a_read_404() {
    let server = TestServer::spawn(&[]);
    let body = json!({"url": "https://example.com/idem-deleted"});
    let send = || {
        server
            .api(Method::POST, "/api/v1/links")
            .header("idempotency-key", "retry-after-delete")
            .json(&body)
            .send()
    };
    let first = expect_json(send().await.unwrap(), StatusCode::CREATED, "create").await;
    let code = code_of(&first);
    let deleted = server
        .call(Method::DELETE, &format!("/api/v1/links/{code}"))
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    let retry = send().await.unwrap();
    let read = server
        .call(Method::GET, &format!("/api/v1/links/{code}"))
        .await;

    expect_problem(
        retry,
        StatusCode::NOT_FOUND,
        "not_found",
        "retry after delete",
    )
    .await;
    expect_problem(
        read,
        StatusCode::NOT_FOUND,
        "not_found",
        "read after delete",
    )
    .await;
}

#[tokio::test]
async fn an_idempotency_key_reused_with_a_different_body_returns_422() {
    let server = TestServer::spawn(&[]);
    let first = server
        .api(Method::POST, "/api/v1/links")
        .header("idempotency-key", "k-1")
        .json(&json!({"url": "https://example.com/one"}))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);

    let second = server
        .api(Method::POST, "/api/v1/links")
        .header("idempotency-key", "k-1")
        .json(&json!({"url": "https://example.com/two"}))
        .send()
        .await
        .unwrap();

    expect_problem(
        second,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_mismatch",
        "same Idempotency-Key, different body",
    )
    .await;
}

#[tokio::test]
async fn idempotency_keys_are_scoped_to_the_api_key() {
    let server = TestServer::spawn(&[]);
    let user_key = server.create_key("user").await;
    let body = json!({"url": "https://example.com/scoped"});
    let create = |key: String| {
        let req = server
            .api_as(&key, Method::POST, "/api/v1/links")
            .header("idempotency-key", "shared-value")
            .json(&body);
        async move { req.send().await.unwrap() }
    };

    let admin_link = expect_json(
        create(server.admin_key.clone()).await,
        StatusCode::CREATED,
        "admin create",
    )
    .await;
    let user_link = expect_json(
        create(user_key.clone()).await,
        StatusCode::CREATED,
        "user create",
    )
    .await;
    let user_retry = expect_json(create(user_key).await, StatusCode::CREATED, "user retry").await;
    let list = server.call(Method::GET, "/api/v1/links").await;
    let list = expect_json(list, StatusCode::OK, "admin list").await;

    assert_ne!(
        admin_link["code"], user_link["code"],
        "each API key gets its own link"
    );
    assert_eq!(
        user_retry["code"], user_link["code"],
        "retry of the user create"
    );
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        2,
        "two links: {list}"
    );
}

#[tokio::test]
async fn every_api_health_and_metrics_answer_says_nosniff() {
    let server = TestServer::spawn(&[]);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/sniff"}))
            .await,
    );
    let paths = [
        "/api/v1/links".to_owned(),
        format!("/api/v1/links/{code}"),
        format!("/api/v1/links/{code}/qr"),
        format!("/api/v1/links/{code}/stats.csv"),
        "/api/v1/nope".to_owned(),
        "/api/v2/links".to_owned(),
        "/health".to_owned(),
        "/health/live".to_owned(),
        "/health/ready".to_owned(),
        "/metrics".to_owned(),
    ];
    for path in &paths {
        let resp = server.call(Method::GET, path).await;
        assert_eq!(
            header(&resp, "x-content-type-options"),
            "nosniff",
            "GET {path} answered {}",
            resp.status()
        );
    }
}

#[tokio::test]
async fn an_admin_takes_a_link_down_with_a_reason_and_only_an_admin_lifts_it() {
    let server = TestServer::spawn(&[]);
    let user = server.create_key("user").await;
    let link = server
        .create_link_as(&user, json!({"url": "https://example.com/reported"}))
        .await;
    let code = code_of(&expect_json(link, StatusCode::CREATED, "create").await);
    assert_eq!(server.visit(&code).await.status(), StatusCode::FOUND);
    let takedown = format!("/api/v1/links/{code}/takedown");

    // Users cannot take links down, even their own; a reason is required.
    let by_user = server
        .api_as(&user, Method::POST, &takedown)
        .json(&json!({"reason": "mine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(by_user.status(), StatusCode::FORBIDDEN);
    for body in [json!({"reason": ""}), json!({"reason": "x".repeat(501)})] {
        let resp = server
            .api(Method::POST, &takedown)
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_problem(
            resp,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "reason",
        )
        .await;
    }

    let down = server
        .api(Method::POST, &takedown)
        .json(&json!({"reason": "phishing, report #12"}))
        .send()
        .await
        .unwrap();
    let down = expect_json(down, StatusCode::OK, "take down").await;
    assert_eq!(down["disabled"], true, "{down}");
    assert_eq!(down["takedown_reason"], "phishing, report #12", "{down}");
    let visit = server.visit(&code).await;
    assert_eq!(
        common::header(&visit, "content-type"),
        "application/problem+json"
    );
    let gone = expect_problem(visit, StatusCode::GONE, "taken_down", "visit").await;
    assert!(
        gone["detail"].as_str().unwrap().contains("report #12"),
        "{gone}"
    );

    // The owner sees why, and cannot simply enable it again.
    let seen = server
        .api_as(&user, Method::GET, &format!("/api/v1/links/{code}"))
        .send()
        .await
        .unwrap();
    let seen = expect_json(seen, StatusCode::OK, "owner reads").await;
    assert_eq!(seen["takedown_reason"], "phishing, report #12");
    let enable = server
        .api_as(&user, Method::PATCH, &format!("/api/v1/links/{code}"))
        .json(&json!({"disabled": false}))
        .send()
        .await
        .unwrap();
    expect_problem(
        enable,
        StatusCode::CONFLICT,
        "taken_down",
        "owner re-enables",
    )
    .await;
    assert_eq!(server.visit(&code).await.status(), StatusCode::GONE);

    // An admin lifts it: enabled, no reason, redirecting again.
    let lifted = server.call(Method::DELETE, &takedown).await;
    let lifted = expect_json(lifted, StatusCode::OK, "lift").await;
    assert_eq!(lifted["disabled"], false, "{lifted}");
    assert!(lifted.get("takedown_reason").is_none(), "{lifted}");
    assert_eq!(server.visit(&code).await.status(), StatusCode::FOUND);

    // Lifting again changes nothing and answers the link as it is.
    let again = server.call(Method::DELETE, &takedown).await;
    let again = expect_json(again, StatusCode::OK, "lift again").await;
    assert_eq!(again["updated_at"], lifted["updated_at"], "{again}");
    assert_eq!(again["disabled"], false, "{again}");

    let unknown = server
        .api(Method::POST, "/api/v1/links/NoSuchCode/takedown")
        .json(&json!({"reason": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}
