//! API keys: roles, secret generation and the hash stored at rest.
//!
//! A secret is `snip_` + 32 base62 characters (≈190 bits) from the CSPRNG. Only its SHA-256 is
//! stored; a presented key is hashed and looked up by hash, so no secret is ever compared as a
//! string (the YOURLS/Polr class of bypass cannot happen). A fast hash is enough because the
//! secrets are random, not passwords.

use rand::RngExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::time::UnixSeconds;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// All links, key management.
    Admin,
    /// Own links only.
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    pub fn parse(raw: &str) -> Option<Role> {
        match raw {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

/// The links a caller may see and change: an admin all of them, a user the links its key
/// created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    OwnedBy(i64),
}

impl Scope {
    /// The scope of a key with this role and row id.
    pub fn of(role: Role, row_id: i64) -> Scope {
        match role {
            Role::Admin => Scope::All,
            Role::User => Scope::OwnedBy(row_id),
        }
    }

    /// The owner a query filters on (`None`: any).
    pub fn owner(self) -> Option<i64> {
        match self {
            Scope::All => None,
            Scope::OwnedBy(owner) => Some(owner),
        }
    }

    /// Whether a link created by key `owner` is in this scope.
    pub fn includes(self, owner: i64) -> bool {
        self.owner().is_none_or(|o| o == owner)
    }
}

/// A presented or freshly generated secret; `Debug` hides it.
pub struct ApiKeySecret(String);

impl std::fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeySecret(***)")
    }
}

use super::code::BASE62 as ALPHABET;

fn random_base62(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl ApiKeySecret {
    pub fn generate() -> Self {
        ApiKeySecret(format!("snip_{}", random_base62(32)))
    }

    pub fn from_presented(raw: &str) -> Self {
        ApiKeySecret(raw.to_string())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 stored at rest and used for lookups.
    pub fn hash(&self) -> Vec<u8> {
        Sha256::digest(self.0.as_bytes()).to_vec()
    }
}

/// A fresh public identifier for a key (shown in the keys API; not a secret).
/// Whether `id` has the shape of an id from [`new_key_id`] (`key_` and base62 characters).
pub fn could_be_key_id(id: &str) -> bool {
    id.strip_prefix("key_").is_some_and(|rest| {
        !rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

pub fn new_key_id() -> String {
    format!("key_{}", random_base62(12))
}

/// A stored API key (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Internal row id, used for link ownership.
    pub row_id: i64,
    /// Public id (`key_…`).
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: UnixSeconds,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_long_random_and_prefixed() {
        let a = ApiKeySecret::generate();
        let b = ApiKeySecret::generate();
        assert!(a.expose().starts_with("snip_"));
        assert_eq!(a.expose().len(), 37);
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash(), ApiKeySecret::from_presented(a.expose()).hash());
        assert_eq!(format!("{a:?}"), "ApiKeySecret(***)");
    }

    #[test]
    fn roles_parse_only_their_names() {
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse("user"), Some(Role::User));
        assert_eq!(Role::parse("Admin"), None);
    }
}
