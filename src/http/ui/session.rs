//! Signing in and out of the dashboard, the signed-in extractor [`Signed`], and the form
//! extractors that hold every state-changing request to the anti-CSRF rules: the request comes
//! from this origin (`Sec-Fetch-Site`, `Origin`) and carries the session's form token.

use std::collections::HashMap;
use std::net::IpAddr;

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::{Chrome, error_page, message, page};
use crate::domain::key::ApiKey;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{SESSION_COOKIE, client_address, cookie, read_limited};
use crate::service::keys::AuthError;
use crate::service::session::{self, SESSION_TTL_SECS};

/// A signed-in dashboard request: the key its session acts as, the session token, and the
/// token its forms carry.
pub struct Signed {
    pub key: ApiKey,
    pub token: String,
    pub csrf: String,
}

fn to_sign_in() -> Response {
    Redirect::to("/ui/signin").into_response()
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(to_sign_in)?;
        let key = match session::resolve(state, token).await {
            Ok(Some(key)) => key,
            Ok(None) => return Err(to_sign_in()),
            Err(e) => return Err(error_page(Chrome::anonymous(), e.into())),
        };
        if let Err(limited) = state.check_rate_limit(key.row_id) {
            let e = ApiError::RateLimited {
                retry_after: limited.retry_after,
            };
            return Err(error_page(Chrome::anonymous(), e));
        }
        Ok(Signed {
            key,
            csrf: session::csrf_token(token),
            token: token.to_string(),
        })
    }
}

/// Whether a state-changing request comes from a page of this origin: a browser says so in
/// `Sec-Fetch-Site` and `Origin` (either may be missing from other clients; the form token
/// then decides alone).
fn from_this_origin(headers: &HeaderMap) -> bool {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = header("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    match (header("origin"), header("host")) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

fn forbidden(chrome: Chrome) -> Response {
    message(
        chrome,
        StatusCode::FORBIDDEN,
        "Forbidden",
        "This form did not come from a page of this dashboard, or it is stale: reload the page \
         and try again.",
    )
}

/// The fields of a url-encoded form body (the last of a repeated name wins).
pub struct Fields(HashMap<String, String>);

impl Fields {
    /// A field, trimmed; empty is absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }
}

async fn read_fields(req: Request, state: &AppState) -> Result<Fields, ApiError> {
    let url_encoded = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !url_encoded {
        return Err(ApiError::BadRequest(
            "a form must be sent as application/x-www-form-urlencoded".into(),
        ));
    }
    let allowed = state.settings.request_body_timeout;
    let raw = tokio::time::timeout(allowed, read_limited(req.into_body()))
        .await
        .map_err(|_| ApiError::RequestTimeout(allowed.as_secs_f64().ceil() as u64))??;
    Ok(Fields(
        url::form_urlencoded::parse(&raw).into_owned().collect(),
    ))
}

/// A signed-in form submission that passed the anti-CSRF checks.
pub struct Form {
    pub signed: Signed,
    pub fields: Fields,
}

impl FromRequest<AppState> for Form {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let signed = Signed::from_request_parts(&mut parts, state).await?;
        if !from_this_origin(&parts.headers) {
            metrics::counter!("snip_ui_csrf_refused_total").increment(1);
            return Err(forbidden(Chrome::signed(&signed, "")));
        }
        let req = Request::from_parts(parts, body);
        let fields = match read_fields(req, state).await {
            Ok(fields) => fields,
            Err(e) => return Err(error_page(Chrome::signed(&signed, ""), e)),
        };
        if !fields
            .get("csrf")
            .is_some_and(|t| session::csrf_matches(&signed.token, t))
        {
            metrics::counter!("snip_ui_csrf_refused_total").increment(1);
            return Err(forbidden(Chrome::signed(&signed, "")));
        }
        Ok(Form { signed, fields })
    }
}

/// The sign-in form: from this origin, with the client's address (for the throttle).
pub struct SignInForm {
    fields: Fields,
    client: IpAddr,
}

impl FromRequest<AppState> for SignInForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        if !from_this_origin(&parts.headers) {
            return Err(forbidden(Chrome::anonymous()));
        }
        let client = client_address(&parts, state);
        let fields = read_fields(Request::from_parts(parts, body), state)
            .await
            .map_err(|e| error_page(Chrome::anonymous(), e))?;
        Ok(SignInForm { fields, client })
    }
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage {
    chrome: Chrome,
    error: Option<String>,
}

pub async fn sign_in_page() -> Response {
    page(
        StatusCode::OK,
        &SignInPage {
            chrome: Chrome::anonymous(),
            error: None,
        },
    )
}

fn sign_in_failed(status: StatusCode, error: String) -> Response {
    page(
        status,
        &SignInPage {
            chrome: Chrome::anonymous(),
            error: Some(error),
        },
    )
}

/// The session cookie: HttpOnly (no page script reads it), SameSite=Strict, for the whole
/// origin (the API's read-only routes accept it: QR images, CSV exports), `Secure` when the
/// service's base URL is https.
fn session_cookie(state: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = if state.base_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("snip_session=; Path=/; Max-Age=0"))
}

pub async fn sign_in(State(state): State<AppState>, form: SignInForm) -> Response {
    let presented = form.fields.get("key").unwrap_or_default();
    if presented.is_empty() || presented.len() > 256 {
        return sign_in_failed(
            StatusCode::UNAUTHORIZED,
            "That API key is not valid.".into(),
        );
    }
    match session::sign_in(&state, presented, form.client).await {
        Ok(new) => {
            let mut response = Redirect::to("/ui/").into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                session_cookie(&state, &new.token, SESSION_TTL_SECS),
            );
            response
        }
        Err(AuthError::Unknown) => sign_in_failed(
            StatusCode::UNAUTHORIZED,
            "That API key is not valid.".into(),
        ),
        Err(AuthError::Throttled { retry_after }) => {
            let mut response = sign_in_failed(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many failed sign-ins from this address: try again in {retry_after} s."
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            response
        }
        Err(AuthError::Service(e)) => error_page(Chrome::anonymous(), e.into()),
    }
}

pub async fn sign_out(State(state): State<AppState>, form: Form) -> Response {
    if let Err(e) = session::sign_out(&state, &form.signed.token).await {
        return error_page(Chrome::signed(&form.signed, ""), e.into());
    }
    let mut response = Redirect::to("/ui/signin").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_requests_from_this_origin_pass() {
        assert!(from_this_origin(&headers(&[])));
        assert!(from_this_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!from_this_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:9090"),
        ])));
        assert!(!from_this_origin(&headers(&[(
            "sec-fetch-site",
            "same-site"
        )])));
        assert!(!from_this_origin(&headers(&[(
            "sec-fetch-site",
            "cross-site"
        )])));
        assert!(!from_this_origin(&headers(&[("origin", "null")])));
    }
}
