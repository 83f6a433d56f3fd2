//! Short codes: the `{code}` of `GET /{code}`.
//!
//! Random codes are base62 drawn from the thread-local CSPRNG; custom codes are 3–64 characters of
//! `[0-9A-Za-z_-]` and not a reserved word. A path segment that could never be a code is rejected
//! here, before any cache or store lookup.

use rand::RngExt;

/// The alphabet of random codes.
pub const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Longest code accepted anywhere (custom codes); longer path segments are 404 without a lookup.
pub const MAX_LEN: usize = 64;
const MIN_CUSTOM_LEN: usize = 3;

/// Words that name routes or well-known files; never usable as custom codes (case-insensitive).
pub const RESERVED: &[&str] = &[
    "api",
    "health",
    "metrics",
    "static",
    "assets",
    "ui",
    "admin",
    "login",
    "logout",
    "favicon.ico",
    "robots.txt",
    "sitemap.xml",
    "docs",
    "openapi.json",
    ".well-known",
];

/// Whether `code` is a reserved word in any letter case.
pub fn is_reserved(code: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(code))
}

/// A syntactically valid short code (case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShortCode(String);

/// Why a custom code was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("code must be {MIN_CUSTOM_LEN} to {MAX_LEN} characters long")]
    Length,
    #[error("code may contain only 0-9, A-Z, a-z, '_' and '-'")]
    Charset,
    #[error("code {0:?} is reserved")]
    Reserved(String),
}

fn is_code_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

impl ShortCode {
    /// A fresh random base62 code of `len` characters from a CSPRNG.
    pub fn random(len: usize) -> Self {
        let mut rng = rand::rng();
        loop {
            let code: String = (0..len)
                .map(|_| BASE62[rng.random_range(0..BASE62.len())] as char)
                .collect();
            // A reserved word (`api`, `health`, `metrics`, …) names a route, not a link.
            if !is_reserved(&code) {
                return ShortCode(code);
            }
        }
    }

    /// Validates a user-chosen code.
    pub fn parse_custom(raw: &str) -> Result<Self, CodeError> {
        if !(MIN_CUSTOM_LEN..=MAX_LEN).contains(&raw.len()) {
            return Err(CodeError::Length);
        }
        if !raw.bytes().all(is_code_byte) {
            return Err(CodeError::Charset);
        }
        if is_reserved(raw) {
            return Err(CodeError::Reserved(raw.to_string()));
        }
        Ok(ShortCode(raw.to_string()))
    }

    /// Whether a path segment could name a link at all (random or custom). Used on the redirect
    /// path to answer 404 for junk without touching cache or store.
    pub fn could_be_code(raw: &str) -> bool {
        !raw.is_empty() && raw.len() <= MAX_LEN && raw.bytes().all(is_code_byte)
    }

    /// A random code of length `len` (a space of `space` codes, small enough to list) that is
    /// not in `taken`; None when every code is taken. Both stores use it when random attempts
    /// keep colliding in a small code space.
    pub fn random_free(
        len: usize,
        space: u64,
        taken: &std::collections::HashSet<String>,
    ) -> Option<ShortCode> {
        if taken.len() as u64 >= space {
            return None;
        }
        let free: Vec<String> = (0..space)
            .map(|mut n| {
                let mut code = vec![0u8; len];
                for slot in code.iter_mut().rev() {
                    *slot = BASE62[(n % 62) as usize];
                    n /= 62;
                }
                String::from_utf8(code).unwrap_or_default()
            })
            .filter(|code| !taken.contains(code) && !is_reserved(code))
            .collect();
        if free.is_empty() {
            return None;
        }
        Some(ShortCode(free[rand::random_range(0..free.len())].clone()))
    }

    /// Wraps a code read back from the store.
    pub fn from_trusted(raw: String) -> Self {
        ShortCode(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ShortCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_random_code_is_never_a_reserved_word() {
        let space = 62u64.pow(3);
        let mut taken = std::collections::HashSet::new();
        for n in 0..space {
            let mut code = [0u8; 3];
            let mut n = n;
            for slot in code.iter_mut().rev() {
                *slot = BASE62[(n % 62) as usize];
                n /= 62;
            }
            taken.insert(String::from_utf8(code.to_vec()).unwrap());
        }
        // Only `api` (reserved) and `xyz` are free: `xyz` is the only code to hand out.
        taken.remove("api");
        taken.remove("xyz");
        for _ in 0..20 {
            let code = ShortCode::random_free(3, space, &taken).unwrap();
            assert_eq!(code.as_str(), "xyz");
        }
        taken.insert("xyz".into());
        assert!(ShortCode::random_free(3, space, &taken).is_none());
        assert!(is_reserved("API") && is_reserved("Health") && !is_reserved("apis"));
    }

    #[test]
    fn random_codes_are_base62_of_the_asked_length() {
        for len in [1, 7, 32] {
            let c = ShortCode::random(len);
            assert_eq!(c.as_str().len(), len);
            assert!(c.as_str().bytes().all(|b| b.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn random_codes_do_not_repeat_in_practice() {
        let codes: std::collections::HashSet<_> =
            (0..10_000).map(|_| ShortCode::random(7)).collect();
        assert_eq!(codes.len(), 10_000);
    }

    #[test]
    fn custom_codes_follow_the_charset_length_and_reserved_rules() {
        assert!(ShortCode::parse_custom("my-link_1").is_ok());
        assert_eq!(ShortCode::parse_custom("ab"), Err(CodeError::Length));
        assert_eq!(
            ShortCode::parse_custom(&"a".repeat(65)),
            Err(CodeError::Length)
        );
        assert!(ShortCode::parse_custom(&"a".repeat(64)).is_ok());
        assert_eq!(ShortCode::parse_custom("a.b.c"), Err(CodeError::Charset));
        assert_eq!(ShortCode::parse_custom("héllo"), Err(CodeError::Charset));
        assert_eq!(ShortCode::parse_custom("a/b/c"), Err(CodeError::Charset));
        assert!(matches!(
            ShortCode::parse_custom("API"),
            Err(CodeError::Reserved(_))
        ));
        assert!(matches!(
            ShortCode::parse_custom("health"),
            Err(CodeError::Reserved(_))
        ));
    }

    #[test]
    fn junk_path_segments_cannot_be_codes() {
        for junk in [
            "",
            "..",
            "a..b",
            "a b",
            "a\r\nb",
            "%00",
            "ä",
            &"x".repeat(65),
        ] {
            assert!(!ShortCode::could_be_code(junk), "{junk:?}");
        }
        assert!(ShortCode::could_be_code("aB3xY9k"));
    }

    proptest! {
        #[test]
        fn every_accepted_custom_code_is_a_possible_code(s in "\\PC{0,70}") {
            if let Ok(code) = ShortCode::parse_custom(&s) {
                prop_assert!(ShortCode::could_be_code(code.as_str()));
                prop_assert!(!code.as_str().contains(['\r', '\n', '\0', '/', '.']));
            }
        }
    }
}
