//! Request extractors of the API: the authenticated caller (with its rate limit), JSON bodies
//! with our size and media-type rules, and query strings parsed without surprises.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use crate::domain::Role;
use crate::domain::key::{ApiKey, Scope};
use crate::service::keys::{self, AuthError};

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 * 1024;

/// The API key that made the request (authenticated and within its rate limit).
pub struct Caller(pub ApiKey);

impl Caller {
    /// The links this caller may see and change.
    pub fn scope(&self) -> Scope {
        Scope::of(self.0.role, self.0.row_id)
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.0.role {
            Role::Admin => Ok(()),
            Role::User => Err(ApiError::Forbidden),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let authorization = parts.headers.get(header::AUTHORIZATION);
        if authorization.is_none()
            && parts.method.is_safe()
            && let Some(token) = cookie(&parts.headers, SESSION_COOKIE)
        {
            return from_session(state, token).await;
        }
        let presented = authorization
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .filter(|k| !k.is_empty() && k.len() <= 256)
            .ok_or(ApiError::Unauthorized)?;
        let client = client_address(parts, state);
        let key = keys::authenticate(state, presented, client)
            .await
            .map_err(|e| match e {
                AuthError::Unknown => ApiError::Unauthorized,
                AuthError::Throttled { retry_after } => ApiError::AuthThrottled { retry_after },
                AuthError::Service(e) => e.into(),
            })?;
        within_rate_limit(state, key)
    }
}

/// The caller `key`, if it is within its rate limit.
fn within_rate_limit(state: &AppState, key: ApiKey) -> Result<Caller, ApiError> {
    state
        .check_rate_limit(key.row_id)
        .map_err(|r| ApiError::RateLimited {
            retry_after: r.retry_after,
        })?;
    Ok(Caller(key))
}

/// The cookie of a dashboard session (see `crate::service::session`).
pub const SESSION_COOKIE: &str = "snip_session";

/// A read-only API request (`GET`/`HEAD`) of a signed-in dashboard: the session acts as its
/// key, within that key's rate limit. (Requests that change something need the key itself, or
/// the dashboard's own forms with their anti-CSRF token.)
async fn from_session(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let key = crate::service::session::resolve(state, token)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    within_rate_limit(state, key)
}

/// The value of the cookie `name` in a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim_matches('"'))
}

/// The client address of a request, by the trusted-proxy rule.
pub fn client_address(parts: &Parts, state: &AppState) -> std::net::IpAddr {
    let peer = parts
        .extensions
        .get::<super::Peer>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |p| p.0);
    crate::analytics::client::client_ip(peer, &parts.headers, &state.analytics.trusted)
}

/// A JSON body: `Content-Type` must be JSON (415), at most 64 KiB (413), well-formed and of
/// the right shape (400). Keeps the raw bytes for idempotency hashing.
pub struct JsonBody<T> {
    pub value: T,
    pub raw: Bytes,
}

fn is_json(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        if !is_json(&parts) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let allowed = state.settings.request_body_timeout;
        let raw = tokio::time::timeout(allowed, read_limited(body))
            .await
            .map_err(|_| ApiError::RequestTimeout(allowed.as_secs_f64().ceil() as u64))??;
        if nesting_exceeds(&raw, MAX_DEPTH) {
            return Err(ApiError::BadRequest(format!(
                "invalid JSON body: nested deeper than {MAX_DEPTH} levels"
            )));
        }
        let value = serde_json::from_slice(&raw)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
        Ok(JsonBody { value, raw })
    }
}

/// Deepest nesting of arrays and objects accepted in a JSON body (ours need 3).
const MAX_DEPTH: usize = 32;

/// Whether `json` nests arrays/objects deeper than `limit` (brackets inside strings do not
/// count). One pass over the bytes, before any parsing: fields a handler ignores are skipped
/// by the parser without its depth limit, so a deep body would otherwise be accepted.
fn nesting_exceeds(json: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// How much of an oversized body is read and thrown away before answering 413, so that a
/// client still sending sees the answer instead of a reset connection.
const DRAIN_LIMIT: usize = 1024 * 1024;
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads at most [`MAX_BODY`] bytes: more is 413 (after draining some), a broken body 400.
pub(super) async fn read_limited(body: axum::body::Body) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::BadRequest(format!("reading the body: {e}")))?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        if buf.len() + chunk.len() > MAX_BODY {
            let drained = buf.len() + chunk.len();
            let drain = async move {
                let mut seen = drained;
                while seen < DRAIN_LIMIT {
                    match body.frame().await {
                        Some(Ok(f)) => seen += f.data_ref().map_or(0, |d| d.len()),
                        _ => break,
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
            return Err(ApiError::PayloadTooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// Query string pairs (last one wins), percent-decoded; never rejects.
pub struct QueryMap(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        Ok(QueryMap(
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        ))
    }
}

impl QueryMap {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// The single path parameter of a route; an undecodable one is a 404 like any unknown id.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| PathParam(p.0))
            .map_err(|_| ApiError::NotFound("resource"))
    }
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is case-insensitive
/// (RFC 9110 §11.1), and spaces around the token are ignored.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once([' ', '\t'])?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_matches([' ', '\t']))
}

#[cfg(test)]
mod depth_tests {
    use super::nesting_exceeds;

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        assert!(!nesting_exceeds(br#"{"a":[{"b":[1]}]}"#, 4));
        assert!(nesting_exceeds(br#"{"a":[{"b":[[1]]}]}"#, 4));
        assert!(!nesting_exceeds(br#"{"a":"[[[[[[[[[[{{{{{{"}"#, 2));
        assert!(!nesting_exceeds(br#"{"a":"\"[[[[[[[["}"#, 2));
        assert!(nesting_exceeds(
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).as_bytes(),
            32
        ));
    }
}

#[cfg(test)]
mod bearer_tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_other_schemes_are_not_keys() {
        for (value, token) in [
            ("Bearer snip_x", Some("snip_x")),
            ("bearer snip_x", Some("snip_x")),
            ("BEARER snip_x", Some("snip_x")),
            ("bEaReR   snip_x  ", Some("snip_x")),
            ("Basic c25pcDp4", None),
            ("Bearersnip_x", None),
            ("snip_x", None),
        ] {
            assert_eq!(bearer_token(value), token, "{value:?}");
        }
    }
}
