//! API keys: authenticating a presented key (with a short-lived cache, so that an API request
//! needs no store read, and the failed-authentication throttle), creating, listing, revoking.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::error::{ServiceError, ServiceResult};
use crate::domain::Role;
use crate::domain::key::{ApiKey, ApiKeySecret};
use crate::service::app::App;
use crate::store::StoreError;

/// How long an authenticated key is trusted without asking the store again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);

/// Why a presented key does not authenticate.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown or revoked.
    #[error("unknown or revoked API key")]
    Unknown,
    /// The client's address used up its failed authentications: retry after this many seconds.
    #[error("too many failed authentications")]
    Throttled { retry_after: u64 },
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// The active key whose secret `presented` is, for a client at `client`.
pub async fn authenticate(app: &App, presented: &str, client: IpAddr) -> Result<ApiKey, AuthError> {
    let hash = ApiKeySecret::from_presented(presented).hash();
    if let Some((key, read_at)) = app.key_cache.get(&hash)
        && read_at.elapsed() < KEY_CACHE_TTL
    {
        return Ok(key);
    }
    if let Some(retry_after) = app.failed_auth.blocked(client) {
        metrics::counter!("snip_auth_throttled_total").increment(1);
        return Err(AuthError::Throttled { retry_after });
    }
    let generation = app.key_generation.load(Ordering::Acquire);
    let found = app
        .store
        .find_key(hash.clone())
        .await
        .map_err(|e| ServiceError::from_store(e, "key"))?;
    let Some(key) = found else {
        tracing::warn!(%client, "failed authentication: unknown or revoked API key");
        return Err(match app.failed_auth.failed(client) {
            Some(retry_after) => AuthError::Throttled { retry_after },
            None => AuthError::Unknown,
        });
    };
    crate::cache::fill_unless_invalidated(
        &app.key_generation,
        generation,
        || {
            app.key_cache
                .insert(hash.clone(), (key.clone(), Instant::now()))
        },
        || {
            app.key_cache.remove(&hash);
        },
    );
    Ok(key)
}

/// Creates a key; the secret is returned here only (the store keeps its hash).
pub async fn create(app: &App, name: String, role: Role) -> ServiceResult<(ApiKey, ApiKeySecret)> {
    let secret = ApiKeySecret::generate();
    let key = app
        .store
        .create_key(name, role, secret.hash())
        .await
        .map_err(|e| ServiceError::from_store(e, "key"))?;
    Ok((key, secret))
}

/// Every key (without secrets).
pub async fn list(app: &App) -> ServiceResult<Vec<ApiKey>> {
    app.store
        .list_keys()
        .await
        .map_err(|e| ServiceError::from_store(e, "key"))
}

/// Revokes the key `id`; the last active admin key only when `force`d.
pub async fn revoke(app: &App, id: &str, force: bool) -> ServiceResult<()> {
    if !crate::domain::key::could_be_key_id(id) {
        // Not an id snip could have issued: no store round trip (and no NUL for PostgreSQL).
        return Err(ServiceError::NotFound("key"));
    }
    match app.store.revoke_key(id, force).await {
        Ok(()) => {
            // The secret is unknown here (only its hash is stored): forget every cached key.
            app.forget_keys();
            Ok(())
        }
        Err(StoreError::NotFound) => Err(ServiceError::NotFound("key")),
        Err(StoreError::Conflict(_)) => Err(ServiceError::LastAdmin),
        Err(e) => Err(ServiceError::from_store(e, "key")),
    }
}
