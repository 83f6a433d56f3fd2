//! `GET /api/v1/links/{code}/qr?format=svg|png&size=N`: a QR code of the link's `short_url`,
//! rendered by the `qrcode` crate (PNG encoded with the `png` crate). Size is bounded so a
//! request cannot ask for a huge image.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use qrcode::{Color, EcLevel, QrCode};

use super::AppState;
use super::error::{ApiError, Result};
use super::extract::{Caller, PathParam, QueryMap};
use super::links::find_visible_link;

const MIN_SIZE: u32 = 32;
const MAX_SIZE: u32 = 2048;
const DEFAULT_SIZE: u32 = 256;
/// Modules of white border around the code, as the QR specification asks.
const QUIET_ZONE: u32 = 4;

pub fn router() -> Router<AppState> {
    Router::new().route("/links/{code}/qr", get(qr))
}

fn png(code: &QrCode, size: u32) -> Result<Vec<u8>> {
    let modules = code.width() as u32;
    let total = modules + 2 * QUIET_ZONE;
    let scale = (size / total).max(1);
    let side = total * scale;
    let colors = code.to_colors();
    let mut pixels = vec![255u8; (side * side) as usize];
    for (i, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (mx, my) = (
            i as u32 % modules + QUIET_ZONE,
            i as u32 / modules + QUIET_ZONE,
        );
        for y in my * scale..(my + 1) * scale {
            let row = (y * side) as usize;
            pixels[row + (mx * scale) as usize..row + ((mx + 1) * scale) as usize].fill(0);
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    writer
        .write_image_data(&pixels)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    writer
        .finish()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(out)
}

async fn qr(
    State(app): State<AppState>,
    caller: Caller,
    PathParam(code): PathParam,
    query: QueryMap,
) -> Result<Response> {
    let format = query.get("format").unwrap_or("svg");
    if !matches!(format, "svg" | "png") {
        return Err(ApiError::InvalidField("format: must be svg or png".into()));
    }
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
    let qr = QrCode::with_error_correction_level(app.short_url(link.code.as_str()), EcLevel::M)
        .map_err(|e| ApiError::Internal(format!("QR encoding failed: {e}")))?;
    let (content_type, body) = if format == "png" {
        ("image/png", png(&qr, size)?)
    } else {
        let svg = qr
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(size, size)
            .max_dimensions(size, size)
            .build();
        ("image/svg+xml", svg.into_bytes())
    };
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}
