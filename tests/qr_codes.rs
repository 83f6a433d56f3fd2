//! QR codes of short links (`GET /api/v1/links/{code}/qr`). docs/api.md, "QR codes".

use crate::common::{self, TestServer, code_of, expect_problem, header};
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

/// QR rendering must not run on the threads that serve redirects (the audit saw redirect p50
/// go from 0.46 ms to 260 ms while a few clients looped on 2048-pixel PNGs). No clock here:
/// while 48 large, uncached PNGs are rendered eight at a time, ten redirects asked for one
/// after the other are all answered before half of the PNGs are done. With rendering on the
/// async workers (two on the 2-core CI machine), each redirect waits behind several renders
/// and every PNG is done first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redirects_are_answered_while_large_qr_codes_render() {
    let server = TestServer::spawn(&["--qr-concurrency", "8"]);
    let code = code_of(
        &server
            .new_link(json!({"url": "https://example.com/qr-load"}))
            .await,
    );
    let renders: Vec<_> = (0..48)
        .map(|i| {
            let request = server.api(
                Method::GET,
                &format!("/api/v1/links/{code}/qr?format=png&size={}", 2048 - i),
            );
            tokio::spawn(async move {
                let resp = request.send().await.unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                resp.bytes().await.unwrap().len()
            })
        })
        .collect();
    // Wait until rendering has begun (the first render counted or still running).
    assert!(
        common::wait_until(
            || async { common::metric(&server, "snip_qr_renders_in_flight").await >= 1.0 },
            std::time::Duration::from_secs(20),
        )
        .await,
        "no QR render started"
    );
    for i in 0..10 {
        let resp = server.visit(&code).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "redirect {i}");
    }
    let done = renders.iter().filter(|r| r.is_finished()).count();
    assert!(
        done < renders.len() / 2,
        "{done} of {} PNGs were rendered before ten redirects were answered",
        renders.len()
    );
    for render in renders {
        assert!(render.await.unwrap() > 1000);
    }
    // The same image again comes from the cache: no new render.
    let before = common::metric(&server, "snip_qr_renders_total").await;
    let again = server
        .api(
            Method::GET,
            &format!("/api/v1/links/{code}/qr?format=png&size=2048"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(
        common::metric(&server, "snip_qr_renders_total").await,
        before
    );
}
