//! The change feed of a PostgreSQL store: one connection to the primary that `LISTEN`s on
//! [`CHANNEL`] and reports every other instance's committed link change to a [`ChangeSink`]
//! (see `crate::service::coherence` for what the application does with them).
//!
//! Notifications are not queued for a listener that is not connected. So when the connection
//! breaks (primary restarted or failed over, network cut), the listener reconnects with
//! backoff and reports that it listens again `after_gap`: anything may have been missed.
//!
//! The same session holds the instance's liveness lock (`pg_advisory_lock` on a hash of its
//! name): other instances replay the click journal of an instance whose lock is free.
//!
//! A connection whose packets are silently dropped (a black-holed network path) breaks nothing
//! that TCP would notice for minutes, and notifications queued behind it arrive only when its
//! retransmissions get through. So the listener sends a heartbeat every [`HEARTBEAT`] and gives
//! up on the connection when one is not answered within [`HEARTBEAT_BOUND`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::store::ChangeSink;

/// The channel link changes are announced on.
pub const CHANNEL: &str = super::NOTIFY_CHANNEL;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How often the listening connection is asked to answer.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A heartbeat not answered within this is a broken connection.
pub const HEARTBEAT_BOUND: Duration = Duration::from_secs(2);

/// Listens for link changes until `stop` turns true, reconnecting whenever the connection
/// breaks. `config` is the primary's (several hosts and `target_session_attrs=read-write` are
/// fine: after a failover it finds the new primary); `instance` is this process's name in the
/// notifications, whose own changes are not reported.
pub async fn follow(
    config: tokio_postgres::Config,
    instance: String,
    timeout: Duration,
    sink: Arc<dyn ChangeSink>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = MIN_BACKOFF;
    let mut reconnect = false;
    loop {
        match listen(
            &config,
            &instance,
            timeout,
            sink.as_ref(),
            &mut stop,
            reconnect,
        )
        .await
        {
            Ok(()) => return,
            Err(e) => sink.interrupted(&e, backoff),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        reconnect = true;
    }
}

/// Reports an announced change, `INSTANCE CODE`, unless this instance sent it (it updated its
/// cache when it wrote).
fn report(payload: &str, instance: &str, sink: &dyn ChangeSink) {
    let (from, code) = payload.rsplit_once(' ').unwrap_or(("", payload));
    if from != instance {
        sink.changed(code);
    }
}

/// One connection's life: connect, `LISTEN`, report listening (`after_gap` on a `reconnect`),
/// then report every announced change until the connection breaks (an error) or `stop` (Ok).
async fn listen(
    config: &tokio_postgres::Config,
    instance: &str,
    timeout: Duration,
    sink: &dyn ChangeSink,
    stop: &mut watch::Receiver<bool>,
    reconnect: bool,
) -> anyhow::Result<()> {
    let (client, mut connection) = tokio::time::timeout(timeout, config.connect(NoTls))
        .await
        .map_err(|_| anyhow::anyhow!("connecting timed out"))??;
    // The connection is driven here, in the same loop as the LISTEN query and the stop signal.
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    // The instance's liveness lock, held while this session lives (see `clicks::reap_journals`);
    // `instance` is hex.
    let sql = format!(
        "LISTEN {CHANNEL}; SELECT pg_advisory_lock(hashtextextended('{}', 0))",
        instance.replace('\'', "")
    );
    let subscribe = client.batch_execute(&sql);
    let subscribe = tokio::time::timeout(timeout, subscribe);
    tokio::pin!(subscribe);
    let mut listening = false;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The heartbeat in flight, and when it was sent.
    let mut beat = None;
    let mut beat_sent = Instant::now();
    loop {
        tokio::select! {
            subscribed = &mut subscribe, if !listening => {
                subscribed.map_err(|_| anyhow::anyhow!("LISTEN timed out"))??;
                listening = true;
                sink.listening(reconnect);
            }
            _ = heartbeat.tick(), if listening => {
                if beat.is_none() {
                    beat = Some(Box::pin(client.simple_query("")));
                    beat_sent = Instant::now();
                } else if beat_sent.elapsed() >= HEARTBEAT_BOUND {
                    anyhow::bail!(
                        "no answer to the heartbeat within {} ms",
                        HEARTBEAT_BOUND.as_millis()
                    );
                }
            }
            answered = async { beat.as_mut().expect("guarded").await }, if beat.is_some() => {
                answered?;
                beat = None;
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(n))) => report(n.payload(), instance, sink),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("the connection closed"),
            },
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
    }
}
