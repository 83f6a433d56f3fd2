//! The dashboard's static files, embedded in the binary and served under names that carry a
//! hash of their content (`app.3f2a9c1d.css`), so a browser may keep them for a year
//! (`immutable`) and a new release is fetched at once. Nothing is loaded from another origin.
//! uPlot is vendored from npm with its licence (assets/vendor/uplot/README.md).

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::http::extract::PathParam;

struct Asset {
    /// The served name, with the content hash.
    name: String,
    bytes: &'static [u8],
    content_type: &'static str,
}

/// The served URLs of the assets, for the templates.
pub struct Urls {
    pub app_css: String,
    pub app_js: String,
    pub uplot_css: String,
    pub uplot_js: String,
    pub icon: String,
}

const FILES: [(&str, &str, &[u8], &str); 5] = [
    (
        "app",
        "css",
        include_bytes!("../../../assets/app.css"),
        "text/css; charset=utf-8",
    ),
    (
        "app",
        "js",
        include_bytes!("../../../assets/app.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "uplot",
        "css",
        include_bytes!("../../../assets/vendor/uplot/uPlot.min.css"),
        "text/css; charset=utf-8",
    ),
    (
        "uplot",
        "js",
        include_bytes!("../../../assets/vendor/uplot/uPlot.iife.min.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "icon",
        "svg",
        include_bytes!("../../../assets/icon.svg"),
        "image/svg+xml",
    ),
];

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(stem, ext, bytes, content_type)| {
            let hash = hex::encode(&Sha256::digest(bytes)[..5]);
            Asset {
                name: format!("{stem}.{hash}.{ext}"),
                bytes,
                content_type,
            }
        })
        .collect()
});

static URLS: LazyLock<Urls> = LazyLock::new(|| {
    let url = |i: usize| format!("/ui/assets/{}", ASSETS[i].name);
    Urls {
        app_css: url(0),
        app_js: url(1),
        uplot_css: url(2),
        uplot_js: url(3),
        icon: url(4),
    }
});

pub fn urls() -> &'static Urls {
    &URLS
}

/// `GET /ui/assets/{file}`: an asset by its hashed name, cached for a year.
pub async fn serve(PathParam(file): PathParam) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == file) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let mut response = asset.bytes.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_under_a_name_with_its_hash() {
        let urls = urls();
        for url in [
            &urls.app_css,
            &urls.app_js,
            &urls.uplot_css,
            &urls.uplot_js,
            &urls.icon,
        ] {
            let name = url.strip_prefix("/ui/assets/").unwrap();
            let asset = ASSETS.iter().find(|a| a.name == name).unwrap();
            let hash = name.split('.').nth(1).unwrap();
            assert_eq!(hash, hex::encode(&Sha256::digest(asset.bytes)[..5]));
            assert!(!asset.bytes.is_empty());
        }
    }
}
