//! The redirect path (`GET`/`HEAD /{code}`, `/{code}+`): docs/api.md, "Redirects".

use crate::common::{self, TestServer, code_of, header};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn a_known_code_redirects_with_302_location_and_cache_control() {
    let server = TestServer::spawn(&[]);
    let link = server
        .new_link(json!({"url": "https://example.com/a/long/path?q=1"}))
        .await;

    let resp = server.visit(&code_of(&link)).await;

    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(
        header(&resp, "location"),
        "https://example.com/a/long/path?q=1"
    );
    assert_eq!(header(&resp, "cache-control"), "private, max-age=90");
    let body = resp.bytes().await.unwrap();
    assert!(body.len() < 1024, "redirect body should be empty or tiny");
}

#[tokio::test]
async fn head_on_a_known_code_redirects_like_get() {
    let server = TestServer::spawn(&[]);
    let link = server
        .new_link(json!({"url": "https://example.com/h"}))
        .await;

    let resp = server.head(&code_of(&link)).await;

    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(header(&resp, "location"), "https://example.com/h");
    assert_eq!(header(&resp, "cache-control"), "private, max-age=90");
}

#[tokio::test]
async fn an_unknown_code_answers_404() {
    let server = TestServer::spawn(&[]);

    let get = server.visit("nosuch1").await;
    let head = server.head("nosuch1").await;

    assert_eq!(get.status(), StatusCode::NOT_FOUND);
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn codes_are_case_sensitive() {
    let server = TestServer::spawn(&[]);
    server
        .new_link(json!({"url": "https://example.com/upper", "code": "AbCdE1"}))
        .await;

    let lower_before = server.visit("abcde1").await.status();
    let all_upper = server.visit("ABCDE1").await.status();
    server
        .new_link(json!({"url": "https://example.com/lower", "code": "abcde1"}))
        .await;
    let mixed = server.visit("AbCdE1").await;
    let lower_after = server.visit("abcde1").await;

    assert_eq!(
        lower_before,
        StatusCode::NOT_FOUND,
        "GET /abcde1 before it exists"
    );
    assert_eq!(all_upper, StatusCode::NOT_FOUND, "GET /ABCDE1");
    assert_eq!(mixed.status(), StatusCode::FOUND);
    assert_eq!(header(&mixed, "location"), "https://example.com/upper");
    assert_eq!(lower_after.status(), StatusCode::FOUND);
    assert_eq!(
        header(&lower_after, "location"),
        "https://example.com/lower"
    );
}

#[tokio::test]
async fn strings_that_cannot_be_codes_answer_404() {
    let server = TestServer::spawn(&[]);
    let too_long = "a".repeat(65);
    let paths = [
        "/a..b",
        too_long.as_str(),
        "/%00",
        "/ab%0d%0aSet-Cookie:x",
        "/ab%20cd",
        "/%C3%BC%C3%B1%C3%AF",
        "/a.b.c",
        "/~abc",
    ];

    for path in paths {
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        let resp = server.client.get(server.url(&path)).send().await.unwrap();

        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "GET {path}");
        assert!(
            resp.headers().get("set-cookie").is_none(),
            "GET {path} must not set a cookie"
        );
    }
}

#[tokio::test]
async fn redirect_status_is_configurable_per_server() {
    for status in [301u16, 307, 308] {
        let server = TestServer::spawn(&["--redirect-status", &status.to_string()]);
        let link = server
            .new_link(json!({"url": "https://example.com/s"}))
            .await;

        let resp = server.visit(&code_of(&link)).await;

        assert_eq!(resp.status().as_u16(), status, "--redirect-status {status}");
        assert_eq!(header(&resp, "location"), "https://example.com/s");
    }
}

#[tokio::test]
async fn patching_the_url_takes_effect_on_the_next_redirect() {
    let server = TestServer::spawn(&[]);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://old.example/"}))
            .await,
    );
    let warm = server.visit(&code).await;
    assert_eq!(header(&warm, "location"), "https://old.example/");

    let patch = server
        .patch_link(&code, json!({"url": "https://new.example/path"}))
        .await;
    assert_eq!(patch.status(), StatusCode::OK);
    let resp = server.visit(&code).await;

    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(header(&resp, "location"), "https://new.example/path");
}

#[tokio::test]
async fn disabling_a_link_answers_410_and_enabling_restores_it() {
    let server = TestServer::spawn(&[]);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/d"}))
            .await,
    );
    assert_eq!(server.visit(&code).await.status(), StatusCode::FOUND);
    let path = format!("/api/v1/links/{code}");

    let disable = server
        .api(Method::PATCH, &path)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(disable.status(), StatusCode::OK);
    let while_disabled = server.visit(&code).await.status();
    let head_while_disabled = server.head(&code).await.status();
    let enable = server
        .api(Method::PATCH, &path)
        .json(&json!({"disabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(enable.status(), StatusCode::OK);
    let after_enable = server.visit(&code).await;

    assert_eq!(while_disabled, StatusCode::GONE);
    assert_eq!(head_while_disabled, StatusCode::GONE);
    assert_eq!(after_enable.status(), StatusCode::FOUND);
    assert_eq!(header(&after_enable, "location"), "https://example.com/d");
}

#[tokio::test]
async fn a_deleted_link_answers_410_and_its_code_is_never_reissued() {
    let server = TestServer::spawn(&[]);
    server
        .new_link(json!({"url": "https://example.com/del", "code": "gone-soon"}))
        .await;
    assert_eq!(server.visit("gone-soon").await.status(), StatusCode::FOUND);

    let delete = server.call(Method::DELETE, "/api/v1/links/gone-soon").await;
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    let api_get = server.call(Method::GET, "/api/v1/links/gone-soon").await;
    let redirect = server.visit("gone-soon").await.status();
    let recreate = server
        .create_link(json!({"url": "https://example.com/again", "code": "gone-soon"}))
        .await;

    common::expect_problem(
        api_get,
        StatusCode::NOT_FOUND,
        "not_found",
        "GET deleted link",
    )
    .await;
    assert_eq!(redirect, StatusCode::GONE);
    common::expect_problem(
        recreate,
        StatusCode::CONFLICT,
        "code_taken",
        "re-create deleted code",
    )
    .await;
}

#[tokio::test]
async fn a_link_past_expires_at_answers_410() {
    let server = TestServer::spawn(&[]);
    let expires = chrono::Utc::now() + chrono::Duration::seconds(3);
    let expires_at = expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/exp", "expires_at": expires_at}))
            .await,
    );

    let before = server.visit(&code).await.status();
    let before_left = expires - chrono::Utc::now();
    // A sleep on purpose: expiry is wall-clock time passing in a real process. It lasts until
    // the clock (the server's too) is past expires_at; from then on the link answers 410.
    let past = expires + chrono::Duration::milliseconds(300) - chrono::Utc::now();
    tokio::time::sleep(past.to_std().unwrap_or_default()).await;
    let after = server.visit(&code).await.status();
    let head_after = server.head(&code).await.status();

    assert_eq!(
        before,
        StatusCode::FOUND,
        "before expires_at ({} ms left then)",
        before_left.num_milliseconds()
    );
    assert_eq!(after, StatusCode::GONE, "after expires_at");
    assert_eq!(head_after, StatusCode::GONE, "HEAD after expires_at");
}

#[tokio::test]
async fn max_clicks_allows_exactly_that_many_redirects_and_head_does_not_use_them() {
    let server = TestServer::spawn(&[]);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/max", "max_clicks": 3}))
            .await,
    );

    let heads = [
        server.head(&code).await.status(),
        server.head(&code).await.status(),
    ];
    let mut gets = Vec::new();
    for _ in 0..4 {
        gets.push(server.visit(&code).await.status());
    }
    let head_after = server.head(&code).await.status();

    assert_eq!(heads, [StatusCode::FOUND; 2], "HEADs before any GET");
    assert_eq!(
        gets,
        [
            StatusCode::FOUND,
            StatusCode::FOUND,
            StatusCode::FOUND,
            StatusCode::GONE
        ],
        "four GETs with max_clicks 3"
    );
    assert_eq!(
        head_after,
        StatusCode::GONE,
        "HEAD once max_clicks is used up"
    );
}

#[tokio::test]
async fn the_preview_page_shows_the_destination_html_escaped() {
    let server = TestServer::spawn(&[]);
    let code = code_of(
        &server
            .new_link(json!({
                "url": "https://example.com/p?q=\"><img src=x>",
                "title": "<script>alert(1)</script>",
            }))
            .await,
    );

    let resp = server.visit(&format!("{code}+")).await;

    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the preview does not redirect"
    );
    let content_type = header(&resp, "content-type");
    assert!(
        content_type.starts_with("text/html"),
        "preview content-type: {content_type:?}"
    );
    // A strict CSP that also forbids framing, the same in X-Frame-Options for old browsers, no
    // sniffing, no referrer leaked to the destination.
    assert_eq!(
        header(&resp, "content-security-policy"),
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    );
    assert_eq!(header(&resp, "x-frame-options"), "DENY");
    assert_eq!(header(&resp, "x-content-type-options"), "nosniff");
    assert_eq!(header(&resp, "referrer-policy"), "no-referrer");
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("example.com/p"),
        "preview shows the destination: {body}"
    );
    assert!(
        !body.contains("<script>alert"),
        "raw <script> in preview: {body}"
    );
    assert!(!body.contains("\"><img"), "raw \"><img in preview: {body}");
    assert!(
        !body.contains("<script"),
        "the preview runs no script: {body}"
    );
    assert!(
        body.contains("rel=\"noopener noreferrer nofollow\""),
        "{body}"
    );
}

#[tokio::test]
async fn the_preview_of_an_unknown_code_answers_404() {
    let server = TestServer::spawn(&[]);

    let resp = server.visit("nosuch1+").await;

    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn locations_are_ascii_with_punycode_hosts_and_percent_encoding() {
    let server = TestServer::spawn(&[]);
    let idn = server
        .new_link(json!({"url": "https://bücher.example/ä?q=ü"}))
        .await;
    let upper = server.new_link(json!({"url": "https://EXAMPLE.com"})).await;

    let idn_resp = server.visit(&code_of(&idn)).await;
    let upper_resp = server.visit(&code_of(&upper)).await;

    assert_eq!(
        header(&idn_resp, "location"),
        "https://xn--bcher-kva.example/%C3%A4?q=%C3%BC"
    );
    assert_eq!(header(&upper_resp, "location"), "https://example.com/");
    assert_eq!(
        upper["url"], "https://example.com/",
        "stored url is normalised"
    );
}

#[tokio::test]
async fn an_encoded_crlf_in_a_destination_never_becomes_a_raw_header_break() {
    let server = TestServer::spawn(&[]);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/a%0d%0aSet-Cookie:%20x=1"}))
            .await,
    );

    let resp = server.visit(&code).await;

    assert_eq!(resp.status(), StatusCode::FOUND);
    assert!(
        resp.headers().get("set-cookie").is_none(),
        "header injection"
    );
    let location = header(&resp, "location").to_ascii_lowercase();
    assert!(
        location.contains("%0d%0a"),
        "the CRLF stays percent-encoded in Location: {location:?}"
    );
}

#[tokio::test]
async fn redirects_carry_the_configured_referrer_policy_and_none_by_default() {
    let plain = TestServer::spawn(&[]);
    let code = code_of(
        &plain
            .new_link(json!({"url": "https://example.com/rp"}))
            .await,
    );
    let resp = plain.visit(&code).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert!(
        resp.headers().get("referrer-policy").is_none(),
        "a Referrer-Policy by default: {:?}",
        resp.headers()
    );

    let strict = TestServer::spawn(&["--redirect-referrer-policy", "no-referrer"]);
    let code = code_of(
        &strict
            .new_link(json!({"url": "https://example.com/rp"}))
            .await,
    );
    let resp = strict.visit(&code).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(common::header(&resp, "referrer-policy"), "no-referrer");
    // (A bad policy is a bad flag: tests/first_start.rs.)
}

/// HTTP/2 by prior knowledge (what a proxy speaking h2c to its backend sends) reaches the same
/// redirect path as HTTP/1.1: a hit is answered from the cache, clicks are counted, HEAD uses
/// no click, previews and unknown codes answer as they do over HTTP/1.1.
#[tokio::test]
async fn http2_by_prior_knowledge_redirects_counts_clicks_and_answers_unknown_codes() {
    let server = TestServer::spawn(&[]);
    let link = server
        .new_link(json!({"url": "https://example.com/over/h2?x=1"}))
        .await;
    let code = code_of(&link);
    let h2 = common::http2_client();
    let send = |method: Method, path: String| {
        let request = h2.request(method, server.url(&path));
        async move { request.send().await.expect("an HTTP/2 request") }
    };

    // HEAD and the preview first: had they used a click, it would be flushed with the GETs'.
    let head = send(Method::HEAD, format!("/{code}")).await;
    let preview = send(Method::GET, format!("/{code}+")).await;
    let first = send(Method::GET, format!("/{code}")).await;
    let second = send(Method::GET, format!("/{code}")).await;
    let unknown = send(Method::GET, "/nosuch2".to_string()).await;

    for (what, resp) in [
        ("first GET", &first),
        ("second GET", &second),
        ("HEAD", &head),
    ] {
        assert_eq!(resp.version(), reqwest::Version::HTTP_2, "{what}");
        assert_eq!(resp.status(), StatusCode::FOUND, "{what}");
        assert_eq!(
            header(resp, "location"),
            "https://example.com/over/h2?x=1",
            "{what}"
        );
        assert_eq!(
            header(resp, "cache-control"),
            "private, max-age=90",
            "{what}"
        );
    }
    assert_eq!(preview.version(), reqwest::Version::HTTP_2);
    assert_eq!(preview.status(), StatusCode::OK, "preview");
    let page = preview.text().await.unwrap();
    assert!(page.contains("https://example.com/over/h2?x=1"), "{page}");
    assert_eq!(unknown.version(), reqwest::Version::HTTP_2);
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND, "unknown code");
    assert_eq!(
        server.wait_for_total_clicks(&code, 2).await,
        2,
        "two GETs over HTTP/2 are two clicks (HEAD and the preview none)"
    );
}
