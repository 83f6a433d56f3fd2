//! The SQLite readers: a few threads, each owning one read-only connection, fed by bounded
//! queues.
//!
//! A lookup is a boxed job sent to a reader thread and answered on a oneshot channel. A busy
//! reader drains its queue job after job without sleeping, so under load the cost of handing
//! work to another thread is paid per batch rather than per lookup (the same idea as the
//! writer's group commit). Async workers never run SQLite themselves: a stalled disk stalls the
//! readers, not the workers serving cached redirects, and callers give up after the store
//! timeout. A full queue is refused at once (`Unavailable`), never waited on without bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::classify;
use crate::store::{StoreError, StoreResult};

/// Lookups queued per reader before new ones are refused.
const QUEUE: usize = 1024;

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

pub struct Readers {
    queues: Vec<SyncSender<ReadJob>>,
    next: AtomicUsize,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Readers {
    /// Closes the queues and waits for the threads, so their connections are closed.
    fn drop(&mut self) {
        self.queues.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Readers {
    /// Starts one thread per connection.
    pub fn start(connections: Vec<Connection>) -> anyhow::Result<Self> {
        let mut queues = Vec::with_capacity(connections.len());
        let mut threads = Vec::with_capacity(connections.len());
        for (i, conn) in connections.into_iter().enumerate() {
            let (tx, rx) = sync_channel::<ReadJob>(QUEUE);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("snip-sqlite-reader-{i}"))
                    .spawn(move || {
                        while let Ok(job) = rx.recv() {
                            job(&conn);
                        }
                    })?,
            );
            queues.push(tx);
        }
        Ok(Readers {
            queues,
            next: AtomicUsize::new(0),
            threads,
        })
    }

    /// Queues `f` on the next reader; the caller awaits the answer (and bounds the wait).
    pub fn submit<T, F>(&self, f: F) -> StoreResult<oneshot::Receiver<StoreResult<T>>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            // Nobody waits any more (timed out): skip the work.
            if !tx.is_closed() {
                let _ = tx.send(f(conn).map_err(classify));
            }
        });
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.queues.len();
        match self.queues[i].try_send(job) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(StoreError::Unavailable(
                "too many store reads queued".into(),
            )),
            Err(TrySendError::Disconnected(_)) => {
                Err(StoreError::Unavailable("store readers stopped".into()))
            }
        }
    }
}
