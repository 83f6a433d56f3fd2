//! Links as the store keeps them, and the validated inputs that create or change them.

use super::time::UnixSeconds;
use super::{Destination, ShortCode};

/// A stored link. `deleted` links are tombstones: their code is never reissued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub id: i64,
    pub code: ShortCode,
    pub url: String,
    pub title: Option<String>,
    pub tags: Vec<String>,
    /// Row id of the API key that created it.
    pub owner: i64,
    pub created_at: UnixSeconds,
    pub updated_at: UnixSeconds,
    pub expires_at: Option<UnixSeconds>,
    pub max_clicks: Option<u64>,
    pub disabled: bool,
    pub deleted: bool,
    /// Set when an admin took the link down: the reason (the link is disabled too).
    pub takedown: Option<String>,
}

/// How a code is chosen for a new link.
#[derive(Debug, Clone)]
pub enum CodeChoice {
    Custom(ShortCode),
    /// Random base62 of this length, retried on collision.
    Random {
        len: usize,
    },
}

/// A validated request to create a link.
#[derive(Debug, Clone)]
pub struct NewLink {
    pub code: CodeChoice,
    pub url: Destination,
    pub title: Option<String>,
    pub tags: Vec<String>,
    pub owner: i64,
    pub expires_at: Option<UnixSeconds>,
    pub max_clicks: Option<u64>,
}

/// A validated partial update: `None` leaves a field as it is; `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct LinkPatch {
    pub url: Option<Destination>,
    pub title: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    pub expires_at: Option<Option<UnixSeconds>>,
    pub max_clicks: Option<Option<u64>>,
    pub disabled: Option<bool>,
    /// `Some(Some(reason))` takes the link down, `Some(None)` lifts a takedown.
    pub takedown: Option<Option<String>>,
}

/// Limits of the free-text fields.
pub const MAX_TITLE_LEN: usize = 512;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_LEN: usize = 64;
