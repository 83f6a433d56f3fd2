//! The dashboard under `/ui/`: server-rendered pages (askama templates in `templates/`,
//! checked at compile time, every value HTML-escaped), built on the same service layer as the
//! JSON API. Pages load only the embedded assets of [`assets`] (a strict CSP: no inline script
//! or style, nothing from another origin) and work without JavaScript except for the chart,
//! the copy buttons, the code-availability hint and the live refresh of a link's statistics.
//!
//! - `session`: sign-in and sign-out, the signed-in extractor, forms with their anti-CSRF check
//! - `links`: the list, create, detail (statistics, QR, CSV), edit, disable/enable, delete
//! - `admin`: the overview, API keys, unknown codes
//! - `assets`: the stylesheet, the script, uPlot, served under content-hashed names

mod admin;
mod assets;
mod links;
mod session;

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::AppState;
use super::views::html_page;
use crate::domain::Role;
use crate::domain::time::UnixSeconds;
pub use session::Signed;

/// The policy of every dashboard page: scripts, styles, images and fetches from this origin
/// only, forms posting only here, never framed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(admin::overview))
        .route(
            "/ui/signin",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/ui/signout", post(session::sign_out))
        .route("/ui/links", get(links::list).post(links::create))
        .route("/ui/links/new", get(links::new))
        .route("/ui/code-available", get(links::code_available))
        .route("/ui/links/{code}", get(links::detail))
        .route("/ui/links/{code}/edit", get(links::edit).post(links::save))
        .route("/ui/links/{code}/disable", post(links::disable))
        .route("/ui/links/{code}/enable", post(links::enable))
        .route(
            "/ui/links/{code}/delete",
            get(links::confirm_delete).post(links::delete),
        )
        .route("/ui/keys", get(admin::keys).post(admin::create_key))
        .route("/ui/keys/{id}/revoke", post(admin::revoke_key))
        .route("/ui/unknown", get(admin::unknown))
        .route("/ui/assets/{file}", get(assets::serve))
        .route("/ui/{*rest}", get(not_found))
}

/// What every page's frame shows: who is signed in, the navigation, the form token.
pub struct Chrome {
    /// `None` on the sign-in page.
    pub who: Option<Who>,
    /// The navigation entry of the page (`overview`, `links`, `keys`, `unknown`).
    pub current: &'static str,
    pub assets: &'static assets::Urls,
    /// Whether the page loads the dashboard's script (not the preview page, which runs none).
    pub scripts: bool,
}

pub struct Who {
    pub name: String,
    pub admin: bool,
    pub csrf: String,
}

impl Chrome {
    pub fn signed(signed: &Signed, current: &'static str) -> Chrome {
        Chrome {
            who: Some(Who {
                name: signed.key.name.clone(),
                admin: signed.key.role == Role::Admin,
                csrf: signed.csrf.clone(),
            }),
            current,
            assets: assets::urls(),
            scripts: true,
        }
    }

    pub fn anonymous() -> Chrome {
        Chrome {
            who: None,
            current: "",
            assets: assets::urls(),
            scripts: true,
        }
    }

    pub fn csrf(&self) -> &str {
        self.who.as_ref().map_or("", |w| w.csrf.as_str())
    }

    /// `aria-current` of a navigation entry.
    pub fn aria_current(&self, entry: &str) -> &'static str {
        if self.current == entry {
            "page"
        } else {
            "false"
        }
    }
}

/// A rendered page with the dashboard's headers: the CSP, no caching (pages show a signed-in
/// key's data).
pub fn page(status: StatusCode, template: &impl Template) -> Response {
    let mut response = rendered(template, CSP);
    if response.status() != StatusCode::OK {
        return response;
    }
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // `same-origin`, not `no-referrer`: under `no-referrer` a browser sends `Origin: null` with
    // the page's own form posts, which the origin check refuses. Other origins (a destination
    // followed from a page) still learn nothing.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// A template rendered into an HTML page with the policy `csp` (a `500` if it cannot be).
fn rendered(template: &impl Template, csp: &'static str) -> Response {
    match template.render() {
        Ok(html) => html_page(html, csp),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

/// A page that only says what went wrong (404, 403, 503…), in the frame.
#[derive(Template)]
#[template(path = "message.html")]
pub struct Message {
    pub chrome: Chrome,
    pub title: String,
    pub detail: String,
}

pub fn message(chrome: Chrome, status: StatusCode, title: &str, detail: &str) -> Response {
    page(
        status,
        &Message {
            chrome,
            title: title.to_string(),
            detail: detail.to_string(),
        },
    )
}

/// A service error as a dashboard page, with the API's `detail` text.
pub fn error_page(chrome: Chrome, e: super::error::ApiError) -> Response {
    let problem = e.problem();
    let status = problem.status_code();
    let title = status.canonical_reason().unwrap_or("Error");
    message(chrome, status, title, &problem.detail)
}

async fn not_found() -> Response {
    message(
        Chrome::anonymous(),
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page.",
    )
}

/// The policy of the `/{code}+` preview page: the dashboard's stylesheet and icon, nothing else
/// (no script, no form).
pub const PREVIEW_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[derive(Template)]
#[template(path = "preview.html")]
struct PreviewPage<'a> {
    chrome: Chrome,
    short_url: &'a str,
    title: Option<&'a str>,
    url: &'a str,
}

/// The `/{code}+` preview page, in the dashboard's look: where a short URL goes, without going.
pub fn preview_page(short_url: &str, title: Option<&str>, url: &str) -> Response {
    let chrome = Chrome {
        scripts: false,
        ..Chrome::anonymous()
    };
    let page = PreviewPage {
        chrome,
        short_url,
        title,
        url,
    };
    rendered(&page, PREVIEW_CSP)
}

/// A time as the dashboard shows it: `2026-11-30 14:05 UTC`.
pub fn show_time(t: UnixSeconds) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}
