//! Building and running the application: open the store, ensure an admin key, bind, serve,
//! and on shutdown drain requests and flush clicks.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::analytics::geo::Geo;
use crate::analytics::visit::Analytics;
use crate::clicks::flusher;
use crate::config::{Settings, base_url_for};
use crate::domain::ApiKeySecret;
use crate::domain::Role;
use crate::http;
use crate::service::app::{App, AppState};
use crate::service::housekeeping;
use crate::shared_cache::SharedCache;
use crate::store::{Store, StoreOptions};

pub struct Application {
    listener: TcpListener,
    /// The operators' listener (`--admin-listen`).
    admin_listener: Option<TcpListener>,
    state: AppState,
    /// A generated admin key, when the store had none and `--admin-key` was not given.
    pub generated_admin_key: Option<String>,
}

impl Application {
    /// Binds the listener (port 0 allowed), opens the store and ensures an admin key exists,
    /// in that order: whatever can fail without touching the disk fails first, so a busy port
    /// or a bad flag never leaves a new store behind with a generated key nobody saw.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let trusted = settings.trusted_proxies.clone();
        let geo = Geo::new(
            settings.country_header.as_deref(),
            settings.geoip_db.as_deref(),
        )?;
        let shared = settings
            .redis
            .as_ref()
            .map(|url| SharedCache::new(url.expose(), settings.cache_ttl, settings.store_timeout))
            .transpose()
            .context("--redis")?;
        let (listener, admin_listener) = bind(&settings).await?;
        let addr = listener.local_addr()?;
        let bound = base_url_for(addr);
        let base_url = settings.base_url.clone().unwrap_or_else(|| bound.clone());
        // A loopback or unspecified bound address stands for every loopback spelling on its
        // port (see `domain::destination`).
        let own_origins = vec![base_url.clone(), bound];
        if settings.country_header.is_some() && trusted.is_empty() {
            tracing::warn!(
                "--country-header is believed from every client because --trusted-proxies is \
                 not set: set it to the addresses of the proxy or CDN that sets the header"
            );
        }
        let store = crate::store::open(&settings.database, &store_options(&settings)).await?;
        // The last step that can fail: a key generated here is printed by the caller.
        let generated_admin_key = ensure_admin_key(store.as_ref(), &settings).await?;
        let analytics = Analytics::new(geo, trusted);
        let deny = crate::deny::DenyList::load(settings.deny_list.as_deref())?;
        let mut app = App::new(
            settings,
            store,
            base_url,
            own_origins,
            crate::telemetry::metrics_handle(),
            analytics,
            shared,
        );
        app.deny = deny;
        let state = Arc::new(app);
        housekeeping::refresh_visitor_key(&state).await;
        Ok(Application {
            listener,
            admin_listener,
            state,
            generated_admin_key,
        })
    }

    /// The address of the admin listener, if there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then stops accepting, finishes in-flight requests
    /// (bounded by the shutdown timeout) and flushes every buffered click.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state;
        let settings = state.settings.clone();
        let background = Background::start(&state).await;

        let (drain_tx, drain_rx) = watch::channel(false);
        let draining = state.clone();
        let graceful = async move {
            shutdown.await;
            draining.draining.store(true, Ordering::Relaxed);
            tracing::info!("shutdown requested: draining in-flight requests");
            let _ = drain_tx.send(true);
        };
        let admin = self
            .admin_listener
            .map(|listener| serve_admin(listener, state.clone(), drain_rx.clone()));
        let router = http::router(state.clone());
        let limits = http::server::ConnectionLimits {
            max_connections: http::server::connection_capacity(
                settings.connections.max_connections,
            ),
            ..settings.connections
        };
        let server = http::server::serve(self.listener, state.clone(), router, limits, graceful);
        let mut server = std::pin::pin!(server);
        let mut drain_rx = drain_rx;
        let served = tokio::select! {
            () = &mut server => Ok(()),
            // The watch guard is dropped inside the block, so the whole future stays `Send`
            // (an embedder can spawn it).
            _ = async { drop(drain_rx.wait_for(|d| *d).await) } => {
                match tokio::time::timeout(settings.shutdown_timeout, &mut server).await {
                    Ok(()) => Ok(()),
                    Err(_) => {
                        tracing::warn!("in-flight requests did not finish within the shutdown timeout");
                        Ok(())
                    }
                }
            }
        };

        if let Some(admin) = admin {
            admin.abort();
        }
        background.stop().await;
        housekeeping::final_flush(&state).await;
        served
    }
}

/// Binds the listener and the operators' listener (`--admin-listen`).
async fn bind(settings: &Settings) -> anyhow::Result<(TcpListener, Option<TcpListener>)> {
    let listener = TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let admin_listener = match &settings.admin_listen {
        Some(admin) => Some(
            TcpListener::bind(admin)
                .await
                .with_context(|| format!("binding --admin-listen {admin}"))?,
        ),
        None => None,
    };
    Ok((listener, admin_listener))
}

fn store_options(settings: &Settings) -> StoreOptions {
    StoreOptions {
        timeout: settings.store_timeout,
        replicas: settings
            .database_replicas
            .iter()
            .map(|r| r.expose().to_string())
            .collect(),
        pool_size: settings.database_pool_size,
        click_durability: settings.click_durability,
        write_consistency: settings.write_consistency,
        code_filter: true,
        sqlite_readers: settings.sqlite_readers,
    }
}

/// Serves the operators' router on `listener` until `drained` is raised.
fn serve_admin(
    listener: TcpListener,
    state: AppState,
    mut drained: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let router = http::admin_router(state);
    tokio::spawn(async move {
        let stop = async move {
            let _ = drained.wait_for(|d| *d).await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "the admin listener failed");
        }
    })
}

/// The background tasks (click flusher, housekeeping, the change feed of a shared store, the
/// SIGHUP handler), all stopped by one signal.
struct Background {
    stop: watch::Sender<bool>,
    /// The tasks [`Background::stop`] waits for.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Background {
    /// Starts them; with a change feed, returns once it listens (bounded by the store timeout:
    /// a database that does not answer leaves the feed reconnecting in the background), so
    /// that `/health` does not start out `unhealthy`.
    async fn start(state: &AppState) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = vec![
            tokio::spawn(flusher::run(
                state.clicks.clone(),
                state.store.clone(),
                state.settings.click_flush_interval,
                state.settings.click_fold_interval,
                stop_rx.clone(),
            )),
            tokio::spawn(housekeeping::run(state.clone(), stop_rx.clone())),
        ];
        let coherence = crate::service::coherence::start(state, stop_rx.clone());
        // Always: without a handler, SIGHUP would end the process without a graceful stop.
        tokio::spawn(housekeeping::reload_deny_list_on_sighup(
            state.clone(),
            stop_rx,
        ));
        if let Some(coherence) = coherence {
            tasks.push(coherence);
            let deadline = tokio::time::Instant::now() + state.settings.store_timeout;
            while state.change_feed.listening() != Some(true)
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        Background { stop, tasks }
    }

    /// Raises the stop signal and waits for the tasks to end.
    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// `--admin-key` is ensured to exist as admin; with no key at all, one is generated.
async fn ensure_admin_key(
    store: &dyn Store,
    settings: &Settings,
) -> anyhow::Result<Option<String>> {
    if let Some(key) = &settings.admin_key {
        let secret = ApiKeySecret::from_presented(key.expose());
        store
            .ensure_admin_key(secret.hash())
            .await
            .context("ensuring the --admin-key")?;
        return Ok(None);
    }
    if store.count_keys().await.context("counting API keys")? > 0 {
        return Ok(None);
    }
    let secret = ApiKeySecret::generate();
    store
        .create_key(
            "admin (generated at first start)".into(),
            Role::Admin,
            secret.hash(),
        )
        .await
        .context("creating the first admin key")?;
    Ok(Some(secret.expose().to_string()))
}
