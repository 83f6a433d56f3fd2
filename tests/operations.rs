//! Running the server: health, metrics, the generated admin key, configuration layering.
//! docs/api.md, "Operations"; docs/configuration.md.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{self, TestServer, code_of, expect_json, header, poll_for};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn health_reports_the_database_and_the_other_checks() {
    let server = TestServer::spawn(&[]);

    let resp = server.call(Method::GET, "/health").await;

    let health = expect_json(resp, StatusCode::OK, "GET /health with the admin key").await;
    assert!(
        matches!(health["status"].as_str(), Some("healthy" | "degraded")),
        "status: {health}"
    );
    assert!(health.get("timestamp").is_some(), "timestamp: {health}");
    let checks = &health["checks"];
    assert_eq!(checks["database"]["healthy"], true, "{health}");
    assert!(checks["database"]["latency_ms"].is_number(), "{health}");
    for check in ["disk", "memory", "clicks", "cache"] {
        assert!(checks[check].is_object(), "checks.{check}: {health}");
    }
}

#[tokio::test]
async fn anonymous_health_shows_verdicts_only_and_user_keys_see_no_more() {
    let server = TestServer::spawn(&[]);
    let user = server.create_key("user").await;
    let anonymous = server
        .client
        .get(server.url("/health"))
        .send()
        .await
        .unwrap();
    let as_user = server
        .api_as(&user, Method::GET, "/health")
        .send()
        .await
        .unwrap();
    for (who, resp) in [("anonymous", anonymous), ("user key", as_user)] {
        let health = expect_json(resp, StatusCode::OK, who).await;
        assert!(health["status"].is_string(), "{who}: {health}");
        let checks = health["checks"].as_object().unwrap();
        for check in ["database", "disk", "memory", "clicks", "cache"] {
            assert_eq!(
                checks[check]
                    .as_object()
                    .map(|c| c.keys().collect::<Vec<_>>()),
                Some(vec![&"healthy".to_string()]),
                "{who}: checks.{check} shows more than its verdict: {health}"
            );
        }
        let text = health.to_string();
        assert!(
            !text.contains(&server.dir.path().display().to_string()),
            "{who}: the data directory is shown: {text}"
        );
    }
    let wrong = server
        .api_as(
            "snip_wrongwrongwrongwrongwrongwrong",
            Method::GET,
            "/health",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn liveness_and_readiness_answer_200() {
    let server = TestServer::spawn(&[]);

    let live = server
        .client
        .get(server.url("/health/live"))
        .send()
        .await
        .unwrap();
    let ready = server
        .client
        .get(server.url("/health/ready"))
        .send()
        .await
        .unwrap();

    assert_eq!(live.status(), StatusCode::OK);
    assert_eq!(ready.status(), StatusCode::OK);
}

#[tokio::test]
async fn metrics_expose_snip_series_in_prometheus_text() {
    let server = TestServer::spawn(&[]);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/m"}))
            .await,
    );
    for _ in 0..3 {
        assert_eq!(server.visit(&code).await.status(), StatusCode::FOUND);
    }

    let resp = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = header(&resp, "content-type");
    assert!(
        content_type.starts_with("text/plain"),
        "content-type {content_type:?}"
    );
    let text = resp.text().await.unwrap();
    for name in [
        "snip_http_requests_total",
        "snip_cache_hits_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
        "snip_build_info{version=",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}:\n{text}");
    }
}

/// Every series has its `# HELP` and passes the Prometheus linter (`promtool check metrics`,
/// from Debian's `prometheus` package, which scripts/test.sh installs).
#[tokio::test]
async fn metrics_pass_the_prometheus_linter() {
    let Some(promtool) = common::required_tool("promtool", "prometheus") else {
        return;
    };
    let server = TestServer::spawn(&[]);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/lint"}))
            .await,
    );
    assert_eq!(server.visit(&code).await.status(), StatusCode::FOUND);
    assert_eq!(
        server.visit("nosuchcode").await.status(),
        StatusCode::NOT_FOUND
    );
    let bad_key = server
        .client
        .get(server.url("/api/v1/links"))
        .bearer_auth("snip_not_a_key_of_this_server_0000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), StatusCode::UNAUTHORIZED);
    // After a click flush, so that the flush series are there too.
    let text = poll_for(
        "a click flush in /metrics",
        Duration::from_secs(10),
        || async {
            let resp = server.client.get(server.url("/metrics")).send().await;
            resp.unwrap().text().await.unwrap()
        },
        |text| text.contains("snip_clicks_flushed_total 1"),
    )
    .await;

    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool starts");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics: {report}\nfor:\n{text}"
    );
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| text.contains(&format!("# TYPE {f} histogram")))
            })
            .unwrap_or(name);
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family} has no # HELP:\n{text}"
        );
    }
}

/// The `snip_…` key printed after "admin API key: " in one of `lines`, if any.
fn printed_admin_key(lines: &[String]) -> Option<String> {
    const MARKER: &str = "admin API key: ";
    lines.iter().find_map(|line| {
        let pos = line.find(MARKER)?;
        Some(
            line[pos + MARKER.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect(),
        )
    })
}

#[tokio::test]
async fn without_an_admin_key_the_first_start_prints_one_and_a_restart_does_not() {
    let mut first = TestServer::builder().no_admin_key().start();
    // Printed before the listening line, but stderr is read by a thread of its own: polled.
    let line = first
        .wait_for_stderr("admin API key: ", Duration::from_secs(5))
        .await;
    let key = printed_admin_key(&[line]).unwrap();
    assert!(key.starts_with("snip_"), "key {key:?}");
    assert!(
        key.len() > "snip_".len() + 15
            && key["snip_".len()..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric()),
        "snip_ followed by base62: {key:?}"
    );
    let as_admin = first
        .api_as(&key, Method::POST, "/api/v1/keys")
        .json(&json!({"name": "made with the printed key", "role": "user"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        as_admin.status(),
        StatusCode::CREATED,
        "the printed key is an admin key"
    );
    first.sigterm();

    let mut second = TestServer::builder()
        .dir(Arc::clone(&first.dir))
        .no_admin_key()
        .start();
    let still_works = second
        .api_as(&key, Method::GET, "/api/v1/keys")
        .send()
        .await
        .unwrap();
    second.assert_alive().await;

    assert_eq!(
        still_works.status(),
        StatusCode::OK,
        "the first key survives a restart"
    );
    // That a line never appears: checked on all of stderr, once the server has exited.
    second.sigterm();
    let stderr = second.stderr_after_exit();
    assert_eq!(
        printed_admin_key(&stderr),
        None,
        "a restart on a database with keys must not print a new key:\n{}",
        stderr.join("\n")
    );
}

#[tokio::test]
async fn the_admin_key_flag_is_honoured_and_its_secret_is_not_logged() {
    let mut server = TestServer::spawn(&[]);

    let resp = server.call(Method::GET, "/api/v1/keys").await;
    server.assert_alive().await;

    assert_eq!(resp.status(), StatusCode::OK);
    // That the secret is never logged: checked on all of stderr, once the server has exited.
    server.sigterm();
    let stderr = server.stderr_after_exit();
    let log = stderr.join("\n");
    assert!(
        !log.contains(&server.admin_key),
        "the admin key appears in the logs"
    );
    assert_eq!(printed_admin_key(&stderr), None);
}

#[tokio::test]
async fn environment_variables_configure_the_server_and_flags_win() {
    let env_only = TestServer::builder()
        .env("SNIP_BASE_URL", "http://from-env.example")
        .start();
    let both = TestServer::builder()
        .env("SNIP_BASE_URL", "http://from-env.example")
        .args(&["--base-url", "http://from-flag.example"])
        .start();

    let env_link = env_only
        .new_link(json!({"url": "https://example.com/"}))
        .await;
    let flag_link = both.new_link(json!({"url": "https://example.com/"})).await;

    assert_eq!(
        env_link["short_url"],
        format!("http://from-env.example/{}", code_of(&env_link))
    );
    assert_eq!(
        flag_link["short_url"],
        format!("http://from-flag.example/{}", code_of(&flag_link))
    );
}

#[tokio::test]
async fn a_relative_sqlite_path_is_created_with_its_directory() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let server = TestServer::builder()
        .dir(Arc::clone(&dir))
        .database("sqlite://data/nested/snip.db")
        .start();

    let link = server
        .new_link(json!({"url": "https://example.com/"}))
        .await;

    assert!(code_of(&link).len() == 7);
    assert!(
        dir.path().join("data/nested/snip.db").exists(),
        "the database file is created relative to the working directory"
    );
}

#[tokio::test]
async fn the_cache_can_be_disabled_without_changing_redirects() {
    let server = TestServer::spawn(&["--cache-capacity", "0", "--negative-cache-ttl", "5s"]);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/nc"}))
            .await,
    );

    let first = server.visit(&code).await;
    let patch = server
        .patch_link(&code, json!({"url": "https://example.com/nc2"}))
        .await;
    assert_eq!(patch.status(), StatusCode::OK);
    let second = server.visit(&code).await;

    assert_eq!(header(&first, "location"), "https://example.com/nc");
    assert_eq!(header(&second, "location"), "https://example.com/nc2");
}

#[tokio::test]
async fn a_code_created_after_a_404_redirects_despite_the_negative_cache() {
    let server = TestServer::spawn(&["--negative-cache-ttl", "5s"]);
    assert_eq!(server.visit("later1").await.status(), StatusCode::NOT_FOUND);

    server
        .new_link(json!({"url": "https://example.com/later", "code": "later1"}))
        .await;
    let resp = server.visit("later1").await;

    assert_eq!(
        resp.status(),
        StatusCode::FOUND,
        "a created code must not stay negatively cached"
    );
    assert_eq!(header(&resp, "location"), "https://example.com/later");
}

#[tokio::test]
async fn a_config_file_sets_values_that_environment_variables_override() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = dir.path().join("snip.toml");
    std::fs::write(
        &config,
        "base-url = \"http://from-file.example\"\nredirect-status = 307\n",
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let file_only = TestServer::builder()
        .dir(Arc::clone(&dir))
        .args(&["--config", &config])
        .start();
    let file_and_env = TestServer::builder()
        .env("SNIP_CONFIG", &config)
        .env("SNIP_BASE_URL", "http://from-env.example")
        .start();

    let file_link = file_only
        .new_link(json!({"url": "https://example.com/"}))
        .await;
    let env_link = file_and_env
        .new_link(json!({"url": "https://example.com/"}))
        .await;
    let redirect = file_only.visit(&code_of(&file_link)).await;

    assert_eq!(
        file_link["short_url"],
        format!("http://from-file.example/{}", code_of(&file_link))
    );
    assert_eq!(
        redirect.status().as_u16(),
        307,
        "redirect-status from the file"
    );
    assert_eq!(
        env_link["short_url"],
        format!("http://from-env.example/{}", code_of(&env_link))
    );
}

#[tokio::test]
async fn an_admin_listener_serves_health_details_and_metrics_which_leave_the_public_one() {
    let server = TestServer::spawn(&["--admin-listen", "127.0.0.1:0"]);
    let admin = server.admin_addr.expect("an admin listener line");
    assert_ne!(admin, server.addr);
    let client = &server.client;

    // On the admin listener: details without a key, metrics, probes.
    let health = client
        .get(format!("http://{admin}/health"))
        .send()
        .await
        .unwrap();
    let health = expect_json(health, StatusCode::OK, "admin /health").await;
    assert!(
        health["checks"]["database"]["latency_ms"].is_number(),
        "{health}"
    );
    // The disk check's details: its path on SQLite, a note on PostgreSQL.
    assert!(
        health["checks"]["disk"].as_object().unwrap().len() > 1,
        "{health}"
    );
    let metrics = client
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(metrics.text().await.unwrap().contains("snip_"));
    for probe in ["/health/live", "/health/ready"] {
        let resp = client
            .get(format!("http://{admin}{probe}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{probe}");
    }
    // The admin listener serves nothing else: no API, no redirects.
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/adm"}))
            .await,
    );
    for path in [format!("/{code}"), "/api/v1/links".to_string()] {
        let resp = client
            .get(format!("http://{admin}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    }

    // On the public listener: /metrics is gone, /health shows verdicts only.
    let public_metrics = client.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(public_metrics.status(), StatusCode::NOT_FOUND);
    let public = client.get(server.url("/health")).send().await.unwrap();
    let public = expect_json(public, StatusCode::OK, "public /health").await;
    assert!(
        public["checks"]["database"].get("latency_ms").is_none(),
        "{public}"
    );
    assert_eq!(server.visit(&code).await.status(), StatusCode::FOUND);

    // (A bad address is a bad flag: tests/first_start.rs.)
}

/// The OpenAPI document and its reference page are served, without a key, and the page loads
/// nothing from anywhere else.
#[tokio::test]
async fn the_openapi_document_and_its_reference_page_are_served() {
    let server = TestServer::spawn(&[]);
    let resp = server
        .client
        .get(server.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-type"), "application/json");
    let spec: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    assert_eq!(spec["info"]["version"], env!("CARGO_PKG_VERSION"));
    let paths = spec["paths"].as_object().expect("paths");
    assert!(paths.contains_key("/api/v1/links/{code}"), "{paths:?}");
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // The problem answers are declared on every API operation.
    let create = &spec["paths"]["/api/v1/links"]["post"]["responses"];
    for status in ["201", "401", "409", "413", "422", "503"] {
        assert!(
            create.get(status).is_some(),
            "POST /api/v1/links lacks {status}: {create}"
        );
    }

    let page = server
        .client
        .get(server.url("/api/docs"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = header(&page, "content-security-policy");
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(!csp.contains("http") && !csp.contains('*'), "{csp}");
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script"), "the page runs a script");
    for attr in ["src=\"", "href=\""] {
        for value in html.split(attr).skip(1) {
            let value = value.split('"').next().unwrap();
            assert!(
                value.starts_with('/') || value.starts_with('#'),
                "{attr}{value}\" leaves this origin"
            );
        }
    }
    for path in paths.keys() {
        let shown = path.replace('&', "&amp;");
        assert!(
            html.contains(&format!("<code>{shown}</code>")),
            "{path} not on the page"
        );
    }
    let css = server
        .client
        .get(server.url("/api/docs.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(header(&css, "content-type"), "text/css");
}
