//! Dashboard sessions: an API key presented once at sign-in is exchanged for a random token,
//! which the browser keeps in an HttpOnly cookie (page scripts never see the key or the token).
//! The store keeps the token's SHA-256, so a session works on every instance sharing the store
//! and signing out on one ends it on all. A session acts as its key: revoking the key ends it.
//! Failed sign-ins count against the same per-address throttle as failed API authentication.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::error::{ServiceError, ServiceResult};
use super::keys::{self, AuthError};
use crate::domain::key::ApiKey;
use crate::domain::time::{UnixSeconds, now};
use crate::service::app::App;

/// How long a session lasts after sign-in (then the dashboard asks for the key again).
pub const SESSION_TTL_SECS: i64 = 12 * 3600;

/// The longest token accepted from a cookie (ours are 43 characters).
const MAX_TOKEN_LEN: usize = 64;

/// A signed-in session: its token (the cookie's value) and when it ends.
pub struct NewSession {
    pub token: String,
    pub key: ApiKey,
    pub expires_at: UnixSeconds,
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Signs in with the API key `presented` by a client at `client`.
pub async fn sign_in(app: &App, presented: &str, client: IpAddr) -> Result<NewSession, AuthError> {
    let key = keys::authenticate(app, presented, client).await?;
    let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let expires_at = now() + SESSION_TTL_SECS;
    app.store
        .create_session(token_hash(&token), key.row_id, expires_at)
        .await
        .map_err(|e| ServiceError::from_store(e, "session"))?;
    metrics::counter!("snip_ui_sign_ins_total").increment(1);
    Ok(NewSession {
        token,
        key,
        expires_at,
    })
}

/// The key a session token acts as, if the session is live and its key active.
pub async fn resolve(app: &App, token: &str) -> ServiceResult<Option<ApiKey>> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Ok(None);
    }
    app.store
        .find_session(token_hash(token), now())
        .await
        .map_err(|e| ServiceError::from_store(e, "session"))
}

/// Ends a session everywhere.
pub async fn sign_out(app: &App, token: &str) -> ServiceResult<()> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Ok(());
    }
    app.store
        .delete_session(token_hash(token))
        .await
        .map_err(|e| ServiceError::from_store(e, "session"))
}

/// The anti-CSRF token of a session: derived from its secret token, so a page of the session
/// can carry it in its forms while another origin, which cannot read the cookie or the page,
/// cannot forge it.
pub fn csrf_token(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"snip-csrf\0");
    h.update(token.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Whether `presented` is the anti-CSRF token of the session `token` (constant time).
pub fn csrf_matches(token: &str, presented: &str) -> bool {
    let expected = csrf_token(token);
    expected.len() == presented.len()
        && expected
            .bytes()
            .zip(presented.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_belongs_to_its_session() {
        let a = csrf_token("one");
        assert_eq!(a.len(), 32);
        assert!(csrf_matches("one", &a));
        assert!(!csrf_matches("two", &a));
        assert!(!csrf_matches("one", &a[..31]));
        assert!(!csrf_matches("one", ""));
    }
}
