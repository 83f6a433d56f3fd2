//! The dashboard's server side over HTTP: sign-in and sessions, the anti-CSRF rules, the session
//! on the read-only API, what each role sees, and the overview and list APIs behind the pages.
//! docs/api.md, "The dashboard (`/ui/`)", "`GET /api/v1/stats`", "`GET /api/v1/links`".
//! (The same flows in a real browser: ui-tests/.)

use std::time::Duration;

use crate::common::{self, TestServer, code_of, expect_json, expect_problem, header};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

const FORM: &str = "application/x-www-form-urlencoded";

/// The fields of a form.
type Fields = Vec<(&'static str, String)>;
/// Extra request headers.
type Headers = Vec<(&'static str, &'static str)>;

/// Signs in with `key` through the form; returns the session cookie (`snip_session=…`).
async fn sign_in(server: &TestServer, key: &str) -> String {
    let resp = post_form(server, "/ui/signin", None, &[("key", key)]).await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "sign-in with a right key"
    );
    assert_eq!(header(&resp, "location"), "/ui/");
    let cookie = header(&resp, "set-cookie");
    cookie.split(';').next().unwrap().to_string()
}

async fn post_form(
    server: &TestServer,
    path: &str,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
) -> Response {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let mut req = server
        .client
        .post(server.url(path))
        .header("content-type", FORM)
        .body(body);
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    req.send().await.expect("POST a form")
}

async fn get_page(server: &TestServer, path: &str, cookie: &str) -> Response {
    get_as(server, path, Some(cookie)).await
}

/// `GET path`, with the session `cookie` if any.
async fn get_as(server: &TestServer, path: &str, cookie: Option<&str>) -> Response {
    let mut req = server.client.get(server.url(path));
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    req.send().await.expect("GET a page")
}

/// The anti-CSRF token in a page's forms.
async fn csrf_of(server: &TestServer, cookie: &str) -> String {
    let page = get_page(server, "/ui/links", cookie)
        .await
        .text()
        .await
        .unwrap();
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a page of a session has the csrf field")
        + "name=\"csrf\" value=\"".len();
    page[at..at + 32].to_string()
}

#[tokio::test]
async fn a_key_is_exchanged_for_a_session_cookie_that_page_scripts_cannot_read() {
    let server = TestServer::spawn(&[]);
    let anonymous = get_as(&server, "/ui/links", None).await;
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&anonymous, "location"), "/ui/signin");

    let wrong = post_form(&server, "/ui/signin", None, &[("key", "snip_wrong")]).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get("set-cookie").is_none());
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("That API key is not valid.")
    );

    let resp = post_form(&server, "/ui/signin", None, &[("key", &server.admin_key)]).await;
    let set_cookie = header(&resp, "set-cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "not on an http base URL: {set_cookie}"
    );
    assert!(
        !set_cookie.contains(&server.admin_key),
        "the key never lands in the cookie"
    );
    let cookie = set_cookie.split(';').next().unwrap();
    let page = get_page(&server, "/ui/", cookie).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = header(&page, "content-security-policy");
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(header(&page, "cache-control"), "no-store");
    // Not `no-referrer`: a browser would send `Origin: null` with the page's own forms.
    assert_eq!(header(&page, "referrer-policy"), "same-origin");
    let html = page.text().await.unwrap();
    assert!(html.contains("<h1>Overview</h1>"));
    assert!(
        !html.contains(&server.admin_key),
        "the page never shows the key"
    );
}

#[tokio::test]
async fn the_session_is_secure_when_the_base_url_is_https() {
    let server = TestServer::spawn(&["--base-url", "https://sn.example"]);
    let resp = post_form(&server, "/ui/signin", None, &[("key", &server.admin_key)]).await;
    assert!(header(&resp, "set-cookie").contains("; Secure"));
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_like_failed_api_authentication() {
    let server = TestServer::spawn(&["--failed-auth-limit", "3"]);
    for _ in 0..3 {
        let resp = post_form(&server, "/ui/signin", None, &[("key", "snip_nope")]).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let blocked = post_form(&server, "/ui/signin", None, &[("key", "snip_nope")]).await;
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&blocked, "retry-after").parse::<u64>().unwrap() > 0);
    // The API shares the throttle: a bad key there is refused before it is looked up.
    let api = server
        .api_as("snip_other", Method::GET, "/api/v1/links")
        .send()
        .await
        .unwrap();
    expect_problem(api, StatusCode::TOO_MANY_REQUESTS, "auth_throttled", "API").await;
}

#[tokio::test]
async fn signing_out_ends_the_session_everywhere_and_revoking_the_key_too() {
    let server = TestServer::spawn(&[]);
    let cookie = sign_in(&server, &server.admin_key).await;
    let csrf = csrf_of(&server, &cookie).await;
    let out = post_form(&server, "/ui/signout", Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(header(&out, "set-cookie").contains("Max-Age=0"));
    // The old cookie, replayed, is worth nothing: on pages and on the API.
    let replay = get_page(&server, "/ui/links", &cookie).await;
    assert_eq!(replay.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&replay, "location"), "/ui/signin");
    let api = get_page(&server, "/api/v1/links", &cookie).await;
    expect_problem(api, StatusCode::UNAUTHORIZED, "unauthorized", "API").await;

    let user_key = server.create_key("user").await;
    let user_cookie = sign_in(&server, &user_key).await;
    assert_eq!(
        get_page(&server, "/ui/", &user_cookie).await.status(),
        StatusCode::OK
    );
    let keys = server.call(Method::GET, "/api/v1/keys").await;
    let keys = expect_json(keys, StatusCode::OK, "keys").await;
    let id = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "user")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let revoked = server
        .call(Method::DELETE, &format!("/api/v1/keys/{id}"))
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let after = get_page(&server, "/ui/", &user_cookie).await;
    assert_eq!(
        after.status(),
        StatusCode::SEE_OTHER,
        "a revoked key's session ends"
    );
}

#[tokio::test]
async fn a_form_from_another_origin_or_without_the_token_changes_nothing() {
    let server = TestServer::spawn(&[]);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/"}))
            .await,
    );
    let cookie = sign_in(&server, &server.admin_key).await;
    let csrf = csrf_of(&server, &cookie).await;
    let disable = format!("/ui/links/{code}/disable");
    let attempts: Vec<(&str, Fields, Headers)> = vec![
        ("no token", vec![], vec![]),
        ("a wrong token", vec![("csrf", "0".repeat(32))], vec![]),
        (
            "another origin",
            vec![("csrf", csrf.clone())],
            vec![("origin", "http://127.0.0.1:1")],
        ),
        (
            "a cross-site fetch",
            vec![("csrf", csrf.clone())],
            vec![("sec-fetch-site", "cross-site")],
        ),
        (
            "a same-site page on another port",
            vec![("csrf", csrf.clone())],
            vec![("sec-fetch-site", "same-site")],
        ),
    ];
    for (what, fields, headers) in attempts {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let mut req = server
            .client
            .post(server.url(&disable))
            .header("content-type", FORM)
            .header("cookie", &cookie)
            .body(body);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{what}");
    }
    assert_eq!(
        server.visit(&code).await.status(),
        StatusCode::FOUND,
        "still enabled"
    );

    let origin = server.base.clone();
    let ok = server
        .client
        .post(server.url(&disable))
        .header("content-type", FORM)
        .header("cookie", &cookie)
        .header("origin", origin)
        .header("sec-fetch-site", "same-origin")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(server.visit(&code).await.status(), StatusCode::GONE);
}

#[tokio::test]
async fn the_session_reads_the_api_but_never_changes_anything_through_it() {
    let server = TestServer::spawn(&[]);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/"}))
            .await,
    );
    let cookie = sign_in(&server, &server.admin_key).await;
    for path in [
        format!("/api/v1/links/{code}"),
        format!("/api/v1/links/{code}/qr?format=svg"),
        format!("/api/v1/links/{code}/stats.csv"),
        "/api/v1/stats".to_string(),
    ] {
        let resp = get_page(&server, &path, &cookie).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }
    let patch = server
        .client
        .patch(server.url(&format!("/api/v1/links/{code}")))
        .header("cookie", &cookie)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    expect_problem(patch, StatusCode::UNAUTHORIZED, "unauthorized", "PATCH").await;
    let create = server
        .client
        .post(server.url("/api/v1/links"))
        .header("cookie", &cookie)
        .json(&json!({"url": "https://example.org/"}))
        .send()
        .await
        .unwrap();
    expect_problem(create, StatusCode::UNAUTHORIZED, "unauthorized", "POST").await;
    assert_eq!(server.visit(&code).await.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn links_are_created_edited_disabled_and_deleted_through_the_forms() {
    let server = TestServer::spawn(&[]);
    let cookie = sign_in(&server, &server.admin_key).await;
    let csrf = csrf_of(&server, &cookie).await;
    let created = post_form(
        &server,
        "/ui/links",
        Some(&cookie),
        &[
            ("csrf", &csrf),
            ("url", "https://example.com/<script>"),
            ("code", "launch-day"),
            ("title", "Launch <b>day</b>"),
            ("tags", "print, campaign"),
            ("max_clicks", "5"),
        ],
    )
    .await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        header(&created, "location"),
        "/ui/links/launch-day?created=1"
    );
    let link = expect_json(
        server.call(Method::GET, "/api/v1/links/launch-day").await,
        StatusCode::OK,
        "the created link",
    )
    .await;
    assert_eq!(link["tags"], json!(["print", "campaign"]));
    assert_eq!(link["max_clicks"], 5);
    let page = get_page(&server, "/ui/links/launch-day?created=1", &cookie).await;
    let html = page.text().await.unwrap();
    assert!(html.contains("Link created."));
    assert!(
        html.contains("Launch &#60;b&#62;day&#60;/b&#62;"),
        "escaped title"
    );
    assert!(!html.contains("<b>day"), "no markup from a user string");

    // A taken code: the form again, with the API's detail, nothing created.
    let taken = post_form(
        &server,
        "/ui/links",
        Some(&cookie),
        &[
            ("csrf", &csrf),
            ("url", "https://example.org/"),
            ("code", "launch-day"),
        ],
    )
    .await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    let html = taken.text().await.unwrap();
    assert!(
        html.contains("role=\"alert\"") && html.contains("launch-day"),
        "{html}"
    );
    assert!(
        html.contains("value=\"https://example.org/\""),
        "the form keeps what was typed"
    );

    let availability = get_page(&server, "/ui/code-available?code=launch-day", &cookie).await;
    let availability: Value = availability.json().await.unwrap();
    assert_eq!(availability["available"], false);
    let free = get_page(&server, "/ui/code-available?code=free-one", &cookie).await;
    assert_eq!(free.json::<Value>().await.unwrap()["available"], true);

    let edited = post_form(
        &server,
        "/ui/links/launch-day/edit",
        Some(&cookie),
        &[
            ("csrf", &csrf),
            ("url", "https://example.net/new"),
            ("title", ""),
            ("tags", ""),
        ],
    )
    .await;
    assert_eq!(edited.status(), StatusCode::SEE_OTHER);
    let visit = server.visit("launch-day").await;
    assert_eq!(header(&visit, "location"), "https://example.net/new");
    let link = expect_json(
        server.call(Method::GET, "/api/v1/links/launch-day").await,
        StatusCode::OK,
        "the edited link",
    )
    .await;
    assert_eq!(
        (link["title"].clone(), link["tags"].clone()),
        (Value::Null, json!([]))
    );

    for (action, redirect) in [("disable", StatusCode::GONE), ("enable", StatusCode::FOUND)] {
        let path = format!("/ui/links/launch-day/{action}");
        let resp = post_form(&server, &path, Some(&cookie), &[("csrf", &csrf)]).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{action}");
        assert_eq!(
            server.visit("launch-day").await.status(),
            redirect,
            "{action}"
        );
    }

    let confirm = get_page(&server, "/ui/links/launch-day/delete", &cookie).await;
    assert!(confirm.text().await.unwrap().contains("Delete permanently"));
    let deleted = post_form(
        &server,
        "/ui/links/launch-day/delete",
        Some(&cookie),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(header(&deleted, "location"), "/ui/links?deleted=launch-day");
    assert_eq!(server.visit("launch-day").await.status(), StatusCode::GONE);
    let gone = get_page(&server, "/ui/links/launch-day", &cookie).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_user_session_sees_its_own_links_and_no_admin_page() {
    let server = TestServer::spawn(&[]);
    let admins = code_of(
        &server
            .new_link(json!({"url": "https://admin.example/"}))
            .await,
    );
    let user_key = server.create_key("user").await;
    let resp = server
        .create_link_as(&user_key, json!({"url": "https://user.example/"}))
        .await;
    let mine = code_of(&expect_json(resp, StatusCode::CREATED, "user link").await);
    let cookie = sign_in(&server, &user_key).await;
    let list = get_page(&server, "/ui/links", &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(list.contains(&format!("data-code=\"{mine}\"")));
    assert!(!list.contains(&format!("data-code=\"{admins}\"")));
    assert!(
        !list.contains("href=\"/ui/keys\""),
        "no Keys entry for a user"
    );
    for path in ["/ui/keys", "/ui/unknown"] {
        assert_eq!(
            get_page(&server, path, &cookie).await.status(),
            StatusCode::FORBIDDEN
        );
    }
    let other = get_page(&server, &format!("/ui/links/{admins}"), &cookie).await;
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    let overview = get_page(&server, "/api/v1/stats", &cookie).await;
    let overview = expect_json(overview, StatusCode::OK, "overview").await;
    let recent: Vec<&str> = overview["recent_links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["code"].as_str().unwrap())
        .collect();
    assert_eq!(recent, [mine.as_str()]);
}

#[tokio::test]
async fn the_overview_counts_human_clicks_of_the_keys_links() {
    let server = TestServer::spawn(&["--click-flush-interval", "100ms"]);
    let a = code_of(&server.new_link(json!({"url": "https://a.example/"})).await);
    let b = code_of(&server.new_link(json!({"url": "https://b.example/"})).await);
    for _ in 0..3 {
        assert_eq!(server.visit(&a).await.status(), StatusCode::FOUND);
    }
    assert_eq!(server.visit(&b).await.status(), StatusCode::FOUND);
    let bot = server
        .client
        .get(server.url(&format!("/{b}")))
        .header(
            "user-agent",
            "Googlebot/2.1 (+http://www.google.com/bot.html)",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bot.status(), StatusCode::FOUND);
    // Clicks reach the overview once folded into the tables: poll for it.
    let overview = common::eventually(
        Duration::from_secs(90),
        || async {
            let resp = server.call(Method::GET, "/api/v1/stats?limit=5").await;
            expect_json(resp, StatusCode::OK, "overview").await
        },
        |o: &Value| o["clicks_24h"] == 4,
    )
    .await;
    assert_eq!(overview["clicks_24h"], 4, "{overview}");
    assert_eq!(
        (
            overview["clicks_7d"].clone(),
            overview["clicks_30d"].clone()
        ),
        (json!(4), json!(4))
    );
    assert_eq!(
        overview["top_links"],
        json!([{"key": a, "clicks": 3}, {"key": b, "clicks": 1}])
    );
    let series = overview["series"].as_array().unwrap();
    assert_eq!(series.len(), 31);
    assert_eq!(series.last().unwrap()["clicks"], 4);
    assert_eq!(overview["recent_links"].as_array().unwrap().len(), 2);
    let bad = server.call(Method::GET, "/api/v1/stats?limit=0").await;
    expect_problem(
        bad,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        "limit",
    )
    .await;
}

#[tokio::test]
async fn the_list_is_searched_filtered_by_tag_and_ordered() {
    let server = TestServer::spawn(&[]);
    for (code, url, title, tags) in [
        (
            "first-one",
            "https://one.example/",
            "Spring sale",
            json!(["promo"]),
        ),
        (
            "second-one",
            "https://two.example/Docs",
            "Manual",
            json!(["docs"]),
        ),
        (
            "third-one",
            "https://three.example/",
            "Autumn SALE",
            json!(["promo", "print"]),
        ),
    ] {
        server
            .new_link(json!({"url": url, "code": code, "title": title, "tags": tags}))
            .await;
    }
    let codes =
        |v: Value| -> Vec<String> { v["items"].as_array().unwrap().iter().map(code_of).collect() };
    let list = |query: &'static str| {
        let server = &server;
        async move {
            let resp = server
                .call(Method::GET, &format!("/api/v1/links?{query}"))
                .await;
            expect_json(resp, StatusCode::OK, query).await
        }
    };
    assert_eq!(codes(list("q=sale").await), ["third-one", "first-one"]);
    assert_eq!(codes(list("q=DOCS").await), ["second-one"]);
    assert_eq!(
        codes(list("tag=promo&sort=oldest").await),
        ["first-one", "third-one"]
    );
    assert_eq!(
        codes(list("q=one&sort=oldest&limit=2").await),
        ["first-one", "second-one"]
    );
    let page = list("q=one&sort=oldest&limit=2").await;
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let rest = server
        .call(
            Method::GET,
            &format!("/api/v1/links?q=one&sort=oldest&limit=2&cursor={cursor}"),
        )
        .await;
    assert_eq!(
        codes(expect_json(rest, StatusCode::OK, "page 2").await),
        ["third-one"]
    );
    for (query, detail) in [
        ("sort=clicks", "sort: must be newest or oldest"),
        ("tag=%01", "tag: must be 1 to 64 printable characters"),
        ("q=a%00b", "q: must not contain the NUL character"),
    ] {
        let resp = server
            .call(Method::GET, &format!("/api/v1/links?{query}"))
            .await;
        let problem = expect_problem(
            resp,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            query,
        )
        .await;
        assert_eq!(problem["detail"], detail);
    }
    let long = "x".repeat(201);
    let resp = server
        .call(Method::GET, &format!("/api/v1/links?q={long}"))
        .await;
    expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "q").await;
}

#[tokio::test]
async fn assets_are_served_under_hashed_names_for_a_year() {
    let server = TestServer::spawn(&[]);
    let html = get_as(&server, "/ui/signin", None)
        .await
        .text()
        .await
        .unwrap();
    let mut served = 0;
    for part in html.split('"').filter(|p| p.starts_with("/ui/assets/")) {
        let resp = get_as(&server, part, None).await;
        assert_eq!(resp.status(), StatusCode::OK, "{part}");
        assert_eq!(
            header(&resp, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        served += 1;
    }
    assert!(
        served >= 3,
        "the stylesheet, the script and the icon: {html}"
    );
    let unknown = get_as(&server, "/ui/assets/app.0000000000.css", None).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

/// A link brought by an import shows the clicks its old shortener had counted beside its own.
#[tokio::test]
async fn a_link_page_shows_the_clicks_counted_before_an_import() {
    let server = TestServer::spawn(&[]);
    let imported = server
        .api(Method::POST, "/api/v1/import")
        .json(&json!({"links": [
            {"code": "old-one", "url": "https://example.com/old", "clicks": 1532},
            {"code": "new-one", "url": "https://example.com/new"}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(imported.status(), StatusCode::OK);
    let cookie = sign_in(&server, &server.admin_key).await;
    let page = get_page(&server, "/ui/links/old-one", &cookie).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("and 1532 counted before it was imported"),
        "{html}"
    );
    let page = get_page(&server, "/ui/links/new-one", &cookie).await;
    let html = page.text().await.unwrap();
    assert!(!html.contains("before it was imported"), "{html}");
}
