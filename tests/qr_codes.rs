//! QR codes of short links (`GET /api/v1/links/{code}/qr`). docs/api.md, "QR codes".

mod common;

use common::{TestServer, code_of, expect_problem, header};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn qr_codes_default_to_svg_and_are_available_as_png() {
    let server = TestServer::spawn(&[]);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/qr"}))
            .await,
    );
    let qr = |query: &str| {
        server
            .api(Method::GET, &format!("/api/v1/links/{code}/qr{query}"))
            .send()
    };

    let svg = qr("").await.unwrap();
    assert_eq!(svg.status(), StatusCode::OK);
    assert!(header(&svg, "content-type").starts_with("image/svg+xml"));
    let svg_body = svg.text().await.unwrap();
    assert!(svg_body.contains("<svg"), "svg body: {svg_body}");

    let png = qr("?format=png").await.unwrap();
    assert_eq!(png.status(), StatusCode::OK);
    assert!(header(&png, "content-type").starts_with("image/png"));
    let png_body = png.bytes().await.unwrap();
    assert!(
        png_body.starts_with(b"\x89PNG\r\n\x1a\n"),
        "PNG magic bytes"
    );

    for query in ["?format=svg&size=32", "?format=png&size=2048", "?size=512"] {
        let resp = qr(query).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "qr{query}");
    }
}

#[tokio::test]
async fn qr_parameters_out_of_range_return_422() {
    let server = TestServer::spawn(&[]);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/qr"}))
            .await,
    );

    for query in [
        "format=gif",
        "format=",
        "size=31",
        "size=2049",
        "size=0",
        "size=-5",
    ] {
        let resp = server
            .call(Method::GET, &format!("/api/v1/links/{code}/qr?{query}"))
            .await;

        expect_problem(
            resp,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            &format!("qr?{query}"),
        )
        .await;
    }
    let unknown = server.call(Method::GET, "/api/v1/links/nosuch1/qr").await;
    expect_problem(unknown, StatusCode::NOT_FOUND, "not_found", "qr of unknown").await;
}

/// Width and height from a PNG's IHDR chunk.
fn png_dimensions(png: &[u8]) -> (u32, u32) {
    assert!(
        png.len() >= 24 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG"
    );
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    (width, height)
}

#[tokio::test]
async fn qr_images_are_size_pixels_square_with_a_default_of_256() {
    let server = TestServer::spawn(&[]);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/qr"}))
            .await,
    );

    let mut seen = Vec::new();
    for (query, expected) in [("", 256), ("&size=64", 64), ("&size=300", 300)] {
        let resp = server
            .api(
                Method::GET,
                &format!("/api/v1/links/{code}/qr?format=png{query}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let png = resp.bytes().await.unwrap();
        seen.push((query, expected, png_dimensions(&png)));
    }

    assert!(
        seen.iter().all(|(_, n, dims)| *dims == (*n, *n)),
        "(query, requested size, PNG width × height): {seen:?}"
    );
}
