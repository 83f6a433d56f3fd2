//! The SQLite readers: a few threads, each owning one read-only connection, fed by one bounded
//! queue.
//!
//! A lookup is a boxed job sent to the queue and answered on a oneshot channel; whichever reader
//! is free takes it. A busy reader drains the queue job after job without sleeping, so under
//! load the cost of handing work to another thread is paid per batch rather than per lookup (the
//! same idea as the writer's group commit). One queue rather than one per reader: a reader that
//! waits on the disk holds up only its own lookup, never the ones queued behind it, so the number
//! of readers is the number of reads in flight. Async workers never run SQLite themselves: a
//! stalled disk stalls the readers, not the workers serving cached redirects, and callers give up
//! after the store timeout. A full queue is refused at once (`Unavailable`), never waited on
//! without bound.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::classify;
use crate::store::{StoreError, StoreResult};

/// Lookups queued per reader before new ones are refused.
const QUEUE_PER_READER: usize = 1024;

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

pub struct Readers {
    /// `None` once dropped: closing it ends the threads.
    queue: Option<SyncSender<ReadJob>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Readers {
    /// Closes the queue and waits for the threads, so their connections are closed.
    fn drop(&mut self) {
        self.queue = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A reader's loop: the next job from the shared queue (one reader at a time waits on it),
/// then the job, without the queue's lock.
fn serve(conn: &Connection, queue: &Mutex<Receiver<ReadJob>>) {
    loop {
        let job = match queue.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(conn),
            Err(_) => return,
        }
    }
}

impl Readers {
    /// Starts one thread per connection.
    pub fn start(connections: Vec<Connection>) -> anyhow::Result<Self> {
        let (tx, rx) = sync_channel::<ReadJob>(QUEUE_PER_READER * connections.len().max(1));
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::with_capacity(connections.len());
        for (i, conn) in connections.into_iter().enumerate() {
            let rx = rx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("snip-sqlite-reader-{i}"))
                    .spawn(move || serve(&conn, &rx))?,
            );
        }
        Ok(Readers {
            queue: Some(tx),
            threads,
        })
    }

    /// Queues `f` for the next free reader; the caller awaits the answer (and bounds the wait).
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
        let Some(queue) = &self.queue else {
            return Err(StoreError::Unavailable("store readers stopped".into()));
        };
        match queue.try_send(job) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_reader_held_up_by_one_lookup_never_holds_up_the_lookups_queued_after_it() {
        let connections = (0..2)
            .map(|_| Connection::open_in_memory().unwrap())
            .collect();
        let readers = Readers::start(connections).unwrap();
        // One reader waits (as on a slow disk) until released.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let slow = readers
            .submit(move |_| {
                let _ = held.recv();
                Ok(0)
            })
            .unwrap();
        // Every later lookup is answered by the other reader meanwhile.
        for i in 1..=8 {
            let quick = readers
                .submit(move |c| c.query_row("SELECT ?1", [i], |r| r.get::<_, i64>(0)))
                .unwrap();
            let answer = tokio::time::timeout(Duration::from_secs(10), quick)
                .await
                .unwrap_or_else(|_| panic!("lookup {i} waited behind the held-up reader"));
            assert_eq!(answer.unwrap().unwrap(), i);
        }
        release.send(()).unwrap();
        assert_eq!(slow.await.unwrap().unwrap(), 0);
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once_and_dropping_the_readers_ends_their_threads() {
        let readers = Readers::start(vec![Connection::open_in_memory().unwrap()]).unwrap();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = std::sync::Arc::new(std::sync::Mutex::new(held));
        let mut queued = Vec::new();
        let refused = loop {
            let held = held.clone();
            match readers.submit(move |_| {
                let _ = held.lock().unwrap().recv();
                Ok(())
            }) {
                Ok(rx) => queued.push(rx),
                Err(e) => break e,
            }
            assert!(queued.len() <= QUEUE_PER_READER + 1, "never refused");
        };
        assert!(matches!(refused, StoreError::Unavailable(_)), "{refused:?}");
        drop(release);
        drop(readers); // joins the thread: returns only once every queued job ran
        for rx in queued {
            assert_eq!(rx.await.unwrap().unwrap(), ());
        }
    }
}
