//! `GET|HEAD /{code}`: the redirect, the product's hot path, and the `/{code}+` preview page.
//!
//! A cache hit costs a lookup (in the worker thread's front of the cache for a link it
//! redirects again and again, else a shard of the cache), an expiry comparison, an optional
//! atomic for `max_clicks` and a buffered click: no store I/O and no await; the `Location`
//! value comes with the cached target and is moved into the response. A miss
//! reads the store once and fills the cache (including "unknown" for a short TTL). When the
//! store is slow or gone, cached codes keep redirecting (redirects are AP: see
//! docs/architecture.md, "CAP choice per operation"); only uncached codes answer 503.

use quanta::Instant;
use std::net::{IpAddr, Ipv4Addr};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::error::Problem;
use crate::domain::ShortCode;
use crate::domain::code::is_reserved;
use crate::service::redirect::{self, Outcome};

pub fn router() -> Router<AppState> {
    Router::new().route("/{code}", get(redirect))
}

static CACHE_CONTROL: HeaderValue = HeaderValue::from_static("private, max-age=90");

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, text).into_response()
}

#[cold]
#[inline(never)]
fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "not found\n")
}

#[cold]
#[inline(never)]
fn gone() -> Response {
    plain(StatusCode::GONE, "gone\n")
}

#[cold]
#[inline(never)]
fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "redirect could not reach the store");
    let mut r = plain(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable\n");
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// The path segment of a request shaped like a redirect: `GET`/`HEAD` of one segment that
/// could be a code (or a preview: the code and a `+`). It may still be a route of its own
/// ([`is_route`]), which only a request the cache did not answer needs to ask.
pub fn redirect_segment<B>(req: &axum::http::Request<B>) -> Option<&str> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return None;
    }
    let segment = req.uri().path().strip_prefix('/')?;
    let code = segment.strip_suffix('+').unwrap_or(segment);
    ShortCode::could_be_code(code).then_some(segment)
}

/// Whether a redirect-shaped `segment` names a route (`/health`, `/metrics`, …: the reserved
/// words) rather than a code.
pub fn is_route(segment: &str) -> bool {
    is_reserved(segment.strip_suffix('+').unwrap_or(segment))
}

/// The redirect of a cached code (`segment`, from [`redirect_segment`]), answered without an
/// await (and so without a future), with its own request metrics and debug log; None when it
/// needs [`serve_observed`] (a miss, a preview, `--click-mode exact`); a route is always a
/// miss, as the cache never holds a reserved word (`RedirectCache::fill`).
pub fn serve_cached<B>(
    app: &AppState,
    req: &axum::http::Request<B>,
    segment: &str,
    peer: IpAddr,
) -> Option<Response> {
    let start = Instant::now();
    if segment.ends_with('+') {
        return None;
    }
    let counts = req.method() == Method::GET;
    let outcome = redirect::follow_cached(app, segment, counts, peer, req.headers())?;
    let response = respond(app, outcome);
    observed(start, &response);
    Some(response)
}

/// The redirect with its own request metrics and debug log (the fast path has no middleware).
pub async fn serve_observed(app: &AppState, req: Request, peer: IpAddr) -> Response {
    let start = Instant::now();
    let response = serve(app, req, peer).await;
    observed(start, &response);
    response
}

/// Records a redirect's metrics and debug log.
fn observed(start: Instant, response: &Response) {
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    crate::telemetry::latency::record_http("/{code}", status, elapsed);
    tracing::debug!(
        route = "/{code}",
        status,
        latency_us = elapsed.as_micros() as u64,
        "request"
    );
}

/// The redirect, for the OpenAPI description (served by [`serve_observed`] before routing).
#[utoipa::path(
    method(get, head),
    path = "/{code}",
    tag = "redirects",
    params(("code" = String, Path, description = "The short code")),
    responses(
        (status = "3XX", description = "To the destination (`--redirect-status`, 302 by default)",
         headers(("Location" = String, description = "The destination"))),
        (status = 404, description = "No such code", body = String, content_type = "text/plain"),
        (status = 410, description = "Expired, used up, disabled, taken down (`taken_down`, with the reason) or refused by the deny list (`destination_denied`)",
         content((String = "text/plain"), (super::error::Problem = "application/problem+json"))),
        (status = 503, description = "The code is not cached and the store is unreachable", body = String,
         content_type = "text/plain", headers(("Retry-After" = u32))),
    )
)]
#[allow(dead_code)]
pub(super) fn redirect_doc() {}

/// The preview page, for the OpenAPI description; it fails as the redirect does (the
/// redirect's 404, 410 and 503 are copied here by `openapi::Conventions`).
#[utoipa::path(
    get,
    path = "/{code}+",
    tag = "redirects",
    params(("code" = String, Path, description = "The short code")),
    responses(
        (status = 200, description = "A page naming the destination, without going there", body = String,
         content_type = "text/html"),
    )
)]
#[allow(dead_code)]
pub(super) fn preview_doc() {}

/// Reached only by paths the fast path declined (they cannot be codes): always a 404.
async fn redirect(State(app): State<AppState>, req: Request) -> Response {
    serve(&app, req, IpAddr::V4(Ipv4Addr::UNSPECIFIED)).await
}

async fn serve(app: &AppState, req: Request, peer: IpAddr) -> Response {
    let raw = req.uri().path().strip_prefix('/').unwrap_or_default();
    if let Some(code) = raw.strip_suffix('+') {
        return Box::pin(preview(app, code)).await;
    }
    if !ShortCode::could_be_code(raw) {
        return not_found();
    }
    let counts = req.method() == Method::GET;
    let outcome = redirect::follow(app, raw, counts, peer, req.headers()).await;
    respond(app, outcome)
}

/// The response for a redirect's outcome.
fn respond(app: &AppState, outcome: Outcome) -> Response {
    let target = match outcome {
        Outcome::Redirect(target) => target,
        Outcome::Missing => return not_found(),
        Outcome::Gone => return gone(),
        Outcome::TakenDown(reason) => return taken_down(&reason),
        Outcome::Denied => return denied(),
        Outcome::Unavailable(e) => return unavailable(e),
    };
    let mut response = Response::new(Body::empty());
    *response.status_mut() = app.redirect_status;
    let h = response.headers_mut();
    h.insert(header::LOCATION, target.into_location());
    h.insert(header::CACHE_CONTROL, CACHE_CONTROL.clone());
    if let Some(policy) = &app.redirect_referrer_policy {
        h.insert(header::REFERRER_POLICY, policy.clone());
    }
    response
}

/// A link whose destination is on the deny list: 410, with a problem document saying why.
#[cold]
#[inline(never)]
fn denied() -> Response {
    metrics::counter!("snip_denied_destinations_total", "at" => "redirect").increment(1);
    gone_because(
        "this link's destination is blocked by the operator of this service",
        "destination_denied",
    )
}

/// A link an admin took down: 410, with the reason.
#[cold]
#[inline(never)]
fn taken_down(reason: &str) -> Response {
    gone_because(
        &format!("this link was taken down by the operator of this service: {reason}"),
        "taken_down",
    )
}

#[cold]
#[inline(never)]
fn gone_because(detail: &str, code: &'static str) -> Response {
    let mut response = Problem::new(StatusCode::GONE, code, detail.to_string()).response();
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `/{code}+`: shows where a link goes without going there. Every user-supplied value is
/// HTML-escaped and the page may load nothing (CSP), so a hostile URL or title stays text.
async fn preview(app: &AppState, code: &str) -> Response {
    if !ShortCode::could_be_code(code) {
        return not_found();
    }
    let (target, title) = match redirect::preview(app, code).await {
        Ok(found) => found,
        Err(Outcome::Missing | Outcome::Redirect(_)) => return not_found(),
        Err(Outcome::Gone) => return gone(),
        Err(Outcome::TakenDown(reason)) => return taken_down(&reason),
        Err(Outcome::Denied) => return denied(),
        Err(Outcome::Unavailable(e)) => return unavailable(e),
    };
    let url = target.url();
    // Every value is escaped by the template; the preview's own URL is not sent to the
    // destination (`html_page`'s Referrer-Policy).
    let mut response = super::ui::preview_page(&app.short_url(code), title.as_deref(), url);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
