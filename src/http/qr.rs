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

/// A `size`×`size` grayscale PNG: whole-pixel modules, centred, with at least the quiet zone
/// around them (sampled down when `size` is smaller than one pixel per module).
fn png(code: &QrCode, size: u32) -> Result<Vec<u8>> {
    let modules = code.width() as u32;
    let total = modules + 2 * QUIET_ZONE;
    let colors = code.to_colors();
    let dark = |mx: u32, my: u32| {
        (QUIET_ZONE..QUIET_ZONE + modules).contains(&mx)
            && (QUIET_ZONE..QUIET_ZONE + modules).contains(&my)
            && colors[((my - QUIET_ZONE) * modules + (mx - QUIET_ZONE)) as usize] == Color::Dark
    };
    let scale = size / total;
    let offset = if scale >= 1 {
        (size - scale * total) / 2
    } else {
        0
    };
    let side = size;
    let mut pixels = vec![255u8; (side * side) as usize];
    for y in 0..side {
        for x in 0..side {
            let (mx, my) = if scale >= 1 {
                if x < offset
                    || y < offset
                    || x >= offset + scale * total
                    || y >= offset + scale * total
                {
                    continue;
                }
                ((x - offset) / scale, (y - offset) / scale)
            } else {
                (x * total / side, y * total / side)
            };
            if dark(mx, my) {
                pixels[(y * side + x) as usize] = 0;
            }
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
        // One unit per module in the viewBox, displayed at exactly size × size.
        let svg = qr
            .render::<qrcode::render::svg::Color<'_>>()
            .module_dimensions(1, 1)
            .quiet_zone(true)
            .build();
        let total = qr.width() + 2 * QUIET_ZONE as usize;
        let svg = svg.replacen(
            &format!(r#"width="{total}" height="{total}""#),
            &format!(r#"width="{size}" height="{size}""#),
            1,
        );
        ("image/svg+xml", svg.into_bytes())
    };
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}
