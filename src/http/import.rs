//! `POST /api/v1/import`: many links in one request, for migrations (`snip import` sends its
//! batches here). Each link is validated like a create; links with a code are written in one
//! durable transaction, and a code already present with the same destination is reported,
//! not changed, so a re-run imports nothing twice.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Result};
use super::extract::{Caller, JsonBody};
use crate::import::{ImportResult, ImportRow, ImportStatus, MAX_BATCH};
use crate::service::links;

pub fn router() -> Router<AppState> {
    Router::new().route("/import", post(import))
}

/// Links to import (at most 1,000, within the 64 KiB body limit).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ImportRequest)]
pub struct ImportRequest {
    #[schema(max_items = 1000)]
    pub links: Vec<ImportRow>,
}

/// What the import did: one result per link, in order, and the counts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = ImportAnswer)]
pub struct ImportAnswer {
    pub imported: u64,
    pub present: u64,
    pub taken: u64,
    pub rejected: u64,
    pub results: Vec<ImportResult>,
}

impl ImportAnswer {
    fn new(results: Vec<ImportResult>) -> Self {
        let count = |s| results.iter().filter(|r| r.status == s).count() as u64;
        ImportAnswer {
            imported: count(ImportStatus::Imported),
            present: count(ImportStatus::Present),
            taken: count(ImportStatus::Taken),
            rejected: count(ImportStatus::Rejected),
            results,
        }
    }
}

/// Imports links owned by the calling key. A link that breaks a rule, or whose code is
/// another destination's, is reported in its result; the others are imported.
#[utoipa::path(
    post,
    path = "/api/v1/import",
    tag = "links",
    request_body = ImportRequest,
    responses((status = 200, description = "One result per link, in order", body = ImportAnswer)),
    security(("bearer" = []))
)]
pub(super) async fn import(
    State(app): State<AppState>,
    caller: Caller,
    body: JsonBody<ImportRequest>,
) -> Result<Json<ImportAnswer>> {
    let rows = body.value.links;
    if rows.len() > MAX_BATCH {
        return Err(ApiError::InvalidField(format!(
            "links: more than {MAX_BATCH}"
        )));
    }
    let results = links::import(&app, caller.0.row_id, rows).await?;
    Ok(Json(ImportAnswer::new(results)))
}
