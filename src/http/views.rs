//! JSON shapes of the API (docs/api.md), built from domain types, and the headers of the
//! server-rendered pages.

use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::App;
use crate::domain::Link;
use crate::domain::key::ApiKey;
use crate::domain::time::to_rfc3339;

/// A page rendered by the server: it may load only what `csp` allows, is never framed
/// (clickjacking), never sniffed as another type, and its URL is not sent on as a referrer.
pub fn html_page(page: impl Into<axum::body::Body>, csp: &'static str) -> Response {
    let mut response = Html(page.into()).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// A short link.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = Link)]
pub struct LinkView {
    /// The short code: the path of the short URL.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub code: String,
    /// The whole short URL (`--base-url` and the code).
    #[schema(format = "uri")]
    pub short_url: String,
    /// The destination, normalised.
    #[schema(format = "uri")]
    pub url: String,
    pub title: Option<String>,
    pub tags: Vec<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// After this time the short URL answers 410.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// After this many counted clicks the short URL answers 410.
    #[schema(minimum = 1)]
    pub max_clicks: Option<u64>,
    pub disabled: bool,
    /// Only on links an admin took down: the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub takedown_reason: Option<String>,
    /// Only in lists asked with `clicks=true`: every counted click (bots included) plus the
    /// clicks an import brought.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub clicks: Option<u64>,
}

impl LinkView {
    pub fn new(app: &App, link: &Link) -> Self {
        LinkView {
            code: link.code.to_string(),
            short_url: app.short_url(link.code.as_str()),
            url: link.url.clone(),
            title: link.title.clone(),
            tags: link.tags.clone(),
            created_at: to_rfc3339(link.created_at),
            updated_at: to_rfc3339(link.updated_at),
            expires_at: link.expires_at.map(to_rfc3339),
            max_clicks: link.max_clicks,
            disabled: link.disabled,
            takedown_reason: link.takedown.clone(),
            clicks: None,
        }
    }
}

/// An API key (its secret only in the answer that created it).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = ApiKey)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    #[schema(value_type = String, pattern = "^(admin|user)$")]
    pub role: String,
    /// The secret, shown once: only in the answer to `POST /api/v1/keys`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub key: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl KeyView {
    pub fn new(key: &ApiKey, secret: Option<String>) -> Self {
        KeyView {
            id: key.id.clone(),
            name: key.name.clone(),
            role: key.role.as_str().into(),
            key: secret,
            created_at: to_rfc3339(key.created_at),
        }
    }
}
