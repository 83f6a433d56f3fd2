//! `/api/v1/keys`: API key management (admin only). A secret is shown once, at creation; only
//! its hash is stored.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Problem, Result};
use super::extract::{Caller, JsonBody, PathParam, QueryMap};
use super::views::KeyView;
use crate::domain::Role;
use crate::service::keys;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/keys", get(list).post(create))
        .route("/keys/{id}", delete(revoke))
}

/// A key to create.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = NewApiKey)]
pub struct CreateKey {
    /// 1 to 100 printable characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: String,
    /// `admin` (everything) or `user` (its own links).
    #[schema(pattern = "^(admin|user)$")]
    pub role: String,
}

/// Creates an API key; the answer is the only place its secret appears.
#[utoipa::path(
    post,
    path = "/api/v1/keys",
    tag = "keys",
    request_body = CreateKey,
    responses((status = 201, description = "The key, with its secret in `key`", body = KeyView)),
    security(("bearer" = []))
)]
pub(super) async fn create(
    State(app): State<AppState>,
    caller: Caller,
    body: JsonBody<CreateKey>,
) -> Result<(StatusCode, Json<KeyView>)> {
    caller.require_admin()?;
    let CreateKey { name, role } = body.value;
    let (name, role) = key_request(&name, &role)?;
    let (key, secret) = keys::create(&app, name, role).await?;
    Ok((
        StatusCode::CREATED,
        Json(KeyView::new(&key, Some(secret.expose().to_string()))),
    ))
}

/// The validated name and role of a key to create (the API's JSON, the dashboard's form).
pub(super) fn key_request(name: &str, role: &str) -> Result<(String, Role)> {
    let role = Role::parse(role)
        .ok_or_else(|| ApiError::InvalidField("role: must be admin or user".into()))?;
    let name = name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::InvalidField(
            "name: must be 1 to 100 printable characters".into(),
        ));
    }
    Ok((name, role))
}

/// Every key (without secrets).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = ApiKeyList)]
pub struct KeyList {
    pub items: Vec<KeyView>,
}

#[utoipa::path(
    get,
    path = "/api/v1/keys",
    tag = "keys",
    responses((status = 200, description = "Every key", body = KeyList)),
    security(("bearer" = []))
)]
pub(super) async fn list(State(app): State<AppState>, caller: Caller) -> Result<Json<KeyList>> {
    caller.require_admin()?;
    let all = keys::list(&app).await?;
    Ok(Json(KeyList {
        items: all.iter().map(|k| KeyView::new(k, None)).collect(),
    }))
}

/// `DELETE /api/v1/keys/{id}[?force=true]`: the last active admin key only when forced.
#[utoipa::path(
    delete,
    path = "/api/v1/keys/{id}",
    tag = "keys",
    params(
        ("id" = String, Path, description = "The key's id"),
        ("force" = Option<bool>, Query, description = "Revoke even the last active admin key"),
    ),
    responses(
        (status = 204, description = "Revoked"),
        (status = 409, description = "The last active admin key (`last_admin`)", body = Problem,
         content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn revoke(
    State(app): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
    query: QueryMap,
) -> Result<StatusCode> {
    caller.require_admin()?;
    let force = match query.get("force") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::InvalidField(
                "force: must be true or false".into(),
            ));
        }
    };
    keys::revoke(&app, &id, force).await?;
    Ok(StatusCode::NO_CONTENT)
}
