//! Admin routes for the operator's controls: `GET /api/v1/deny-list` and
//! `POST /api/v1/deny-list/reload` (see `crate::deny`).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Result};
use super::extract::Caller;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/deny-list", get(list))
        .route("/deny-list/reload", post(reload))
}

/// The deny list in force.
#[derive(Serialize, ToSchema)]
pub(super) struct DenyList {
    /// `--deny-list`, or `null` without one.
    file: Option<String>,
    /// Hosts and domains refused, sorted.
    entries: Vec<String>,
}

/// The outcome of a reload.
#[derive(Serialize, ToSchema)]
pub(super) struct DenyListReloaded {
    /// Entries of the list now in force.
    entries: usize,
}

#[utoipa::path(
    get,
    path = "/api/v1/deny-list",
    tag = "deny list",
    responses((status = 200, description = "The deny list in force", body = DenyList)),
    security(("bearer" = []))
)]
pub(super) async fn list(State(app): State<AppState>, caller: Caller) -> Result<Json<DenyList>> {
    caller.require_admin()?;
    Ok(Json(DenyList {
        file: app
            .settings
            .deny_list
            .as_ref()
            .map(|f| f.display().to_string()),
        entries: app.deny.entries(),
    }))
}

/// Reads the file again on this instance (each instance reads its own copy: reload every
/// instance, or send them SIGHUP). A bad file keeps the current list and answers 422.
#[utoipa::path(
    post,
    path = "/api/v1/deny-list/reload",
    tag = "deny list",
    responses((status = 200, description = "Reloaded", body = DenyListReloaded)),
    security(("bearer" = []))
)]
pub(super) async fn reload(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<DenyListReloaded>> {
    caller.require_admin()?;
    let deny = app.clone();
    let loaded = tokio::task::spawn_blocking(move || deny.deny.reload())
        .await
        .map_err(|e| ApiError::Internal(format!("reloading the deny list stopped: {e}")))?;
    match loaded {
        Ok(entries) => {
            tracing::info!(entries, "deny list reloaded");
            Ok(Json(DenyListReloaded { entries }))
        }
        Err(e) => Err(ApiError::InvalidField(format!(
            "the deny list was not reloaded: {e:#}"
        ))),
    }
}
