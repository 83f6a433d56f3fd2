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
    /// Clicks the shortener it was imported from had counted (0 for links made here).
    pub imported_clicks: u64,
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
    /// The creation time an import keeps; `None` is now.
    pub created_at: Option<UnixSeconds>,
    /// Clicks counted before the link came to snip (imports only).
    pub imported_clicks: u64,
}

/// A link an import brings in with its code (see [`ImportOutcome`] for what happens to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportLink {
    pub code: ShortCode,
    pub url: Destination,
    pub title: Option<String>,
    pub tags: Vec<String>,
    pub expires_at: Option<UnixSeconds>,
    pub max_clicks: Option<u64>,
    /// `None` is the time of the import.
    pub created_at: Option<UnixSeconds>,
    pub imported_clicks: u64,
}

impl ImportLink {
    /// A link with only its code and destination: created at the import, nothing else kept.
    pub fn new(code: ShortCode, url: Destination) -> Self {
        ImportLink {
            code,
            url,
            title: None,
            tags: Vec::new(),
            expires_at: None,
            max_clicks: None,
            created_at: None,
            imported_clicks: 0,
        }
    }
}

/// What an import did with one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportOutcome {
    /// The code was free: the link is new.
    Imported,
    /// The code exists with the same destination (a re-run, or imported before): unchanged.
    Present,
    /// The code is (or was: deleted codes are never reissued) another destination's.
    Taken,
}

impl ImportOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportOutcome::Imported => "imported",
            ImportOutcome::Present => "present",
            ImportOutcome::Taken => "taken",
        }
    }
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

/// A title as links keep it, or why it cannot be one. Line breaks and tabs are kept; NUL is
/// refused (no store keeps it in text: PostgreSQL rejects it, and a C string would end there).
pub fn check_title(raw: String) -> Result<String, String> {
    if raw.chars().count() > MAX_TITLE_LEN {
        return Err(format!("title: longer than {MAX_TITLE_LEN} characters"));
    }
    if raw.contains('\0') {
        return Err("title: must not contain the NUL character".into());
    }
    Ok(raw)
}

/// Tags as links keep them, or why they cannot be.
pub fn check_tags(raw: Vec<String>) -> Result<Vec<String>, String> {
    if raw.len() > MAX_TAGS {
        return Err(format!("tags: more than {MAX_TAGS}"));
    }
    if let Some(bad) = raw.iter().find(|t| {
        t.is_empty() || t.chars().count() > MAX_TAG_LEN || t.chars().any(char::is_control)
    }) {
        return Err(format!(
            "tags: {bad:?} must be 1 to {MAX_TAG_LEN} printable characters"
        ));
    }
    Ok(raw)
}

/// A click limit, or why it cannot be one.
pub fn check_max_clicks(raw: i64) -> Result<u64, String> {
    if raw < 1 {
        return Err("max_clicks: must be at least 1".into());
    }
    Ok(raw as u64)
}
