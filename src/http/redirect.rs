//! `GET|HEAD /{code}`: the redirect, the product's hot path, and the `/{code}+` preview page.
//!
//! A cache hit costs a shard lookup, an expiry comparison, an optional atomic for `max_clicks`
//! and a buffered click: no store I/O, no allocation for the answer (the `Location` value is
//! shared). A miss reads the store once and fills the cache (including "unknown" for a short
//! TTL). When the store is slow or gone, cached codes keep redirecting (redirects are AP: see
//! docs/architecture.md, "CAP choice per operation"); only uncached codes answer 503.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use super::{App, AppState};
use crate::cache::{Cached, Lookup};
use crate::clicks::Visit;
use crate::config::ClickMode;
use crate::domain::ShortCode;
use crate::domain::code::RESERVED;
use crate::domain::time::now;
use crate::store::StoreError;

pub fn router() -> Router<AppState> {
    Router::new().route("/{code}", get(redirect))
}

static CACHE_CONTROL: HeaderValue = HeaderValue::from_static("private, max-age=90");

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, text).into_response()
}

fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "not found\n")
}

fn gone() -> Response {
    plain(StatusCode::GONE, "gone\n")
}

fn unavailable(e: StoreError) -> Response {
    tracing::warn!(error = %e, "redirect could not reach the store");
    let mut r = plain(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable\n");
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// The cached answer for a code, reading the store on a miss.
async fn resolve(app: &AppState, code: &str) -> Result<Cached, StoreError> {
    match app.cache.lookup(code) {
        Some(Lookup::Fresh(hit)) => {
            app.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        Some(Lookup::Stale(hit)) => {
            app.cache_hits.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("snip_cache_reloads_total").increment(1);
            let (app, code) = (app.clone(), code.to_string());
            tokio::spawn(async move {
                if let Err(e) = load(&app, &code).await {
                    tracing::debug!(error = %e, code, "stale cache entry kept: reload failed");
                }
            });
            return Ok(hit);
        }
        None => {}
    }
    app.cache_misses.fetch_add(1, Ordering::Relaxed);
    load(app, code).await
}

/// Reads a code into the cache: from the shared cache if there is one and it has the code,
/// else from the store (and then shares it).
async fn load(app: &App, code: &str) -> Result<Cached, StoreError> {
    let generation = app.cache.generation();
    // A code written recently is read from the primary: Redis and the replicas may still
    // hold what it was before (the writer deletes the Redis entry only after its commit).
    let changed = app.cache.changed_recently(code);
    if !changed
        && let Some(shared) = &app.shared
        && let Some(answer) = shared.get(code).await
    {
        app.cache.fill(code, answer.clone(), generation);
        return Ok(answer);
    }
    let read = if changed {
        app.store.get_link_primary(code).await?
    } else {
        app.store.get_link(code).await?
    };
    let answer = match read {
        None => app.cache.missing(),
        Some(link) => {
            if let Some(shared) = &app.shared {
                shared.put(&link).await;
            }
            let live_and_limited = link.max_clicks.is_some() && !link.deleted && !link.disabled;
            let used = if live_and_limited {
                Some(
                    app.clicks
                        .limit_counter(app.store.as_ref(), link.id)
                        .await?,
                )
            } else {
                None
            };
            Cached::for_link(&link, used)
        }
    };
    app.cache.fill(code, answer.clone(), generation);
    Ok(answer)
}

/// Whether the fast path should answer this request: `GET`/`HEAD` of one path segment that
/// could be a code (or a preview) and is not a route of its own.
pub fn is_redirect_request(req: &Request) -> bool {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return false;
    }
    let Some(segment) = req.uri().path().strip_prefix('/') else {
        return false;
    };
    let code = segment.strip_suffix('+').unwrap_or(segment);
    ShortCode::could_be_code(code) && !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(code))
}

/// The redirect with its own request metrics and debug log (the fast path has no middleware).
pub async fn serve_observed(app: &AppState, req: Request, peer: IpAddr) -> Response {
    let start = Instant::now();
    let response = serve(app, req, peer).await;
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    crate::telemetry::latency::http("/{code}", status).record(elapsed);
    tracing::debug!(
        route = "/{code}",
        status,
        latency_us = elapsed.as_micros() as u64,
        "request"
    );
    response
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

/// The preview page, for the OpenAPI description.
#[utoipa::path(
    get,
    path = "/{code}+",
    tag = "redirects",
    params(("code" = String, Path, description = "The short code")),
    responses(
        (status = 200, description = "A page naming the destination, without going there", body = String,
         content_type = "text/html"),
        (status = 404, description = "No such code", body = String, content_type = "text/plain"),
        (status = 410, description = "Expired, used up, disabled, taken down (`taken_down`, with the reason) or refused by the deny list (`destination_denied`)",
         content((String = "text/plain"), (super::error::Problem = "application/problem+json"))),
        (status = 503, description = "The code is not cached and the store is unreachable", body = String,
         content_type = "text/plain", headers(("Retry-After" = u32))),
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
        return preview(app, code).await;
    }
    if !ShortCode::could_be_code(raw) {
        return not_found();
    }
    let target = match resolve(app, raw).await {
        Ok(Cached::Redirect(t)) if t.deny.denied(&app.deny, &t.host) => return denied(),
        Ok(Cached::Redirect(t)) => t,
        Ok(Cached::Gone) => return gone(),
        Ok(Cached::TakenDown(reason)) => return taken_down(&reason),
        Ok(Cached::Missing(_)) => {
            if app.click_mode() != ClickMode::Off {
                app.clicks.buffer.record_unknown(raw);
            }
            return not_found();
        }
        Err(e) => return unavailable(e),
    };
    let at = now();
    if target.expires_at.is_some_and(|e| e <= at) {
        return gone();
    }
    let counts = req.method() == Method::GET;
    if let (Some(max), Some(used)) = (target.max_clicks, &target.used) {
        let allowed = if counts {
            used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u < max).then_some(u + 1)
            })
            .is_ok()
        } else {
            used.load(Ordering::Acquire) < max
        };
        if !allowed {
            return gone();
        }
    }
    let mode = app.click_mode();
    // With `--click-mode off`, only clicks that a `max_clicks` limit depends on are kept.
    if counts && (mode != ClickMode::Off || target.max_clicks.is_some()) {
        let seen = app.analytics.observe(peer, req.headers());
        let visit = Visit {
            ua: &seen.ua,
            referrer: seen.referrer.as_ref(),
            country: seen.country,
            visitor: seen.visitor,
        };
        if mode == ClickMode::Exact {
            let recorded = app
                .clicks
                .record_exact(app.store.as_ref(), target.link_id, at, &visit)
                .await;
            if let Err(e) = recorded {
                if let Some(used) = &target.used {
                    used.fetch_sub(1, Ordering::AcqRel);
                }
                return unavailable(e);
            }
        } else {
            app.clicks.buffer.record(target.link_id, at, &visit);
        }
    }
    let mut response = Response::new(Body::empty());
    *response.status_mut() = app.redirect_status;
    let h = response.headers_mut();
    h.insert(header::LOCATION, target.location.clone());
    h.insert(header::CACHE_CONTROL, CACHE_CONTROL.clone());
    if let Some(policy) = &app.redirect_referrer_policy {
        h.insert(header::REFERRER_POLICY, policy.clone());
    }
    response
}

/// A link whose destination is on the deny list: 410, with a problem document saying why.
fn denied() -> Response {
    metrics::counter!("snip_denied_destinations_total", "at" => "redirect").increment(1);
    gone_because(
        "this link's destination is blocked by the operator of this service",
        "destination_denied",
    )
}

/// A link an admin took down: 410, with the reason.
fn taken_down(reason: &str) -> Response {
    gone_because(
        &format!("this link was taken down by the operator of this service: {reason}"),
        "taken_down",
    )
}

fn gone_because(detail: &str, code: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": "Gone",
        "status": 410,
        "detail": detail,
        "code": code,
    });
    let mut response = (StatusCode::GONE, body.to_string()).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
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
    // The same answer as the redirect (cache first, so it works while the store is down)...
    let target = match resolve(app, code).await {
        Ok(Cached::Redirect(t)) if t.deny.denied(&app.deny, &t.host) => return denied(),
        Ok(Cached::Redirect(t)) => t,
        Ok(Cached::Gone) => return gone(),
        Ok(Cached::TakenDown(reason)) => return taken_down(&reason),
        Ok(Cached::Missing(_)) => return not_found(),
        Err(e) => return unavailable(e),
    };
    let used_up = target
        .max_clicks
        .zip(target.used.as_ref())
        .is_some_and(|(max, used)| used.load(Ordering::Acquire) >= max);
    if used_up || target.expires_at.is_some_and(|e| e <= now()) {
        return gone();
    }
    // ...and the title, best effort: the page still renders without it.
    let title = match app.store.get_link(code).await {
        Ok(Some(link)) => link.title,
        _ => None,
    };
    let url = target.location.to_str().unwrap_or_default();
    let esc = |s: &str| html_escape::encode_quoted_attribute(s).into_owned();
    let title = title.as_deref().map(esc);
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"robots\" content=\"noindex\">\
         <title>Preview of {short}</title></head>\n<body>\n\
         <h1>{heading}</h1>\n<p>{short} redirects to:</p>\n<p><code>{url}</code></p>\n\
         <p><a href=\"{url}\" rel=\"noopener noreferrer nofollow\">Continue to the destination</a></p>\n\
         </body></html>\n",
        short = esc(&app.short_url(code)),
        heading = title.unwrap_or_else(|| "Link preview".into()),
        url = esc(url),
    );
    let mut response = Html(page).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not framed (clickjacking), and the preview's own URL is not sent to the destination.
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
