//! Admin routes for the operator's controls: `GET /api/v1/deny-list` and
//! `POST /api/v1/deny-list/reload` (see `crate::deny`).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, Result};
use super::extract::Caller;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/deny-list", get(list))
        .route("/deny-list/reload", post(reload))
}

async fn list(State(app): State<AppState>, caller: Caller) -> Result<Json<Value>> {
    caller.require_admin()?;
    Ok(Json(json!({
        "file": app.settings.deny_list.as_ref().map(|f| f.display().to_string()),
        "entries": app.deny.entries(),
    })))
}

/// Reads the file again on this instance (each instance reads its own copy: reload every
/// instance, or send them SIGHUP). A bad file keeps the current list and answers 422.
async fn reload(State(app): State<AppState>, caller: Caller) -> Result<Json<Value>> {
    caller.require_admin()?;
    let deny = app.clone();
    let loaded = tokio::task::spawn_blocking(move || deny.deny.reload())
        .await
        .map_err(|e| ApiError::Internal(format!("reloading the deny list stopped: {e}")))?;
    match loaded {
        Ok(entries) => {
            tracing::info!(entries, "deny list reloaded");
            Ok(Json(json!({ "entries": entries })))
        }
        Err(e) => Err(ApiError::InvalidField(format!(
            "the deny list was not reloaded: {e:#}"
        ))),
    }
}
