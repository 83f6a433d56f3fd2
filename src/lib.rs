//! snip: a URL shortener. Redirects are served from an in-process cache (available even when
//! the store is not), links are created with durable, strongly consistent writes, and clicks are
//! counted in memory and flushed in batches. See docs/architecture.md for the map.
#![forbid(unsafe_code)]

pub mod analytics;
pub mod backup;
pub mod cache;
pub mod cli;
pub mod clicks;
pub mod config;
pub mod deny;
pub mod domain;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod import;
pub mod service;
pub mod shared_cache;
pub mod startup;
pub mod store;
pub mod telemetry;
