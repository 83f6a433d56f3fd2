//! Validation of link bodies: destinations, custom codes, other fields, malformed and oversized
//! bodies, content types. docs/api.md, "Errors" and "Validation rules".

use crate::common::{
    self, TestServer, code_of, expect_json, expect_problem, header, rfc3339_from_now,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn invalid_destinations_return_422_invalid_url() {
    let server = TestServer::spawn(&["--base-url", "http://sn.ip"]);
    let too_long = format!("https://example.com/{}", "a".repeat(8193 - 20));
    assert_eq!(too_long.len(), 8193);
    let own_listen = format!("http://{}/abc", server.addr);
    let urls = [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "ftp://example.com/file",
        "mailto:someone@example.com",
        "https://",
        "http://",
        "https://:443/",
        "not a url",
        "/relative/path",
        "example.com/no-scheme",
        "",
        too_long.as_str(),
        "https://user:pw@x.com/",
        "https://user@x.com/",
        "https://example.com/a\rb",
        "https://example.com/a\nb",
        "https://exa\nmple.com/",
        "https://example.com/a\0b",
        "https://example.com/a\tb",
        "\thttps://example.com/",
        "\0https://example.com/",
        "https://example.com/\n",
        "https://example.com/\t",
        "https://example.com/?q=a\rb",
        "https://example.com/\r\nSet-Cookie: x=1",
        "http://sn.ip/abc",
        "http://SN.IP/abc",
        "http://sn.ip:80/abc",
        own_listen.as_str(),
    ];

    for url in urls {
        let resp = server.create_link(json!({ "url": url })).await;

        expect_problem(
            resp,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_url",
            &format!("url {url:?}"),
        )
        .await;
    }
}

/// Every spelling of this service is a redirect loop: the base URL's host with a trailing dot,
/// in upper case, percent-encoded, over the other scheme; the bound address as IPv4-mapped IPv6,
/// another loopback address, `localhost.`.
#[tokio::test]
async fn every_spelling_of_this_service_is_refused_as_a_loop() {
    let server = TestServer::spawn(&["--base-url", "https://sn.ip"]);
    let port = server.addr.port();
    let spellings = [
        "https://sn.ip/x".to_owned(),
        "https://sn.ip./x".to_owned(),
        "https://SN.IP/x".to_owned(),
        "http://sn.ip/x".to_owned(),
        "https://sn%2Eip/x".to_owned(),
        "https://sn%2eip./x".to_owned(),
        format!("http://[::ffff:127.0.0.1]:{port}/x"),
        format!("http://localhost.:{port}/x"),
        format!("http://127.0.0.2:{port}/x"),
        format!("http://[::1]:{port}/x"),
        format!("https://127.0.0.1:{port}/x"),
    ];
    for url in &spellings {
        let resp = server.create_link(json!({ "url": url })).await;
        let problem = expect_problem(
            resp,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_url",
            &format!("url {url:?}"),
        )
        .await;
        assert_eq!(
            problem["detail"], "url: points at this service itself",
            "{url}"
        );
    }
    // Neighbours are not this service.
    for url in [
        "https://sn.ip.example/x".to_owned(),
        "https://sn.ip:8443/x".to_owned(),
        format!(
            "http://127.0.0.1:{}/x",
            if port == 1 { 2 } else { port - 1 }
        ),
    ] {
        let resp = server.create_link(json!({ "url": url })).await;
        assert_eq!(resp.status(), StatusCode::CREATED, "{url}");
    }
}

#[tokio::test]
async fn a_destination_of_exactly_8_kib_is_accepted() {
    let server = TestServer::spawn(&[]);
    let url = format!("https://example.com/{}", "a".repeat(8192 - 20));
    assert_eq!(url.len(), 8192);

    let resp = server.create_link(json!({ "url": url })).await;

    let link = expect_json(resp, StatusCode::CREATED, "8 KiB url").await;
    assert_eq!(link["url"], url);
}

#[tokio::test]
async fn invalid_custom_codes_return_422_invalid_code() {
    let server = TestServer::spawn(&[]);
    let too_long = "a".repeat(65);
    let codes = [
        "ab",
        "a",
        too_long.as_str(),
        "has space",
        "a.b",
        "a/b",
        "a+b",
        "abc%20",
        "ünïcode",
        "😀😀😀",
        "abc\n",
        "api",
        "API",
        "health",
        "Health",
        "metrics",
        "STATIC",
        "assets",
        "ui",
        "Admin",
        "login",
        "favicon.ico",
        "robots.txt",
        "ROBOTS.TXT",
    ];

    for code in codes {
        let resp = server
            .create_link(json!({"url": "https://example.com/", "code": code}))
            .await;

        expect_problem(
            resp,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_code",
            &format!("code {code:?}"),
        )
        .await;
    }
}

#[tokio::test]
async fn custom_codes_of_3_to_64_allowed_characters_are_accepted() {
    let server = TestServer::spawn(&[]);
    let longest = "Z".repeat(64);

    for code in [
        "abc",
        "A-b_9",
        "---",
        "___",
        longest.as_str(),
        "apis",
        "adminx",
    ] {
        let resp = server
            .create_link(json!({"url": "https://example.com/", "code": code}))
            .await;

        let link = expect_json(resp, StatusCode::CREATED, &format!("code {code:?}")).await;
        assert_eq!(link["code"], code);
        let redirect = server.visit(code).await;
        assert_eq!(redirect.status(), StatusCode::FOUND, "GET /{code}");
    }
}

#[tokio::test]
async fn invalid_fields_return_422_invalid_field() {
    let server = TestServer::spawn(&[]);
    let past = rfc3339_from_now(-chrono::Duration::seconds(60));
    let long_title = "t".repeat(513);
    let many_tags: Vec<String> = (0..21).map(|i| format!("tag{i}")).collect();
    let long_tag = "x".repeat(65);
    let bodies = [
        json!({"url": "https://example.com/", "expires_at": past}),
        json!({"url": "https://example.com/", "expires_at": "not a date"}),
        json!({"url": "https://example.com/", "expires_at": "2030-13-45T99:00:00Z"}),
        json!({"url": "https://example.com/", "max_clicks": 0}),
        json!({"url": "https://example.com/", "max_clicks": -5}),
        json!({"url": "https://example.com/", "title": long_title}),
        json!({"url": "https://example.com/", "title": "a\u{0}b"}),
        json!({"url": "https://example.com/", "tags": many_tags}),
        json!({"url": "https://example.com/", "tags": [""]}),
        json!({"url": "https://example.com/", "tags": ["ok", long_tag]}),
    ];

    for body in bodies {
        let resp = server.create_link(body.clone()).await;

        expect_problem(
            resp,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            &format!("body {body}"),
        )
        .await;
    }
}

#[tokio::test]
async fn fields_at_their_limits_are_accepted() {
    let server = TestServer::spawn(&[]);
    let title = "t".repeat(512);
    let tags: Vec<String> = (0..20).map(|i| format!("{i}{}", "x".repeat(62))).collect();

    let resp = server
        .create_link(json!({
            "url": "https://example.com/",
            "title": title,
            "tags": tags,
            "max_clicks": 1,
        }))
        .await;

    let link = expect_json(resp, StatusCode::CREATED, "fields at their limits").await;
    assert_eq!(link["title"], title);
    assert_eq!(link["tags"], json!(tags));
    assert_eq!(link["max_clicks"], 1);
}

#[tokio::test]
async fn malformed_bodies_return_400_bad_request() {
    let server = TestServer::spawn(&[]);
    let bodies = [
        "{",
        "",
        "not json",
        "[]",
        "null",
        "{}",
        r#"{"title": "no url"}"#,
        r#"{"url": 5}"#,
        r#"{"url": null}"#,
        r#"{"url": ["https://example.com/"]}"#,
        r#"{"url": "https://example.com/", "tags": "x"}"#,
        r#"{"url": "https://example.com/", "tags": [1, 2]}"#,
        r#"{"url": "https://example.com/", "max_clicks": "3"}"#,
        r#"{"url": "https://example.com/", "max_clicks": 2.5}"#,
        r#"{"url": "https://example.com/", "max_clicks": 1e30}"#,
        r#"{"url": "https://example.com/", "title": 5}"#,
        r#"{"url": "https://example.com/", "code": 1234}"#,
    ];

    for body in bodies {
        let resp = server
            .api(Method::POST, "/api/v1/links")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();

        expect_problem(
            resp,
            StatusCode::BAD_REQUEST,
            "bad_request",
            &format!("body {body:?}"),
        )
        .await;
    }
}

/// `5.0` is the number 5 to JSON and JSON Schema (and what some serializers write): an
/// integer field takes it, on create and on PATCH.
#[tokio::test]
async fn integer_fields_take_a_number_written_with_a_zero_fraction() {
    let server = TestServer::spawn(&[]);
    let resp = server
        .api(Method::POST, "/api/v1/links")
        .header("content-type", "application/json")
        .body(r#"{"url": "https://example.com/f", "max_clicks": 5.0}"#)
        .send()
        .await
        .unwrap();
    let link = expect_json(resp, StatusCode::CREATED, "max_clicks 5.0").await;
    assert_eq!(link["max_clicks"], 5, "{link}");
    let code = link["code"].as_str().unwrap();
    let resp = server
        .api(Method::PATCH, &format!("/api/v1/links/{code}"))
        .header("content-type", "application/json")
        .body(r#"{"max_clicks": 7.0}"#)
        .send()
        .await
        .unwrap();
    let link = expect_json(resp, StatusCode::OK, "PATCH max_clicks 7.0").await;
    assert_eq!(link["max_clicks"], 7, "{link}");
}

#[tokio::test]
async fn unknown_json_fields_are_ignored() {
    let server = TestServer::spawn(&[]);

    let resp = server
        .create_link(json!({"url": "https://example.com/", "colour": "blue", "nested": {"a": 1}}))
        .await;

    let link = expect_json(resp, StatusCode::CREATED, "unknown fields").await;
    assert!(link.get("colour").is_none());
}

#[tokio::test]
async fn a_non_json_content_type_returns_415() {
    let server = TestServer::spawn(&[]);

    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut req = server
            .api(Method::POST, "/api/v1/links")
            .body(r#"{"url": "https://example.com/"}"#);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.unwrap();

        expect_problem(
            resp,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            &format!("content-type {content_type:?}"),
        )
        .await;
    }
}

/// A raw `POST /api/v1/links` carrying `body`, with the admin key and `Connection: close`.
fn raw_create(server: &TestServer, body: &str) -> Vec<u8> {
    format!(
        "POST /api/v1/links HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        server.addr,
        server.admin_key,
        body.len(),
        body
    )
    .into_bytes()
}

/// Sent over a raw socket: the server may answer 413 before reading the whole body, and an HTTP
/// client library that is still writing then reports the broken pipe instead of the response.
#[tokio::test]
async fn a_body_over_64_kib_returns_413() {
    let server = TestServer::spawn(&[]);
    let too_big = json!({"url": "https://example.com/", "title": "t".repeat(70 * 1024)});
    let under_limit = json!({"url": "https://example.com/", "title": "t".repeat(60 * 1024)});
    let (addr, too_big_req, under_limit_req) = (
        server.addr,
        raw_create(&server, &too_big.to_string()),
        raw_create(&server, &under_limit.to_string()),
    );

    let (too_big, under_limit) = tokio::task::spawn_blocking(move || {
        (
            common::raw_exchange(addr, &too_big_req),
            common::raw_exchange(addr, &under_limit_req),
        )
    })
    .await
    .unwrap();

    let too_big = too_big.expect("a response to the 70 KiB body");
    let problem: Value = serde_json::from_slice(&too_big.body).unwrap_or(Value::Null);
    assert_eq!(too_big.status, 413, "70 KiB body: {too_big:?}");
    assert!(
        too_big
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("application/problem+json")),
        "413 content-type: {too_big:?}"
    );
    assert_eq!(problem["code"], "payload_too_large", "{problem}");
    assert_eq!(problem["status"], 413, "{problem}");
    let under_limit = under_limit.expect("a response to the 60 KiB body");
    let problem: Value = serde_json::from_slice(&under_limit.body).unwrap_or(Value::Null);
    assert_eq!(
        under_limit.status, 422,
        "60 KiB body, title too long: {under_limit:?}"
    );
    assert_eq!(problem["code"], "invalid_field", "{problem}");
}

#[tokio::test]
async fn invalid_patches_are_rejected_like_creates() {
    let server = TestServer::spawn(&[]);
    server
        .new_link(json!({"url": "https://example.com/p", "code": "patch-bad"}))
        .await;
    let path = "/api/v1/links/patch-bad";
    let cases = [
        (json!({"url": "javascript:alert(1)"}), 422, "invalid_url"),
        (json!({"max_clicks": 0}), 422, "invalid_field"),
        (
            json!({"expires_at": rfc3339_from_now(-chrono::Duration::seconds(60))}),
            422,
            "invalid_field",
        ),
        (json!({"title": "t".repeat(513)}), 422, "invalid_field"),
        (json!({"disabled": "yes"}), 400, "bad_request"),
        (json!({"tags": "x"}), 400, "bad_request"),
    ];

    for (body, status, code) in cases {
        let resp = server
            .api(Method::PATCH, path)
            .json(&body)
            .send()
            .await
            .unwrap();

        expect_problem(
            resp,
            StatusCode::from_u16(status).unwrap(),
            code,
            &format!("PATCH {body}"),
        )
        .await;
    }
    let unchanged = server.visit("patch-bad").await;
    assert_eq!(header(&unchanged, "location"), "https://example.com/p");
}

/// `--deny-list FILE`: hosts refused for new and edited links (422), and at redirect time for
/// links made before an entry was added (410), after a SIGHUP or the admin reload route.
#[tokio::test]
async fn the_deny_list_refuses_new_links_and_stops_existing_ones_after_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deny.txt");
    std::fs::write(&file, "# spam\nevil.example\n").unwrap();
    let server = TestServer::spawn(&["--deny-list", file.to_str().unwrap()]);

    for url in [
        "https://evil.example/x",
        "https://www.EVIL.example./login",
        "http://a.b.evil.example:8080/",
    ] {
        let resp = server.create_link(json!({ "url": url })).await;
        expect_problem(
            resp,
            StatusCode::UNPROCESSABLE_ENTITY,
            "destination_denied",
            url,
        )
        .await;
    }
    let good = code_of(
        &server
            .new_link(json!({"url": "https://good.example/a"}))
            .await,
    );
    let later = code_of(
        &server
            .new_link(json!({"url": "https://later.example/b"}))
            .await,
    );
    let other = code_of(
        &server
            .new_link(json!({"url": "https://notevil.example/"}))
            .await,
    );
    assert_eq!(server.visit(&good).await.status(), StatusCode::FOUND);
    assert_eq!(server.visit(&later).await.status(), StatusCode::FOUND);
    let edit = server
        .patch_link(&other, json!({"url": "https://evil.example/"}))
        .await;
    expect_problem(
        edit,
        StatusCode::UNPROCESSABLE_ENTITY,
        "destination_denied",
        "editing to a denied host",
    )
    .await;

    // SIGHUP reloads the file: the existing link to good.example answers 410 from then on.
    std::fs::write(&file, "evil.example\ngood.example\n").unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let gone = common::eventually(
        std::time::Duration::from_secs(10),
        || server.visit(&good),
        |resp| resp.status() == StatusCode::GONE,
    )
    .await;
    expect_problem(
        gone,
        StatusCode::GONE,
        "destination_denied",
        "a denied link",
    )
    .await;
    assert_eq!(server.visit(&later).await.status(), StatusCode::FOUND);
    assert_eq!(server.visit(&other).await.status(), StatusCode::FOUND);

    // The admin route reloads too, and says how many entries it read.
    std::fs::write(&file, "evil.example\ngood.example\nlater.example\n").unwrap();
    let reload = server.call(Method::POST, "/api/v1/deny-list/reload").await;
    let reload = expect_json(reload, StatusCode::OK, "reload").await;
    assert_eq!(reload["entries"], 3, "{reload}");
    assert_eq!(server.visit(&later).await.status(), StatusCode::GONE);
    let list = expect_json(
        server.call(Method::GET, "/api/v1/deny-list").await,
        StatusCode::OK,
        "list",
    )
    .await;
    assert_eq!(
        list["entries"],
        json!(["evil.example", "good.example", "later.example"])
    );

    // A bad file keeps the current list.
    std::fs::write(&file, "evil.example\nhttps://not a host/\n").unwrap();
    let bad = server.call(Method::POST, "/api/v1/deny-list/reload").await;
    expect_problem(
        bad,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        "a bad deny list",
    )
    .await;
    assert_eq!(server.visit(&later).await.status(), StatusCode::GONE);

    // Users can neither read nor reload the list.
    let user = server.create_key("user").await;
    for (method, path) in [
        (Method::GET, "/api/v1/deny-list"),
        (Method::POST, "/api/v1/deny-list/reload"),
    ] {
        let resp = server.api_as(&user, method, path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
    }

    // A bad file at start is a bad flag.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_snip"))
        .args(["serve", "--listen", "127.0.0.1:0", "--deny-list"])
        .arg(&file)
        .env("SNIP_DATABASE", "sqlite:///nonexistent-dir/never.db")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
}
