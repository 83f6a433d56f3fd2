//! The use cases: what the application does, apart from HTTP. `crate::http` parses a request,
//! calls one of these and renders the answer; startup runs the background tasks. Nothing here
//! knows HTTP routing, and nothing here names a store backend: the store is a `dyn Store`.
//!
//! - `app`: [`App`], the settings and every part the use cases share
//! - `redirect`: following a short code (cache, Redis, store; expiry, `max_clicks`, the click)
//! - `links`: create (with idempotency), read, change, take down, delete, list
//! - `keys`: authenticating a presented key (cache, throttle); creating, listing, revoking keys
//! - `stats`: a link's click statistics, the overview of a caller's links, unknown-code hits
//! - `session`: dashboard sessions (sign-in with a key, the session cookie's token, CSRF)
//! - `health`: the checks of `/health`, readiness, the gauges of `/metrics`
//! - `coherence`: the store's change feed → this instance's redirect cache
//! - `housekeeping`: periodic chores, the deny list's SIGHUP reload, the final click flush
//! - `qr`: QR rendering on threads of its own
//! - `auth_throttle`: failed authentications per client address
//! - `error`: [`ServiceError`](error::ServiceError), keeping the store's error as its source

pub mod app;
pub mod auth_throttle;
pub mod coherence;
pub mod error;
pub mod health;
pub mod housekeeping;
pub mod keys;
pub mod links;
pub mod qr;
pub mod redirect;
pub mod session;
pub mod stats;

pub use app::{App, AppState};
