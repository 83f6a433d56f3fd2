//! The machine-readable contract: an OpenAPI 3.1 description generated from the handlers'
//! `#[utoipa::path]` annotations and the JSON types' `ToSchema` derives, served at
//! `GET /api/openapi.json`, and rendered as a reference page at `GET /api/docs` (server-side,
//! no script, nothing loaded from another origin).
//!
//! The error answers every API operation can give (problem+json) are added here once rather
//! than on each handler; docs/api.md is the prose contract and `tests/docs.rs` checks that
//! both list the same operations.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::AppState;
use super::views::html_page;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "snip",
        description = "A URL shortener: short links, fast redirects, click statistics. \
                       The prose contract, with every rule and limit, is docs/api.md.",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(
        super::redirect::redirect_doc,
        super::redirect::preview_doc,
        super::links::create,
        super::links::list,
        super::links::read,
        super::links::update,
        super::links::remove,
        super::links::take_down,
        super::links::lift_takedown,
        super::import::import,
        super::stats::stats,
        super::stats::stats_csv,
        super::stats::overview,
        super::stats::unknown,
        super::qr::qr,
        super::keys::create,
        super::keys::list,
        super::keys::revoke,
        super::admin::list,
        super::admin::reload,
        super::health::health,
        super::health::live_doc,
        super::health::ready,
        super::health::metrics,
        spec,
        reference,
    ),
    components(schemas(super::error::Problem)),
    modifiers(&Conventions),
    tags(
        (name = "redirects", description = "Short URLs: the redirect and its preview page"),
        (name = "links", description = "Creating and managing links"),
        (name = "statistics", description = "Click statistics"),
        (name = "keys", description = "API keys (admin)"),
        (name = "deny list", description = "Destinations this service refuses (admin)"),
        (name = "operations", description = "Health and metrics"),
    )
)]
struct ApiDoc;

/// The bearer security scheme, and the problem answers every API operation may give.
struct Conventions;

/// Answers any `/api/v1` operation may give, with when.
const COMMON_PROBLEMS: &[(u16, &str)] = &[
    (
        400,
        "Malformed request: bad JSON or query string (`bad_request`)",
    ),
    (401, "No valid API key (`unauthorized`)"),
    (403, "This key's role does not allow this (`forbidden`)"),
    (404, "No such resource, or not this key's (`not_found`)"),
    (
        422,
        "A field is invalid (`invalid_url`, `invalid_code`, `invalid_field`, `destination_denied`, …)",
    ),
    (
        429,
        "Rate limited (`rate_limited`) or too many failed authentications (`auth_throttled`)",
    ),
    (
        503,
        "The store could not confirm the request, or a worker pool is busy (`unavailable`)",
    ),
];

/// Further answers of operations that take a JSON body.
const BODY_PROBLEMS: &[(u16, &str)] = &[
    (
        408,
        "The body did not arrive within `--request-body-timeout` (`request_timeout`)",
    ),
    (413, "The body is larger than 64 KiB (`payload_too_large`)"),
    (
        415,
        "The body is not `application/json` (`unsupported_media_type`)",
    ),
];

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key: `Authorization: Bearer snip_…`"))
                    .build(),
            ),
        );
        // The preview fails as the redirect does.
        let redirect_failures: Vec<_> = openapi
            .paths
            .paths
            .get("/{code}")
            .and_then(|item| item.get.as_ref())
            .map(|op| {
                op.responses
                    .responses
                    .iter()
                    .filter(|(status, _)| !status.starts_with('2') && !status.starts_with('3'))
                    .map(|(status, response)| (status.clone(), response.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(preview) = openapi
            .paths
            .paths
            .get_mut("/{code}+")
            .and_then(|item| item.get.as_mut())
        {
            preview.responses.responses.extend(redirect_failures);
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/v1/") {
                continue;
            }
            for operation in operations(item) {
                let with_body = operation.request_body.is_some();
                let extra = if with_body { BODY_PROBLEMS } else { &[] };
                for (status, description) in COMMON_PROBLEMS.iter().chain(extra) {
                    let status = status.to_string();
                    if operation.responses.responses.contains_key(&status) {
                        continue;
                    }
                    operation
                        .responses
                        .responses
                        .insert(status, problem(description).into());
                }
            }
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn problem(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

/// The OpenAPI document as JSON (built once).
pub fn spec_json() -> &'static str {
    static SPEC: OnceLock<String> = OnceLock::new();
    SPEC.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_string();
        doc.to_pretty_json()
            .expect("the OpenAPI document serializes")
    })
}

/// `GET /api/openapi.json` and `GET /api/docs` (anonymous: the contract is public).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/openapi.json", get(spec))
        .route("/api/docs", get(reference))
        .route("/api/docs.css", get(stylesheet))
}

async fn stylesheet() -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/css"),
        (header::CACHE_CONTROL, "public, max-age=3600"),
    ];
    (headers, STYLE).into_response()
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object,
               content_type = "application/json")),
)]
async fn spec() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], spec_json()).into_response()
}

/// This document as a reference page.
#[utoipa::path(
    get,
    path = "/api/docs",
    tag = "operations",
    responses((status = 200, description = "An HTML page", body = String, content_type = "text/html")),
)]
async fn reference() -> Response {
    static PAGE: OnceLock<String> = OnceLock::new();
    let page = PAGE.get_or_init(|| {
        let doc: serde_json::Value =
            serde_json::from_str(spec_json()).expect("the OpenAPI document is JSON");
        render_reference(&doc)
    });
    html_page(
        page.as_str(),
        "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    )
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}\
code,pre{font:13px ui-monospace,monospace;background:#f3f3f3;padding:0 .2em}\
pre{padding:.6em;overflow-x:auto}h2{border-bottom:1px solid #ccc;margin-top:2.5rem}\
h3{margin-bottom:.2rem}.m{display:inline-block;min-width:4.2em;font-weight:700}\
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}";

fn esc(s: &str) -> String {
    html_escape::encode_text(s).into_owned()
}

/// The reference page: operations by tag, each with its parameters, body and answers, then
/// the schemas. Everything comes from the OpenAPI document, HTML-escaped.
fn render_reference(doc: &serde_json::Value) -> String {
    let mut by_tag: BTreeMap<String, Vec<(String, String, &serde_json::Value)>> = BTreeMap::new();
    let tag_order: Vec<String> = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in ["get", "head", "post", "patch", "put", "delete"] {
            if let Some(op) = item.get(method) {
                let tag = op["tags"][0].as_str().unwrap_or("other").to_string();
                by_tag
                    .entry(tag)
                    .or_default()
                    .push((method.to_uppercase(), path.clone(), op));
            }
        }
    }
    let mut out = String::new();
    render_header(&mut out, doc);
    for tag in tag_order.iter().chain(
        by_tag
            .keys()
            .filter(|k| !tag_order.contains(k))
            .collect::<Vec<_>>(),
    ) {
        let Some(ops) = by_tag.get(tag) else { continue };
        let _ = writeln!(out, "<h2>{}</h2>", esc(tag));
        for (method, path, op) in ops {
            render_operation(&mut out, method, path, op);
        }
    }
    out.push_str("<h2>Schemas</h2>\n");
    for (name, schema) in doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            out,
            "<h3 id=\"schema-{0}\">{0}</h3>\n<pre>{1}</pre>",
            esc(name),
            esc(&serde_json::to_string_pretty(schema).unwrap_or_default())
        );
    }
    out.push_str("</body></html>\n");
    out
}

/// The page's head and introduction.
fn render_header(out: &mut String, doc: &serde_json::Value) {
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>snip API reference</title>\
         <link rel=\"stylesheet\" href=\"/api/docs.css\"></head><body>\n\
         <h1>snip API reference</h1>\n<p>{}</p>\n\
         <p>OpenAPI {} document: <a href=\"/api/openapi.json\">/api/openapi.json</a>. \
         Version {}.</p>\n",
        esc(doc["info"]["description"].as_str().unwrap_or_default()),
        esc(doc["openapi"].as_str().unwrap_or_default()),
        esc(doc["info"]["version"].as_str().unwrap_or_default()),
    );
}

fn render_operation(out: &mut String, method: &str, path: &str, op: &serde_json::Value) {
    let _ = writeln!(
        out,
        "<h3><span class=\"m\">{}</span> <code>{}</code></h3>",
        esc(method),
        esc(path)
    );
    if let Some(summary) = op["summary"].as_str() {
        let _ = writeln!(out, "<p>{}</p>", esc(summary));
    }
    if let Some(description) = op["description"].as_str() {
        let _ = writeln!(out, "<p>{}</p>", esc(description));
    }
    let auth = match op["security"].as_array() {
        None => "none",
        Some(s)
            if s.iter()
                .any(|r| r.as_object().is_some_and(|o| o.is_empty())) =>
        {
            "optional API key"
        }
        Some(_) => "API key",
    };
    let _ = writeln!(out, "<p>Authentication: {auth}.</p>");
    render_parameters(out, op);
    if let Some(body) = op["requestBody"]["content"].as_object() {
        for (media, content) in body {
            let _ = writeln!(
                out,
                "<p>Body ({}): {}</p>",
                esc(media),
                schema_link(&content["schema"])
            );
        }
    }
    render_responses(out, op);
}

fn render_parameters(out: &mut String, op: &serde_json::Value) {
    if let Some(params) = op["parameters"].as_array() {
        out.push_str("<table><tr><th>parameter</th><th>in</th><th>schema</th><th>what</th></tr>\n");
        for p in params {
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                esc(p["name"].as_str().unwrap_or_default()),
                if p["required"] == true {
                    " (required)"
                } else {
                    ""
                },
                esc(p["in"].as_str().unwrap_or_default()),
                esc(&p["schema"].to_string()),
                esc(p["description"].as_str().unwrap_or_default()),
            );
        }
        out.push_str("</table>\n");
    }
}

fn render_responses(out: &mut String, op: &serde_json::Value) {
    out.push_str("<table><tr><th>status</th><th>what</th><th>body</th></tr>\n");
    for (status, response) in op["responses"].as_object().into_iter().flatten() {
        let bodies: Vec<String> = response["content"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(media, c)| format!("{} {}", esc(media), schema_link(&c["schema"])))
            .collect();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(status),
            esc(response["description"].as_str().unwrap_or_default()),
            bodies.join("<br>")
        );
    }
    out.push_str("</table>\n");
}

/// A link to a referenced schema, or the inline schema as code.
fn schema_link(schema: &serde_json::Value) -> String {
    match schema["$ref"].as_str().and_then(|r| r.rsplit('/').next()) {
        Some(name) => format!("<a href=\"#schema-{0}\">{0}</a>", esc(name)),
        None => format!("<code>{}</code>", esc(&schema.to_string())),
    }
}
