//! Odd and hostile input: no request may make the server answer 500 or drop the connection
//! (docs/api.md, "Errors").

use crate::common::{TestServer, XorShift, code_of, expect_problem, random_u64, raw_request};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Build a raw HTTP/1.1 request with `Host` and `Connection: close` added.
fn request(head: &str, headers: &[&[u8]], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(b"\r\nHost: localhost\r\nConnection: close\r\n");
    for h in headers {
        out.extend_from_slice(h);
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_raw_requests_never_yield_500_or_a_dropped_connection() {
    let server = TestServer::spawn(&[]);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/raw"}))
            .await,
    );
    let auth = format!("Authorization: Bearer {}", server.admin_key);
    let auth = auth.as_bytes();
    let json_ct: &[u8] = b"Content-Type: application/json";
    let long_path = format!("GET /{} HTTP/1.1", "a".repeat(20_000));
    let long_api_path = format!("GET /api/v1/links/{} HTTP/1.1", "b".repeat(10_000));
    let long_referer = format!("Referer: https://{}.example/", "r".repeat(20_000));
    let many_headers: Vec<Vec<u8>> = (0..150)
        .map(|i| format!("X-H{i}: v").into_bytes())
        .collect();
    let many_headers: Vec<&[u8]> = many_headers.iter().map(Vec::as_slice).collect();
    let redirect = format!("GET /{code} HTTP/1.1");
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));

    let cases: Vec<(String, Vec<u8>)> = vec![
        ("very long path".into(), request(&long_path, &[], b"")),
        (
            "very long api path".into(),
            request(&long_api_path, &[auth], b""),
        ),
        (
            "percent garbage".into(),
            request("GET /%%%%zz%G1% HTTP/1.1", &[], b""),
        ),
        (
            "encoded NUL and 0xff".into(),
            request("GET /%ff%fe%00 HTTP/1.1", &[], b""),
        ),
        (
            "encoded CRLF".into(),
            request("GET /ab%0d%0aSet-Cookie:x HTTP/1.1", &[], b""),
        ),
        (
            "encoded traversal".into(),
            request("GET /..%2f..%2fetc%2fpasswd HTTP/1.1", &[], b""),
        ),
        (
            "many slashes".into(),
            request("GET //// HTTP/1.1", &[], b""),
        ),
        ("bare plus".into(), request("GET /+ HTTP/1.1", &[], b"")),
        (
            "double plus".into(),
            request("GET /abc++ HTTP/1.1", &[], b""),
        ),
        (
            "raw utf-8 path".into(),
            request("GET /ünï HTTP/1.1", &[], b""),
        ),
        (
            "raw invalid utf-8 path".into(),
            [b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".as_slice()].concat(),
        ),
        (
            "absolute-form uri".into(),
            request("GET http://evil.example/abc HTTP/1.1", &[], b""),
        ),
        (
            "api with encoded junk code".into(),
            request("GET /api/v1/links/%ff%fe HTTP/1.1", &[auth], b""),
        ),
        (
            "odd bytes in a header value".into(),
            request("GET /health/live HTTP/1.1", &[b"X-Odd: \xff\xfe\x80"], b""),
        ),
        (
            "invalid utf-8 referer on a redirect".into(),
            request(&redirect, &[b"Referer: http://\xff\xfe/x"], b""),
        ),
        (
            "invalid utf-8 user-agent on a redirect".into(),
            request(&redirect, &[b"User-Agent: \xc3\x28\xa0"], b""),
        ),
        (
            "referer that is not a url".into(),
            request(&redirect, &[b"Referer: ::::not a url::::"], b""),
        ),
        (
            "very long referer".into(),
            request(&redirect, &[long_referer.as_bytes()], b""),
        ),
        (
            "forwarded headers from an untrusted peer".into(),
            request(
                &redirect,
                &[
                    b"X-Forwarded-For: not-an-ip, 999.999.1.1",
                    b"Forwarded: for=\"[zz::1]\";proto=gopher",
                ],
                b"",
            ),
        ),
        ("150 headers".into(), request(&redirect, &many_headers, b"")),
        (
            "binary bearer token".into(),
            request(
                "GET /api/v1/links HTTP/1.1",
                &[b"Authorization: Bearer \xff\xfe\x00x"],
                b"",
            ),
        ),
        (
            "odd bytes in the content-type charset".into(),
            request(
                "POST /api/v1/links HTTP/1.1",
                &[auth, b"Content-Type: application/json; charset=\xff"],
                br#"{"url":"https://example.com/"}"#,
            ),
        ),
        (
            "content-length overflow".into(),
            request(
                "POST /api/v1/links HTTP/1.1",
                &[auth, json_ct, b"Content-Length: 99999999999999999999999"],
                b"",
            ),
        ),
        (
            "negative content-length".into(),
            request(
                "POST /api/v1/links HTTP/1.1",
                &[auth, json_ct, b"Content-Length: -1"],
                b"",
            ),
        ),
        (
            "conflicting content-lengths".into(),
            request(
                "POST /api/v1/links HTTP/1.1",
                &[auth, json_ct, b"Content-Length: 2", b"Content-Length: 3"],
                b"",
            ),
        ),
        (
            "broken chunked body".into(),
            request(
                "POST /api/v1/links HTTP/1.1",
                &[auth, json_ct, b"Transfer-Encoding: chunked"],
                b"",
            )
            .into_iter()
            .chain(b"zz\r\nnot a chunk\r\n\r\n".iter().copied())
            .collect(),
        ),
        (
            "huge json number".into(),
            request(
                "POST /api/v1/links HTTP/1.1",
                &[auth, json_ct],
                format!(
                    r#"{{"url":"https://example.com/","max_clicks":{}}}"#,
                    "9".repeat(500)
                )
                .as_bytes(),
            ),
        ),
        (
            "deeply nested json".into(),
            request(
                "POST /api/v1/links HTTP/1.1",
                &[auth, json_ct],
                format!(r#"{{"url":{nested}}}"#).as_bytes(),
            ),
        ),
        (
            "json with a raw NUL".into(),
            request(
                "POST /api/v1/links HTTP/1.1",
                &[auth, json_ct],
                b"{\"url\":\"https://example.com/\x00\"}",
            ),
        ),
        (
            "json that is not utf-8".into(),
            request(
                "POST /api/v1/links HTTP/1.1",
                &[auth, json_ct],
                b"{\"url\":\"https://example.com/\",\"title\":\"\xff\xfe\"}",
            ),
        ),
        (
            "empty body with a json content-type".into(),
            request(
                "POST /api/v1/links HTTP/1.1",
                &[auth, json_ct, b"Content-Length: 0"],
                b"",
            ),
        ),
        (
            "url with an escaped CRLF header injection".into(),
            request(
                "POST /api/v1/links HTTP/1.1",
                &[auth, json_ct],
                br#"{"url":"https://example.com/\r\nSet-Cookie: a=b"}"#,
            ),
        ),
        (
            "PUT on the collection".into(),
            request("PUT /api/v1/links HTTP/1.1", &[auth], b""),
        ),
        (
            "DELETE on the collection".into(),
            request("DELETE /api/v1/links HTTP/1.1", &[auth], b""),
        ),
        (
            "POST on a short link".into(),
            request(&format!("POST /{code} HTTP/1.1"), &[], b""),
        ),
        (
            "PATCH on health".into(),
            request("PATCH /health HTTP/1.1", &[], b""),
        ),
        ("TRACE".into(), request("TRACE / HTTP/1.1", &[], b"")),
        (
            "OPTIONS on the api".into(),
            request("OPTIONS /api/v1/links HTTP/1.1", &[], b""),
        ),
        (
            "unknown method".into(),
            request("BREW /coffee HTTP/1.1", &[], b""),
        ),
        (
            "HTTP/1.0 without Host".into(),
            b"GET /health/live HTTP/1.0\r\n\r\n".to_vec(),
        ),
        (
            "garbage request line".into(),
            b"FOO BAR BAZ\r\n\r\n".to_vec(),
        ),
        (
            "binary garbage".into(),
            b"\x00\x01\x02\x03\r\n\r\n".to_vec(),
        ),
        (
            "list with an absurd limit".into(),
            request(
                "GET /api/v1/links?limit=99999999999999999999999 HTTP/1.1",
                &[auth],
                b"",
            ),
        ),
        (
            "stats with a non-utf-8 from".into(),
            request(
                &format!("GET /api/v1/links/{code}/stats?from=%ff&to=%00 HTTP/1.1"),
                &[auth],
                b"",
            ),
        ),
        (
            "qr with a huge size".into(),
            request(
                &format!("GET /api/v1/links/{code}/qr?size=18446744073709551616 HTTP/1.1"),
                &[auth],
                b"",
            ),
        ),
        (
            "odd Idempotency-Key".into(),
            request(
                "POST /api/v1/links HTTP/1.1",
                &[auth, json_ct, b"Idempotency-Key: \xff\xfe\x80 "],
                br#"{"url":"https://example.com/idem"}"#,
            ),
        ),
    ];

    let mut failures = Vec::new();
    for (name, bytes) in cases {
        let addr = server.addr;
        let outcome = tokio::task::spawn_blocking(move || raw_request(addr, &bytes))
            .await
            .unwrap();
        match outcome {
            Ok(status) if status < 500 => {}
            Ok(status) => failures.push(format!("{name}: status {status}")),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }

    assert!(
        failures.is_empty(),
        "odd raw requests went wrong:\n{}",
        failures.join("\n")
    );
    server.assert_alive().await;
    assert_eq!(server.visit(&code).await.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn odd_json_bodies_never_yield_500() {
    let server = TestServer::spawn(&[]);
    let ten_k_code = "c".repeat(10_000);
    let emoji_title = "😀".repeat(512);
    let many_tags = format!(
        r#"{{"url":"https://example.com/","tags":[{}"x"]}}"#,
        r#""x","#.repeat(12_000)
    );
    let long_unicode_url = format!("https://example.com/{}", "ü".repeat(4000));
    let bodies: Vec<String> = vec![
        r#"{"url":"https://example.com/","max_clicks":1e999}"#.into(),
        r#"{"url":"https://example.com/","max_clicks":123456789012345678901234567890}"#.into(),
        r#"{"url":"https://example.com/","max_clicks":18446744073709551615}"#.into(),
        r#"{"url":"https://example.com/","max_clicks":9223372036854775807}"#.into(),
        r#"{"url":"https://example.com/","max_clicks":2147483648}"#.into(),
        r#"{"url":"https://example.com/","max_clicks":1.5}"#.into(),
        r#"{"url":"https://example.com/","max_clicks":-9223372036854775808}"#.into(),
        r#"{"url":"https://example.com/","expires_at":"9999-12-31T23:59:59Z"}"#.into(),
        r#"{"url":"https://example.com/","expires_at":"+275760-09-13T00:00:00Z"}"#.into(),
        r#"{"url":"https://example.com/","expires_at":"99999-01-01T00:00:00Z"}"#.into(),
        r#"{"url":"https://example.com/","expires_at":"2030-01-01T00:00:00+99:99"}"#.into(),
        r#"{"url":"https://example.com/","expires_at":""}"#.into(),
        r#"{"url":"https://example.com/","expires_at":1893456000}"#.into(),
        r#"{"url":"https://example.com/\u0000"}"#.into(),
        r#"{"url":"https://example.com/\ud800"}"#.into(),
        r#"{"url":"https://example.com/","title":"\ud800"}"#.into(),
        r#"{"url":"https://example.com/","title":"a\u0000b"}"#.into(),
        r#"{"url":"https://example.com/","url":"https://other.example/"}"#.into(),
        "\u{feff}{\"url\":\"https://example.com/\"}".into(),
        format!(
            r#"{{"url":"https://example.com/","a":{}1{}}}"#,
            r#"{"a":"#.repeat(10_000),
            "}".repeat(10_000)
        ),
        format!(r#"{{"url":"https://example.com/","code":"{ten_k_code}"}}"#),
        format!(r#"{{"url":"https://example.com/","title":"{emoji_title}"}}"#),
        many_tags,
        format!(r#"{{"url":"{long_unicode_url}"}}"#),
        r#"{"url":"https://example.com/","code":"ünïcode"}"#.into(),
        r#"{"url":"https://example.com/","code":"a\u0000b"}"#.into(),
        r#"{"url":"https://example.com/","code":"  abc"}"#.into(),
        r#"{"url":"https://example.com/","code":"..."}"#.into(),
        r#"{"url":"https://example.com/\r\nSet-Cookie: x=1"}"#.into(),
        r#"{"url":"http://[::1"}"#.into(),
        r#"{"url":"https://example.com:99999/"}"#.into(),
        r#"{"url":"http://[::1]:1/"}"#.into(),
        r#"{"url":"https://xn--/"}"#.into(),
        r#"{"url":"https://a..b/"}"#.into(),
        format!(r#"{{"url":"https://example.com/{}"}}"#, "%".repeat(1000)),
        r#"{"url":"   https://example.com/   "}"#.into(),
        r#"{"url":"https://example.com/","tags":[null]}"#.into(),
        r#"{"url":"https://example.com/","tags":null,"title":null,"code":null}"#.into(),
    ];

    let mut failures = Vec::new();
    let mut created = Vec::new();
    for body in &bodies {
        let resp = server
            .api(Method::POST, "/api/v1/links")
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let shown: String = body.chars().take(120).collect();
        match resp {
            Ok(r) if r.status().as_u16() < 500 => {
                if r.status() == StatusCode::CREATED {
                    created.push(code_of(&r.json().await.unwrap()));
                }
            }
            Ok(r) => failures.push(format!("{shown}: status {}", r.status())),
            Err(e) => failures.push(format!("{shown}: {e}")),
        }
    }
    for code in &created {
        for path in [
            format!("/api/v1/links/{code}"),
            format!("/api/v1/links/{code}/stats"),
            format!("/api/v1/links/{code}/qr"),
        ] {
            let status = server.call(Method::GET, &path).await.status();
            if status.as_u16() >= 500 {
                failures.push(format!("GET {path}: status {status}"));
            }
        }
        let status = server.visit(code).await.status();
        if status.as_u16() >= 500 {
            failures.push(format!("GET /{code}: status {status}"));
        }
    }
    let list = server.call(Method::GET, "/api/v1/links?limit=1000").await;

    assert!(
        failures.is_empty(),
        "odd bodies went wrong:\n{}",
        failures.join("\n")
    );
    assert_eq!(list.status(), StatusCode::OK, "listing every odd link");
    server.assert_alive().await;
}

#[tokio::test]
async fn a_crlf_in_the_url_field_is_rejected_as_invalid_url() {
    let server = TestServer::spawn(&[]);

    let resp = server
        .create_link(json!({"url": "https://example.com/\r\nSet-Cookie: x=1"}))
        .await;

    expect_problem(
        resp,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_url",
        "url with CRLF",
    )
    .await;
}

#[tokio::test]
async fn unicode_codes_are_rejected_or_unknown_never_a_server_error() {
    let server = TestServer::spawn(&[]);

    for code in ["ünïcode", "😀😀😀", "кириллица", "ａｂｃ"] {
        let create = server
            .create_link(json!({"url": "https://example.com/", "code": code}))
            .await;
        let visit = server
            .client
            .get(server.url(&format!("/{code}")))
            .send()
            .await
            .unwrap();
        let preview = server
            .client
            .get(server.url(&format!("/{code}+")))
            .send()
            .await
            .unwrap();

        expect_problem(
            create,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_code",
            &format!("code {code:?}"),
        )
        .await;
        assert_eq!(visit.status(), StatusCode::NOT_FOUND, "GET /{code}");
        assert_eq!(preview.status(), StatusCode::NOT_FOUND, "GET /{code}+");
    }
}

const PATH_BYTES: &[u8] = b"abcXYZ019-_.~+%/?#&=;:@!$'()*,[]{}|\\^` \"<>\x00\x01\x7f\xc3\xbc\xff";
const JSON_FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"url\"",
    "\"code\"",
    "\"title\"",
    "\"tags\"",
    "\"max_clicks\"",
    "\"expires_at\"",
    "\"https://example.com/\"",
    "\"javascript:x\"",
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1e308",
    "99999999999999999999",
    "\"\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"2030-01-01T00:00:00Z\"",
    "\"ü\"",
    " ",
    "\"abc\"",
];

/// Percent-encode every byte that may not appear raw in a request target.
fn encode_path(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-_.~/+!$'()*,;:@=&".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn a_bounded_random_walk_of_paths_and_bodies_never_yields_500() {
    let server = TestServer::spawn(&[]);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/r"}))
            .await,
    );
    let seed = random_u64();
    let mut rng = XorShift::new(seed);
    let mut failures = Vec::new();

    for round in 0..300 {
        let mut path_bytes = Vec::new();
        for _ in 0..rng.below(40) {
            path_bytes.push(PATH_BYTES[rng.below(PATH_BYTES.len())]);
        }
        let prefix = match rng.below(4) {
            0 => "/".to_owned(),
            1 => format!("/{code}"),
            2 => "/api/v1/links/".to_owned(),
            _ => format!("/api/v1/links/{code}/stats?from="),
        };
        let path = format!("{prefix}{}", encode_path(&path_bytes));
        let body: String = (0..rng.below(30))
            .map(|_| JSON_FRAGMENTS[rng.below(JSON_FRAGMENTS.len())])
            .collect();
        let method = [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
        ][rng.below(5)]
        .clone();
        let mut req = server
            .api(method.clone(), &path)
            .header("content-type", "application/json");
        if method != Method::GET && method != Method::HEAD {
            req = req.body(body.clone());
        }
        let what = format!("round {round} (seed {seed}): {method} {path} {body}");
        match req.send().await {
            Ok(r) if r.status().as_u16() < 500 => {}
            Ok(r) => failures.push(format!("{what}: status {}", r.status())),
            Err(e) => failures.push(format!("{what}: {e}")),
        }
    }

    assert!(
        failures.is_empty(),
        "random requests went wrong:\n{}",
        failures.join("\n")
    );
    server.assert_alive().await;
}

#[tokio::test]
async fn a_deeply_nested_json_body_is_refused_with_or_without_an_idempotency_key() {
    let server = TestServer::spawn(&[]);
    let deep = format!(
        r#"{{"url":"https://example.com/deep","extra":{}1{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    for idempotency_key in [None, Some("deep-1")] {
        let mut request = server
            .api(Method::POST, "/api/v1/links")
            .header("content-type", "application/json")
            .body(deep.clone());
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let resp = request.send().await.unwrap();
        let problem = expect_problem(
            resp,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "10,000-deep body",
        )
        .await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("nested deeper"),
            "{problem}"
        );
    }
    // Moderate nesting in an ignored field is still fine.
    let shallow = server
        .api(Method::POST, "/api/v1/links")
        .header("content-type", "application/json")
        .body(r#"{"url":"https://example.com/shallow","extra":[[[{"a":[1]}]]]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(shallow.status(), StatusCode::CREATED);
}
