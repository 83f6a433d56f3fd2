//! Click analytics: what a redirect records about a click besides its link and hour (user-agent
//! class, client address, country, a visitor hash), and the unique-visitor sketches. Nothing
//! here does I/O on the redirect path.

pub mod client;
mod front;
pub mod geo;
#[doc(hidden)]
pub mod sketch;
pub mod ua;
pub mod visit;
