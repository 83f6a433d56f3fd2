//! JSON shapes of the API (docs/api.md), built from domain types.

use serde::Serialize;

use super::App;
use crate::domain::Link;
use crate::domain::key::ApiKey;
use crate::domain::time::to_rfc3339;

#[derive(Serialize)]
pub struct LinkView {
    pub code: String,
    pub short_url: String,
    pub url: String,
    pub title: Option<String>,
    pub tags: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub expires_at: Option<String>,
    pub max_clicks: Option<u64>,
    pub disabled: bool,
    /// Only on links an admin took down: the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub takedown_reason: Option<String>,
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
        }
    }
}

#[derive(Serialize)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub created_at: String,
}

impl KeyView {
    pub fn new(key: &ApiKey, secret: Option<String>) -> Self {
        KeyView {
            id: key.id.clone(),
            name: key.name.clone(),
            role: key.role.as_str(),
            key: secret,
            created_at: to_rfc3339(key.created_at),
        }
    }
}
