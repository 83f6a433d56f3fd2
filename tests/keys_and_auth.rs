//! API keys, roles, ownership and rate limiting. docs/api.md, "Authentication and roles",
//! "Rate limiting" and "API keys".

use std::collections::HashSet;

use crate::common::{self, TestServer, code_of, expect_json, expect_problem, header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn requests_without_a_valid_bearer_key_return_401() {
    let server = TestServer::spawn(&[]);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/"}))
            .await,
    );
    let routes = [
        (Method::POST, "/api/v1/links".to_owned()),
        (Method::GET, "/api/v1/links".to_owned()),
        (Method::GET, format!("/api/v1/links/{code}")),
        (Method::PATCH, format!("/api/v1/links/{code}")),
        (Method::DELETE, format!("/api/v1/links/{code}")),
        (Method::GET, format!("/api/v1/links/{code}/stats")),
        (Method::GET, format!("/api/v1/links/{code}/qr")),
        (Method::POST, "/api/v1/keys".to_owned()),
        (Method::GET, "/api/v1/keys".to_owned()),
    ];
    let credentials = [
        None,
        Some("Bearer snip_doesnotexist0000000000000000".to_owned()),
        Some("Bearer ".to_owned()),
        Some(format!("Basic {}", server.admin_key)),
        Some(format!("Bearer {}x", server.admin_key)),
    ];

    for (method, path) in &routes {
        for auth in &credentials {
            let mut req = server
                .client
                .request(method.clone(), server.url(path))
                .json(&json!({"url": "https://example.com/x", "name": "n", "role": "user"}));
            if let Some(auth) = auth {
                req = req.header("authorization", auth);
            }
            let resp = req.send().await.unwrap();

            assert_eq!(
                common::header(&resp, "x-content-type-options"),
                "nosniff",
                "{method} {path}"
            );
            assert_eq!(
                common::header(&resp, "www-authenticate"),
                "Bearer realm=\"snip\"",
                "{method} {path}: a 401 names the scheme it wants (RFC 6750)"
            );
            expect_problem(
                resp,
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                &format!("{method} {path} with authorization {auth:?}"),
            )
            .await;
        }
    }
    let still_there = server.visit(&code).await;
    assert_eq!(still_there.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let server = TestServer::spawn(&[]);
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let resp = server
            .client
            .get(server.url("/api/v1/links"))
            .header("authorization", format!("{scheme} {}", server.admin_key))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "scheme {scheme:?}");
    }
}

#[tokio::test]
async fn an_admin_creates_keys_and_the_listing_never_shows_secrets() {
    let server = TestServer::spawn(&[]);

    let created = server.create_key_object("ci robot", "user").await;
    let list = server.call(Method::GET, "/api/v1/keys").await;
    let list_text = {
        assert_eq!(list.status(), StatusCode::OK);
        list.text().await.unwrap()
    };

    assert!(
        created["id"].is_string() || created["id"].is_number(),
        "{created}"
    );
    assert_eq!(created["name"], "ci robot");
    assert_eq!(created["role"], "user");
    let secret = created["key"].as_str().expect("secret shown once");
    assert!(!secret.is_empty());
    assert!(
        created["created_at"]
            .as_str()
            .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
        "{created}"
    );
    let list: Value = serde_json::from_str(&list_text).unwrap();
    let items = list["items"].as_array().expect("items");
    assert!(
        items
            .iter()
            .any(|k| k["id"] == created["id"] && k["name"] == "ci robot")
    );
    assert!(items.iter().all(|k| k.get("key").is_none()), "{list_text}");
    assert!(!list_text.contains(secret), "the listing leaks a secret");
    assert!(
        !list_text.contains(&server.admin_key),
        "the listing leaks the admin key"
    );
}

#[tokio::test]
async fn a_new_key_works_at_once_with_its_role() {
    let server = TestServer::spawn(&[]);
    let user = server.create_key("user").await;
    let admin = server.create_key("admin").await;

    let user_links = server
        .api_as(&user, Method::GET, "/api/v1/links")
        .send()
        .await
        .unwrap();
    let admin_keys = server
        .api_as(&admin, Method::GET, "/api/v1/keys")
        .send()
        .await
        .unwrap();

    assert_eq!(user_links.status(), StatusCode::OK);
    assert_eq!(admin_keys.status(), StatusCode::OK);
}

#[tokio::test]
async fn creating_a_key_with_an_unknown_role_returns_422() {
    let server = TestServer::spawn(&[]);

    for role in ["root", "", "Admin2"] {
        let resp = server
            .api(Method::POST, "/api/v1/keys")
            .json(&json!({"name": "x", "role": role}))
            .send()
            .await
            .unwrap();

        expect_problem(
            resp,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            &format!("role {role:?}"),
        )
        .await;
    }
}

#[tokio::test]
async fn a_user_key_cannot_manage_keys() {
    let server = TestServer::spawn(&[]);
    let user = server.create_key("user").await;
    let other = server.create_key_object("other", "user").await;
    let other_id = other["id"].to_string().trim_matches('"').to_owned();

    let create = server
        .api_as(&user, Method::POST, "/api/v1/keys")
        .json(&json!({"name": "escalate", "role": "admin"}))
        .send()
        .await
        .unwrap();
    let list = server
        .api_as(&user, Method::GET, "/api/v1/keys")
        .send()
        .await
        .unwrap();
    let delete = server
        .api_as(&user, Method::DELETE, &format!("/api/v1/keys/{other_id}"))
        .send()
        .await
        .unwrap();

    expect_problem(create, StatusCode::FORBIDDEN, "forbidden", "user POST keys").await;
    expect_problem(list, StatusCode::FORBIDDEN, "forbidden", "user GET keys").await;
    expect_problem(
        delete,
        StatusCode::FORBIDDEN,
        "forbidden",
        "user DELETE key",
    )
    .await;
    let other_still_works = server
        .api_as(other["key"].as_str().unwrap(), Method::GET, "/api/v1/links")
        .send()
        .await
        .unwrap();
    assert_eq!(other_still_works.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_deleted_key_answers_401_from_then_on() {
    let server = TestServer::spawn(&[]);
    let key = server.create_key_object("short-lived", "user").await;
    let secret = key["key"].as_str().unwrap();
    let id = key["id"].to_string().trim_matches('"').to_owned();
    let before = server
        .api_as(secret, Method::GET, "/api/v1/links")
        .send()
        .await
        .unwrap();
    assert_eq!(before.status(), StatusCode::OK);

    let delete = server
        .call(Method::DELETE, &format!("/api/v1/keys/{id}"))
        .await;
    let after = server
        .api_as(secret, Method::GET, "/api/v1/links")
        .send()
        .await
        .unwrap();
    let list = server.call(Method::GET, "/api/v1/keys").await;
    let list = expect_json(list, StatusCode::OK, "list keys").await;

    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    expect_problem(
        after,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "deleted key",
    )
    .await;
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["id"] != key["id"]),
        "deleted key still listed: {list}"
    );
}

#[tokio::test]
async fn deleting_an_unknown_key_returns_404() {
    let server = TestServer::spawn(&[]);

    // An id of the right shape that was never issued, and ids no key can have (a NUL made
    // PostgreSQL fail the query: a 500 before ids were checked).
    for id in [
        "key_AAAAAAAAAAAA",
        "999999",
        "key_%00",
        "%00",
        "key_a%20b",
        "key_",
    ] {
        let resp = server
            .call(Method::DELETE, &format!("/api/v1/keys/{id}"))
            .await;
        expect_problem(
            resp,
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("DELETE /api/v1/keys/{id}"),
        )
        .await;
    }
}

#[tokio::test]
async fn a_user_sees_and_touches_only_its_own_links() {
    let server = TestServer::spawn(&[]);
    let alice = server.create_key("user").await;
    let bob = server.create_key("user").await;
    let mut alice_codes = HashSet::new();
    for i in 0..3 {
        let resp = server
            .create_link_as(&alice, json!({"url": format!("https://alice.example/{i}")}))
            .await;
        alice_codes.insert(code_of(
            &expect_json(resp, StatusCode::CREATED, "alice").await,
        ));
    }
    let mut bob_codes = HashSet::new();
    for i in 0..2 {
        let resp = server
            .create_link_as(&bob, json!({"url": format!("https://bob.example/{i}")}))
            .await;
        bob_codes.insert(code_of(
            &expect_json(resp, StatusCode::CREATED, "bob").await,
        ));
    }
    let list_codes = |key: String| {
        let req = server.api_as(&key, Method::GET, "/api/v1/links?limit=100");
        async move {
            let page = expect_json(req.send().await.unwrap(), StatusCode::OK, "list").await;
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(code_of)
                .collect::<HashSet<_>>()
        }
    };

    let alice_sees = list_codes(alice.clone()).await;
    let bob_sees = list_codes(bob.clone()).await;
    let admin_sees = list_codes(server.admin_key.clone()).await;

    assert_eq!(alice_sees, alice_codes);
    assert_eq!(bob_sees, bob_codes);
    assert_eq!(admin_sees, &alice_codes | &bob_codes);

    let target = alice_codes.iter().next().unwrap().clone();
    let link_path = format!("/api/v1/links/{target}");
    let attempts = [
        (Method::GET, link_path.clone(), None),
        (
            Method::PATCH,
            link_path.clone(),
            Some(json!({"url": "https://bob.example/hijack"})),
        ),
        (Method::DELETE, link_path.clone(), None),
        (Method::GET, format!("{link_path}/stats"), None),
        (Method::GET, format!("{link_path}/qr"), None),
    ];
    for (method, path, body) in attempts {
        let mut req = server.api_as(&bob, method.clone(), &path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();

        expect_problem(
            resp,
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("bob {method} {path}"),
        )
        .await;
    }

    let alice_get = server
        .api_as(&alice, Method::GET, &link_path)
        .send()
        .await
        .unwrap();
    let alice_link = expect_json(alice_get, StatusCode::OK, "alice reads her link").await;
    assert!(
        alice_link["url"]
            .as_str()
            .unwrap()
            .starts_with("https://alice.example/")
    );
    let admin_patch = server
        .api(Method::PATCH, &link_path)
        .json(&json!({"title": "admin was here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        admin_patch.status(),
        StatusCode::OK,
        "admin can patch any link"
    );
    let redirect = server.visit(&target).await;
    assert!(header(&redirect, "location").starts_with("https://alice.example/"));
}

#[tokio::test]
async fn exceeding_the_rate_limit_returns_429_with_retry_after() {
    let server = TestServer::spawn(&["--rate-limit", "3"]);
    let other = server.create_key("user").await;
    let limited = server.create_key("user").await;

    let mut statuses = Vec::new();
    let mut first_429 = None;
    for _ in 0..10 {
        let resp = server
            .api_as(&limited, Method::GET, "/api/v1/links")
            .send()
            .await
            .unwrap();
        statuses.push(resp.status());
        if resp.status() == StatusCode::TOO_MANY_REQUESTS && first_429.is_none() {
            first_429 = Some(resp);
        }
    }
    let other_resp = server
        .api_as(&other, Method::GET, "/api/v1/links")
        .send()
        .await
        .unwrap();

    assert_eq!(
        &statuses[..3],
        &[StatusCode::OK; 3],
        "a burst of 3 is allowed: {statuses:?}"
    );
    let limited_resp = first_429.unwrap_or_else(|| panic!("no 429 among {statuses:?}"));
    common::assert_retry_after(&limited_resp, "429");
    let retry_after: u64 = header(&limited_resp, "retry-after").parse().unwrap();
    assert!(retry_after >= 1, "Retry-After of at least one second");
    expect_problem(
        limited_resp,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "11th request in a burst",
    )
    .await;
    assert_eq!(
        other_resp.status(),
        StatusCode::OK,
        "limits are per API key"
    );
}

/// The admin keys of a server, as listed by `GET /api/v1/keys`.
async fn admin_key_ids(server: &TestServer) -> Vec<String> {
    let list = expect_json(
        server.call(Method::GET, "/api/v1/keys").await,
        StatusCode::OK,
        "list keys",
    )
    .await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["role"] == "admin")
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn failed_authentications_are_throttled_per_client_address() {
    let server = TestServer::spawn(&["--failed-auth-limit", "5", "--trusted-proxies", "127.0.0.1"]);
    // The admin key is used once: authenticated keys are cached and keep working.
    assert_eq!(
        server.call(Method::GET, "/api/v1/links").await.status(),
        StatusCode::OK
    );
    let guess = |n: u32, client: &str| {
        server
            .api_as(&format!("snip_guess{n:027}"), Method::GET, "/api/v1/links")
            .header("X-Forwarded-For", client)
            .send()
    };
    for n in 0..5 {
        let resp = guess(n, "198.51.100.1").await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "guess {n}");
    }
    for n in 5..8 {
        let resp = guess(n, "198.51.100.1").await.unwrap();
        let retry: u64 = header(&resp, "retry-after").parse().unwrap();
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
        expect_problem(
            resp,
            StatusCode::TOO_MANY_REQUESTS,
            "auth_throttled",
            "a guess past the limit",
        )
        .await;
    }
    // Another client address (the trusted proxy's X-Forwarded-For decides) is not throttled,
    // and a cached valid key from the throttled address still works.
    let other = guess(100, "198.51.100.2").await.unwrap();
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);
    let admin = server
        .api(Method::GET, "/api/v1/links")
        .header("X-Forwarded-For", "198.51.100.1")
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), StatusCode::OK);

    assert!(common::metric(&server, "snip_auth_failures_total").await >= 6.0);
    assert!(common::metric(&server, "snip_auth_throttled_total").await >= 3.0);
    let log = server
        .wait_for_stderr("failed authentication", std::time::Duration::from_secs(5))
        .await;
    assert!(log.contains("198.51.100.1"), "{log}");
    let lines = server.stderr_lines().join("\n");
    assert!(!lines.contains("snip_guess"), "a presented key was logged");
}

#[tokio::test]
async fn the_last_active_admin_key_is_revoked_only_when_forced() {
    let server = TestServer::spawn(&[]);
    let ids = admin_key_ids(&server).await;
    assert_eq!(ids.len(), 1, "{ids:?}");
    let only = &ids[0];
    let refused = server
        .call(Method::DELETE, &format!("/api/v1/keys/{only}"))
        .await;
    expect_problem(
        refused,
        StatusCode::CONFLICT,
        "last_admin",
        "revoking the last admin",
    )
    .await;
    assert_eq!(
        server.call(Method::GET, "/api/v1/links").await.status(),
        StatusCode::OK
    );

    // With a second admin, the first can go; the second is then the last.
    let second = server.create_key_object("second admin", "admin").await;
    let second_secret = second["key"].as_str().unwrap().to_owned();
    let second_id = second["id"].as_str().unwrap().to_owned();
    assert_eq!(
        server
            .call(Method::DELETE, &format!("/api/v1/keys/{only}"))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let refused = server
        .api_as(
            &second_secret,
            Method::DELETE,
            &format!("/api/v1/keys/{second_id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT);

    // Forced, it goes, and nobody is admin any more.
    let forced = server
        .api_as(
            &second_secret,
            Method::DELETE,
            &format!("/api/v1/keys/{second_id}?force=true"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(forced.status(), StatusCode::NO_CONTENT);
    let after = server
        .api_as(&second_secret, Method::GET, "/api/v1/links")
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_locked_out_operator_creates_an_admin_key_against_the_store_without_a_restart() {
    let server = TestServer::spawn(&[]);
    let id = admin_key_ids(&server).await.remove(0);
    let forced = server
        .call(Method::DELETE, &format!("/api/v1/keys/{id}?force=true"))
        .await;
    assert_eq!(forced.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        server.call(Method::GET, "/api/v1/keys").await.status(),
        StatusCode::UNAUTHORIZED
    );

    // The server keeps running; the operator creates a key in its store.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_snip"))
        .args(["keys", "create", "--role", "admin", "--name", "recovery"])
        .args(["--database", &server.database])
        .env_remove("SNIP_DATABASE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "snip keys create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = stdout.trim();
    assert!(
        secret.starts_with("snip_") && secret.len() >= 37,
        "{stdout:?}"
    );

    let keys = server
        .api_as(secret, Method::GET, "/api/v1/keys")
        .send()
        .await
        .unwrap();
    let keys = expect_json(keys, StatusCode::OK, "the recovered admin lists keys").await;
    assert!(
        keys["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["name"] == "recovery" && k["role"] == "admin"),
        "{keys}"
    );

    // Bad uses are usage errors, and nothing is created.
    for args in [
        vec!["keys", "create", "--role", "owner"],
        vec!["keys", "create", "--role", "admin", "--name", ""],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_snip"))
            .args(&args)
            .args(["--database", &server.database])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_snip"))
        .args(["keys", "create", "--role", "admin"])
        .args(["--database", "sqlite:///nonexistent-dir/none.db"])
        .output()
        .unwrap();
    assert_ne!(missing.status.code(), Some(0));
    assert!(!std::path::Path::new("/nonexistent-dir").exists());
}
