//! The accept loop: every connection is served by hyper with a header-read timeout (which is
//! also the keep-alive idle timeout, enforced by a watchdog per connection), a cap on header
//! bytes (431 beyond it), and a cap on open connections. A connection over the cap is answered `503` at once and closed, so a new client
//! always gets a slot or an answer, never a hang, even while idle or slowloris connections are
//! held open (they are closed by the header-read timeout).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::response::Response;
use futures_util::future::Either;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::AppState;
use super::graceful::Shutdown;
use crate::domain::time::monotonic_coarse_ms;

pub use crate::config::{ConnectionLimits, MIN_HEADER_BYTES};

/// File descriptors kept free for everything that is not a client connection: the store's
/// files and pools, Redis, logs, and connections being shed.
const RESERVED_FDS: u64 = 128;

/// Connections being answered 503 at once; beyond that, extra ones are closed unanswered.
const MAX_SHEDDING: usize = 64;

/// The answer to a connection over the cap (problem+json like every API error; `Connection:
/// close`: there is no slot to keep).
static OVER_CAPACITY: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    let body = super::error::Problem::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "too many open connections; retry shortly".into(),
    )
    .to_json();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
});

/// Raises the soft limit on open files to the hard limit, and returns the number of
/// connections that fit under it (at most `wanted`), warning when that is fewer.
pub fn connection_capacity(wanted: usize) -> usize {
    let soft = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => soft,
        Err(e) => {
            tracing::warn!(error = %e, "could not read or raise the open-file limit");
            return wanted;
        }
    };
    let fits = soft.saturating_sub(RESERVED_FDS).max(1);
    if (fits as usize) < wanted {
        tracing::warn!(
            open_file_limit = soft,
            max_connections = fits,
            wanted,
            "the open-file limit (RLIMIT_NOFILE) is low: serving at most {fits} connections at \
             once; raise it (LimitNOFILE= in systemd, ulimit -n) to serve {wanted}"
        );
        fits as usize
    } else {
        wanted
    }
}

/// Serves `listener` until `stop` resolves, then stops accepting and returns once every open
/// connection has finished its in-flight request and closed.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    router: Router,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let shedding = Arc::new(Semaphore::new(MAX_SHEDDING));
    let connections = Connections {
        builder: connection_builder(&limits),
        state,
        router,
        header_read_timeout: limits.header_read_timeout,
        graceful: Shutdown::default(),
    };
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener) => accepted,
            _ = &mut stop => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!("snip_connections_shed_total").increment(1);
            shed(stream, &shedding);
            continue;
        };
        connections.start(stream, peer, slot);
    }
    drop(listener);
    connections.graceful.shutdown().await;
}

/// The next accepted connection. A failed accept of one connection is skipped; out of file
/// descriptors or memory, it waits for connections to close.
async fn accept(listener: &TcpListener) -> (TcpStream, std::net::SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The connection settings, configured once and shared by every connection.
fn connection_builder(limits: &ConnectionLimits) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    // HTTP/1 gets no hyper timer: its header-read timeout allocates and registers a timer for
    // every request, which cost the hot redirect ~10 % CPU; the per-connection watchdog does
    // the same job.
    builder
        .http1()
        .max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BYTES));
    // No HTTP/2 keep-alive PINGs: a PING is a write, and writes while no request is in flight
    // keep a connection from counting as idle; the watchdog closes idle connections instead.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes.min(u32::MAX as usize) as u32)
        .max_concurrent_streams(256)
        .keep_alive_interval(None);
    builder
}

/// What every accepted connection is served with.
struct Connections {
    builder: Builder<TokioExecutor>,
    state: AppState,
    router: Router,
    header_read_timeout: Duration,
    graceful: Shutdown,
}

impl Connections {
    /// Serves one connection in a task of its own, holding `slot` until it ends, with its
    /// watchdog beside it.
    fn start(&self, stream: TcpStream, peer: std::net::SocketAddr, slot: OwnedSemaphorePermit) {
        let activity = Arc::new(Activity::new());
        // Everything a request needs, behind one per-connection `Arc`: the clone each request's
        // future takes touches no counter shared with other connections.
        let context = Arc::new(Connection {
            state: self.state.clone(),
            router: self.router.clone(),
            peer: peer.ip(),
            activity: activity.clone(),
        });
        // A hyper service, called by reference: no tower adapter, which would clone the service
        // (and so this `Arc`) and drive a `Oneshot` for every request.
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            if let Some(response) = context.answer_cached(&req) {
                return Either::Left(std::future::ready(Ok(response)));
            }
            let context = context.clone();
            let answer: Pending = Box::pin(async move {
                let request = InFlight::begin(&context.activity);
                let response =
                    super::dispatch(&context.state, &context.router, req, context.peer).await;
                drop(request);
                Ok(response)
            });
            Either::Right(answer)
        });
        let io = Tracked {
            inner: stream,
            activity: activity.clone(),
            http2: None,
        };
        let connection = self
            .builder
            .serve_connection(TokioIo::new(io), service)
            .into_owned();
        let connection = self.graceful.watch(connection);
        let served = tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
        tokio::spawn(watchdog(
            activity,
            served.abort_handle(),
            self.header_read_timeout,
        ));
    }
}

/// What the requests of one connection share.
struct Connection {
    state: AppState,
    router: Router,
    peer: std::net::IpAddr,
    activity: Arc<Activity>,
}

/// The answer to a request that is not ready at once (everything but a cached redirect):
/// boxed, so that the future hyper keeps for every request, a cached redirect's included, is
/// two words and a response rather than a state machine that owns the request.
type Pending = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl Connection {
    /// A cached redirect, answered without a future ([`super::answer_cached`]).
    fn answer_cached(&self, req: &hyper::Request<Incoming>) -> Option<Response> {
        let _request = Answering::begin(&self.activity);
        super::answer_cached(&self.state, req, self.peer)
    }
}

/// What the watchdog of a connection knows: whether a request is being served, and since when
/// the connection has been waiting for its next request (the connection's start, the end of
/// the last request, or the last response bytes written after it).
struct Activity {
    in_flight: AtomicU32,
    /// Milliseconds on [`monotonic_coarse_ms`]'s clock (read twice per request), or [`BUSY`]
    /// while a cached redirect is being answered.
    waiting_since: AtomicU64,
}

/// `waiting_since` while a request is answered within one poll: never expired.
const BUSY: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Activity {
            in_flight: AtomicU32::new(0),
            waiting_since: AtomicU64::new(monotonic_coarse_ms()),
        }
    }

    /// Waiting for a request (idle, or receiving headers) for longer than `limit`.
    fn expired(&self, limit: Duration) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
            && monotonic_coarse_ms().saturating_sub(self.waiting_since.load(Ordering::Acquire))
                > limit.as_millis() as u64
    }

    /// The connection starts waiting for its next request now.
    fn waiting_from_now(&self) {
        self.waiting_since
            .store(monotonic_coarse_ms(), Ordering::Release);
    }
}

/// A request being served (its headers are in); dropped when its response is ready, or when
/// the connection goes away mid-request.
struct InFlight<'a>(&'a Activity);

impl<'a> InFlight<'a> {
    fn begin(activity: &'a Activity) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(activity)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.waiting_from_now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A cached redirect being answered: within one poll of the connection, without an await, so
/// the connection's own task is the only one that can see it begin and end. It marks the
/// connection busy with plain stores rather than [`InFlight`]'s two atomic read-modify-writes
/// per request; a request in flight on another task (HTTP/2) still counts in `in_flight`, and
/// its end, like this one's, stores the time.
struct Answering<'a>(&'a Activity);

impl<'a> Answering<'a> {
    fn begin(activity: &'a Activity) -> Self {
        activity.waiting_since.store(BUSY, Ordering::Release);
        Answering(activity)
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        self.0.waiting_from_now();
    }
}

/// Closes a connection that has been waiting for a request's headers longer than `limit`:
/// one that never sends anything, one that trickles its headers (slowloris), and an idle
/// keep-alive connection. Checks a few times per `limit`, at a phase of its own: connections
/// opened together (a client's reconnect storm) are closed spread over a period rather than in
/// one burst that would delay everyone's redirects. Ends with the connection.
async fn watchdog(activity: Arc<Activity>, connection: tokio::task::AbortHandle, limit: Duration) {
    let period = (limit / 4).max(Duration::from_millis(50));
    tokio::time::sleep(period.mul_f64(rand::random::<f64>())).await;
    loop {
        tokio::time::sleep(period).await;
        if connection.is_finished() {
            return;
        }
        if activity.expired(limit) {
            connection.abort();
            return;
        }
    }
}

/// The client's socket, noting when response bytes go out: an HTTP/1 response body still
/// being written (a large export to a slow reader) is not an idle connection. On HTTP/2 the
/// writes after a response are as likely the answers to a client's PINGs, which must not keep
/// an idle connection open: there only requests count.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
    /// Set by the first read: whether the connection opened with the HTTP/2 preface.
    http2: Option<bool>,
}

impl tokio::io::AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.http2.is_none() && buf.filled().len() > before {
            // A first read shorter than the preface's start that could begin it ("P", "PR")
            // counts as HTTP/2: the safe side (writes then keep nothing open).
            let first = &buf.filled()[before..];
            self.http2 = Some(first.starts_with(b"PRI ") || b"PRI ".starts_with(first));
        }
        read
    }
}

impl tokio::io::AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note_write(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note_write(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Tracked {
    /// Bytes written while no request is in flight are the tail of a response body.
    fn note_write(&self, written: &Poll<std::io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(1..)))
            && self.http2 == Some(false)
            && self.activity.in_flight.load(Ordering::Acquire) == 0
        {
            self.activity.waiting_from_now();
        }
    }
}

/// Answers a connection over the cap with 503 and closes it. What the client already sent is
/// read first, so that closing sends a FIN after the answer rather than a reset that could
/// destroy it; when a shedding slot is free, the close waits (briefly) for the client to read
/// the answer and hang up.
fn shed(stream: TcpStream, shedding: &Arc<Semaphore>) {
    let mut sink = [0u8; 4096];
    while let Ok(1..) = stream.try_read(&mut sink) {}
    let _ = stream.try_write(&OVER_CAPACITY);
    let Ok(shedder) = shedding.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = tokio::time::timeout(Duration::from_millis(250), async {
            stream.shutdown().await?;
            let mut read = 0;
            while read < 64 * 1024 {
                match stream.read(&mut sink).await? {
                    0 => break,
                    n => read += n,
                }
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        drop(shedder);
    });
}

/// Errors that concern one connection only (the next accept is fine).
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::OVER_CAPACITY;

    #[test]
    fn the_over_capacity_answer_has_the_length_it_announces() {
        let text = std::str::from_utf8(&OVER_CAPACITY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(body.len(), length);
        serde_json::from_str::<serde_json::Value>(body).unwrap();
    }
}
