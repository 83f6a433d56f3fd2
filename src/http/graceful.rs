//! Graceful shutdown of the open connections, at no cost per request.
//!
//! hyper-util's `GracefulShutdown` polls a `watch` receiver's `changed()` beside the connection
//! on every wake-up of every connection: a lock of a mutex shared with other connections and
//! about a hundred instructions per request on the redirect path. Here a connection registers
//! its task's waker once, when it is first polled, and each later poll reads one flag that only
//! changes at shutdown; shutdown sets the flag, wakes every registered connection (each then
//! asks hyper to finish its in-flight request and close) and waits until every connection has
//! ended.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use hyper_util::server::graceful::GracefulConnection;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// The connections being served, and whether shutdown has begun.
#[derive(Default)]
pub struct Shutdown {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    started: AtomicBool,
    /// Every watched connection not yet ended, with its task's waker once it has been polled.
    open: Mutex<Open>,
    /// Notified when the last connection ends.
    all_ended: Notify,
}

#[derive(Default)]
struct Open {
    next: u64,
    wakers: HashMap<u64, Option<Waker>>,
}

impl Shutdown {
    /// `connection`, counted as open until the returned future ends or is dropped, and asked
    /// to finish gracefully once [`Shutdown::shutdown`] has begun.
    pub fn watch<C: GracefulConnection>(&self, connection: C) -> Watched<C> {
        let id = {
            let mut open = self.shared.open.lock();
            let id = open.next;
            open.next += 1;
            open.wakers.insert(id, None);
            id
        };
        Watched {
            connection,
            open: Registration {
                shared: self.shared.clone(),
                id,
            },
            waker: None,
            stopping: false,
        }
    }

    /// The number of connections watched and not yet ended.
    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.shared.open.lock().wakers.len()
    }

    /// Asks every watched connection to finish (its in-flight request, then close), and returns
    /// once every one has ended.
    pub async fn shutdown(self) {
        let shared = self.shared;
        shared.started.store(true, Ordering::SeqCst);
        // Woken under the lock: a connection registering after this sees `started` (set
        // before the lock was taken) at the poll that registers it.
        for waker in shared.open.lock().wakers.values().flatten() {
            waker.wake_by_ref();
        }
        loop {
            let ended = shared.all_ended.notified();
            let mut ended = std::pin::pin!(ended);
            ended.as_mut().enable();
            if shared.open.lock().wakers.is_empty() {
                return;
            }
            ended.await;
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection watched by [`Shutdown`].
    pub struct Watched<C> {
        #[pin]
        connection: C,
        // Counts the connection as open until dropped.
        open: Registration,
        // The waker registered for this connection (its task's: registered again only if the
        // future is polled by another task).
        waker: Option<Waker>,
        stopping: bool,
    }
}

impl<C: GracefulConnection> Future for Watched<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let mut this = self.project();
        if !*this.stopping {
            if !this.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                register(this.open, this.waker, cx.waker());
            }
            if this.open.shared.started.load(Ordering::Acquire) {
                *this.stopping = true;
                this.connection.as_mut().graceful_shutdown();
            }
        }
        this.connection.poll(cx)
    }
}

/// Records `waker` as the connection's (out of line: once per connection).
#[cold]
#[inline(never)]
fn register(open: &Registration, mine: &mut Option<Waker>, waker: &Waker) {
    *mine = Some(waker.clone());
    if let Some(slot) = open.shared.open.lock().wakers.get_mut(&open.id) {
        *slot = Some(waker.clone());
    }
}

/// A watched connection's place among the open ones, given up when it is dropped.
struct Registration {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut open = self.shared.open.lock();
        open.wakers.remove(&self.id);
        if open.wakers.is_empty() {
            self.shared.all_ended.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use http_body_util::Empty;
    use hyper::body::{Bytes, Incoming};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    /// The bound on every wait below (a fact arrives in milliseconds).
    const BOUND: Duration = Duration::from_secs(10);

    /// Serves one HTTP/1 connection over an in-memory pipe, watched by `shutdown`; each request
    /// is answered once `release` is notified (at once when `release` is None); `entered` is
    /// notified when a request arrives. Returns the client's end.
    fn serve(
        shutdown: &Shutdown,
        entered: Arc<Notify>,
        release: Option<Arc<Notify>>,
    ) -> (DuplexStream, tokio::task::JoinHandle<()>) {
        let (client, server) = tokio::io::duplex(4096);
        let service = service_fn(move |_req: hyper::Request<Incoming>| {
            let (entered, release) = (entered.clone(), release.clone());
            async move {
                entered.notify_one();
                if let Some(release) = release {
                    release.notified().await;
                }
                Ok::<_, Infallible>(hyper::Response::new(Empty::<Bytes>::new()))
            }
        });
        let connection = http1::Builder::new().serve_connection(TokioIo::new(server), service);
        let watched = shutdown.watch(connection);
        let task = tokio::spawn(async move {
            let _ = watched.await;
        });
        (client, task)
    }

    /// Reads from `client` until `needle` has arrived; returns everything read.
    async fn read_until(client: &mut DuplexStream, needle: &str) -> String {
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let n = tokio::time::timeout(BOUND, client.read(&mut buf))
                .await
                .expect("bounded read")
                .unwrap();
            assert!(
                n > 0,
                "closed before {needle:?}: {:?}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(seen).unwrap()
    }

    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed_and_shutdown_returns() {
        let shutdown = Shutdown::default();
        let (mut client, task) = serve(&shutdown, Arc::new(Notify::new()), None);
        client.write_all(REQUEST).await.unwrap();
        read_until(&mut client, "\r\n\r\n").await;
        assert_eq!(shutdown.count(), 1, "the connection is kept alive");
        tokio::time::timeout(BOUND, shutdown.shutdown())
            .await
            .expect("shutdown returns once the idle connection has closed");
        assert!(task.is_finished() || tokio::time::timeout(BOUND, task).await.is_ok());
        let mut rest = Vec::new();
        let n = tokio::time::timeout(BOUND, client.read_to_end(&mut rest))
            .await
            .expect("bounded read")
            .unwrap();
        assert_eq!(n, 0, "nothing more, then end of stream");
    }

    #[tokio::test]
    async fn an_in_flight_request_is_answered_before_the_connection_closes() {
        let shutdown = Shutdown::default();
        let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (mut client, _task) = serve(&shutdown, entered.clone(), Some(release.clone()));
        client.write_all(REQUEST).await.unwrap();
        tokio::time::timeout(BOUND, entered.notified())
            .await
            .expect("the request reaches the service");
        let stopping = tokio::spawn(shutdown.shutdown());
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(
            !stopping.is_finished(),
            "shutdown waits for the in-flight request"
        );
        release.notify_one();
        let answer = read_until(&mut client, "\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        tokio::time::timeout(BOUND, stopping)
            .await
            .expect("shutdown returns once the connection has closed")
            .unwrap();
    }

    #[tokio::test]
    async fn a_connection_watched_before_shutdown_but_polled_after_is_waited_for() {
        let shutdown = Shutdown::default();
        let (client, server) = tokio::io::duplex(4096);
        let service = service_fn(|_req: hyper::Request<Incoming>| async {
            Ok::<_, Infallible>(hyper::Response::new(Empty::<Bytes>::new()))
        });
        let watched =
            shutdown.watch(http1::Builder::new().serve_connection(TokioIo::new(server), service));
        assert_eq!(shutdown.count(), 1);
        let stopping = tokio::spawn(shutdown.shutdown());
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(
            !stopping.is_finished(),
            "the unpolled connection is still open"
        );
        // Polled only now: it sees the shutdown at once and closes without a request.
        tokio::time::timeout(BOUND, watched)
            .await
            .expect("the connection ends")
            .unwrap();
        tokio::time::timeout(BOUND, stopping)
            .await
            .expect("shutdown returns")
            .unwrap();
        drop(client);
    }

    #[tokio::test]
    async fn shutdown_with_no_connection_returns_at_once() {
        tokio::time::timeout(BOUND, Shutdown::default().shutdown())
            .await
            .expect("nothing to wait for");
    }
}
