//! The overview (every signed-in key), and the admin pages: API keys, unknown codes.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::session::{Form, Signed};
use super::{Chrome, error_page, message, page, show_time};
use crate::domain::key::ApiKey;
use crate::domain::time::now;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Caller, PathParam, QueryMap};
use crate::http::keys::key_request;
use crate::service::{keys, stats};

/// Entries per list of the overview.
const OVERVIEW_LIMIT: usize = 10;

struct Recent {
    code: String,
    url: String,
    created_at: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    chrome: Chrome,
    clicks: [u64; 3],
    series_json: String,
    top_links: Vec<(String, u64)>,
    top_referrers: Vec<(String, u64)>,
    top_countries: Vec<(String, u64)>,
    recent: Vec<Recent>,
    as_of: String,
}

pub async fn overview(State(app): State<AppState>, signed: Signed) -> Response {
    let chrome = Chrome::signed(&signed, "overview");
    let scope = Caller(signed.key.clone()).scope();
    let o = match stats::overview(&app, scope, OVERVIEW_LIMIT).await {
        Ok(o) => o,
        Err(e) => return error_page(chrome, e.into()),
    };
    page(
        StatusCode::OK,
        &OverviewPage {
            chrome,
            clicks: o.clicks,
            series_json: serde_json::to_string(&o.per_day).unwrap_or_default(),
            top_links: o.top_links,
            top_referrers: o.top_referrers,
            top_countries: o.top_countries,
            recent: o
                .recent
                .iter()
                .map(|l| Recent {
                    code: l.code.to_string(),
                    url: l.url.clone(),
                    created_at: show_time(l.created_at),
                })
                .collect(),
            as_of: show_time(o.as_of),
        },
    )
}

fn admin_only(chrome: Chrome) -> Response {
    message(
        chrome,
        StatusCode::FORBIDDEN,
        "Admins only",
        "This page is for admin keys; this key is a user key, which sees only its own links.",
    )
}

struct KeyRow {
    id: String,
    name: String,
    role: &'static str,
    created_at: String,
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    chrome: Chrome,
    keys: Vec<KeyRow>,
    /// The secret of the key just created (shown once).
    created: Option<String>,
    error: Option<String>,
    notice: Option<String>,
}

async fn keys_page(
    app: &AppState,
    signed: &Signed,
    status: StatusCode,
    created: Option<String>,
    error: Option<String>,
    notice: Option<String>,
) -> Response {
    let chrome = Chrome::signed(signed, "keys");
    let listed = match keys::list(app).await {
        Ok(listed) => listed,
        Err(e) => return error_page(chrome, e.into()),
    };
    let keys = listed
        .iter()
        .map(|k: &ApiKey| KeyRow {
            id: k.id.clone(),
            name: k.name.clone(),
            role: k.role.as_str(),
            created_at: show_time(k.created_at),
        })
        .collect();
    page(
        status,
        &KeysPage {
            chrome,
            keys,
            created,
            error,
            notice,
        },
    )
}

pub async fn keys(State(app): State<AppState>, signed: Signed, query: QueryMap) -> Response {
    if Caller(signed.key.clone()).require_admin().is_err() {
        return admin_only(Chrome::signed(&signed, "keys"));
    }
    let notice = query
        .get("revoked")
        .map(|name| format!("The key {name} was revoked."));
    keys_page(&app, &signed, StatusCode::OK, None, None, notice).await
}

pub async fn create_key(State(app): State<AppState>, form: Form) -> Response {
    let signed = &form.signed;
    if Caller(signed.key.clone()).require_admin().is_err() {
        return admin_only(Chrome::signed(signed, "keys"));
    }
    let name = form.fields.get("name").unwrap_or_default();
    let role = form.fields.get("role").unwrap_or("user");
    let created = async {
        let (name, role) = key_request(name, role)?;
        Ok::<_, ApiError>(keys::create(&app, name, role).await?)
    }
    .await;
    match created {
        Ok((_, secret)) => {
            let secret = secret.expose().to_string();
            keys_page(&app, signed, StatusCode::OK, Some(secret), None, None).await
        }
        Err(e) => {
            let problem = e.problem();
            let status = problem.status_code();
            keys_page(&app, signed, status, None, Some(problem.detail), None).await
        }
    }
}

pub async fn revoke_key(
    State(app): State<AppState>,
    PathParam(id): PathParam,
    form: Form,
) -> Response {
    let signed = &form.signed;
    if Caller(signed.key.clone()).require_admin().is_err() {
        return admin_only(Chrome::signed(signed, "keys"));
    }
    match keys::revoke(&app, &id, false).await {
        Ok(()) => Redirect::to("/ui/keys").into_response(),
        Err(e) => {
            let problem = ApiError::from(e).problem();
            let status = problem.status_code();
            keys_page(&app, signed, status, None, Some(problem.detail), None).await
        }
    }
}

#[derive(Template)]
#[template(path = "unknown.html")]
struct UnknownPage {
    chrome: Chrome,
    days: i64,
    total: u64,
    codes: Vec<(String, u64)>,
}

pub async fn unknown(State(app): State<AppState>, signed: Signed, query: QueryMap) -> Response {
    let chrome = Chrome::signed(&signed, "unknown");
    if Caller(signed.key.clone()).require_admin().is_err() {
        return admin_only(chrome);
    }
    let days = match query.get("days") {
        Some("1") => 1,
        Some("30") => 30,
        _ => 7,
    };
    let to = now();
    match stats::unknown(&app, to - days * 86_400, to + 1, 100).await {
        Ok(found) => page(
            StatusCode::OK,
            &UnknownPage {
                chrome,
                days,
                total: found.total,
                codes: found.codes,
            },
        ),
        Err(e) => error_page(chrome, e.into()),
    }
}
