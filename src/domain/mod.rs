//! Validated domain types. Everything that crosses the HTTP boundary is parsed into one of these
//! before the store or the cache sees it, so the rest of the crate never re-validates.

pub mod code;
pub mod destination;
pub mod json;
pub mod key;
pub mod link;
pub mod time;

pub use code::ShortCode;
pub use destination::Destination;
pub use key::{ApiKeySecret, Role};
pub use link::{ImportLink, ImportOutcome, Link, LinkPatch, NewLink};
