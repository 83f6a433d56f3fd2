//! The benchmark baseline: a bare hyper server (no framework, no routing, no state) that answers
//! every request with one fixed `302` and a fixed `Location`. It is the "physical limit" of this
//! machine and load generator; `bench/run.sh` measures snip against it in the same run.
//!
//! Usage: `baseline [ADDR]` (default 127.0.0.1:0); prints `listening on http://ADDR`.

use std::convert::Infallible;
use std::io::Write;

use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CACHE_CONTROL, HeaderValue, LOCATION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn answer(_req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, Infallible> {
    let mut response = Response::new(Empty::new());
    *response.status_mut() = StatusCode::FOUND;
    let h = response.headers_mut();
    h.insert(
        LOCATION,
        HeaderValue::from_static("https://example.com/a/long/path?q=1"),
    );
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=90"),
    );
    Ok(response)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}
