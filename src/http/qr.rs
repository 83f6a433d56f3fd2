//! `GET /api/v1/links/{code}/qr?format=svg|png&size=N`: a QR code of the link's `short_url`,
//! rendered off the request threads by `crate::service::qr`. Size is bounded so a request
//! cannot ask for a huge image.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::error::{ApiError, Result};
use super::extract::{Caller, PathParam, QueryMap};
use super::links::find_visible_link;
use crate::service::qr::{Format, QrError};

const MIN_SIZE: u32 = 32;
const MAX_SIZE: u32 = 2048;
const DEFAULT_SIZE: u32 = 256;

impl From<QrError> for ApiError {
    fn from(e: QrError) -> Self {
        match e {
            QrError::Busy(why) => ApiError::Busy(why),
            QrError::Failed(why) => ApiError::Internal(why),
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/links/{code}/qr", get(qr))
}

/// A QR code of the link's short URL.
#[utoipa::path(
    get,
    path = "/api/v1/links/{code}/qr",
    tag = "links",
    params(
        ("code" = String, Path, description = "The short code"),
        ("format" = Option<String>, Query, pattern = "^(svg|png)$", description = "Image format (svg)"),
        ("size" = Option<u32>, Query, minimum = 32, maximum = 2048, description = "Width and height in pixels (256)"),
    ),
    responses((status = 200, description = "The image",
               content((String = "image/svg+xml"), (Vec<u8> = "image/png")))),
    security(("bearer" = []))
)]
pub(super) async fn qr(
    State(app): State<AppState>,
    caller: Caller,
    PathParam(code): PathParam,
    query: QueryMap,
) -> Result<Response> {
    let format = match query.get("format").unwrap_or("svg") {
        "svg" => Format::Svg,
        "png" => Format::Png,
        _ => return Err(ApiError::InvalidField("format: must be svg or png".into())),
    };
    let size = match query.get("size") {
        None => DEFAULT_SIZE,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|s| (MIN_SIZE..=MAX_SIZE).contains(s))
            .ok_or_else(|| {
                ApiError::InvalidField(format!("size: must be {MIN_SIZE} to {MAX_SIZE}"))
            })?,
    };
    let link = find_visible_link(&app, &caller, &code).await?;
    let image = app
        .qr
        .render(app.short_url(link.code.as_str()), format, size)
        .await?;
    let content_type = match format {
        Format::Png => "image/png",
        Format::Svg => "image/svg+xml",
    };
    let mut response = image.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}
