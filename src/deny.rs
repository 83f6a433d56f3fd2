//! The deny list: destination hosts and domains this service refuses to shorten, and stops
//! redirecting to (`--deny-list FILE`).
//!
//! The file has one entry per line: a domain (`evil.example` also covers every subdomain,
//! `a.b.evil.example`), or an IP address; blank lines and `#` comments are skipped. Entries are
//! compared after the normalisation destinations get (lower case, IDN to punycode, no trailing
//! dot; IP addresses in their canonical form, IPv4-mapped IPv6 as IPv4), so `EVIL.example.`,
//! `évil.example` and `xn--vil-9la.example` are one entry each way.
//!
//! The list is checked when a link is created or edited (422 `destination_denied`) and at
//! redirect time (410 `destination_denied`), for links made before an entry was added: each
//! cached redirect remembers the list generation it was checked against, so a redirect costs
//! one atomic load while the list is unchanged and one lookup per cached link after a reload,
//! never a store read. Reloaded on SIGHUP and by `POST /api/v1/deny-list/reload` (admin).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use parking_lot::RwLock;

/// The entries of one version of the list.
type Entries = Arc<HashSet<Box<str>>>;

pub struct DenyList {
    file: Option<PathBuf>,
    entries: RwLock<Entries>,
    /// Bumped by every (re)load; 0 means "never loaded, nothing denied".
    generation: AtomicU64,
}

impl DenyList {
    /// A list that denies nothing and has no file to reload.
    pub fn empty() -> Self {
        DenyList {
            file: None,
            entries: RwLock::new(Arc::default()),
            generation: AtomicU64::new(0),
        }
    }

    /// Loads `file` (if given); an unreadable file or a bad entry is an error.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let list = DenyList {
            file: file.map(Path::to_path_buf),
            ..DenyList::empty()
        };
        if file.is_some() {
            list.reload()?;
        }
        Ok(list)
    }

    /// Reads the file again; on error the current list stays. Returns the number of entries.
    pub fn reload(&self) -> anyhow::Result<usize> {
        let Some(file) = &self.file else {
            anyhow::bail!("no --deny-list file is configured");
        };
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading the deny list {}", file.display()))?;
        let entries = parse(&text).with_context(|| format!("in {}", file.display()))?;
        let n = entries.len();
        *self.entries.write() = Arc::new(entries);
        self.generation.fetch_add(1, Ordering::AcqRel);
        metrics::gauge!("snip_deny_list_entries").set(n as f64);
        Ok(n)
    }

    /// The current generation (each cached redirect remembers the one its verdict is for).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The entry that denies `host` (already normalised, as stored destinations are), if any.
    pub fn denies(&self, host: &str) -> Option<Box<str>> {
        let entries = self.entries.read().clone();
        if entries.is_empty() {
            return None;
        }
        let host = host.trim_end_matches('.');
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return entries.get(canonical_ip(ip).as_str()).cloned();
        }
        let mut rest = host;
        loop {
            if let Some(entry) = entries.get(rest) {
                return Some(entry.clone());
            }
            match rest.split_once('.') {
                Some((_, parent)) if !parent.is_empty() => rest = parent,
                _ => return None,
            }
        }
    }

    /// The entry that denies the host of `url`, if any.
    pub fn denies_url(&self, url: &url::Url) -> Option<Box<str>> {
        url.host_str().and_then(|h| self.denies(h))
    }

    /// Sorted entries of the current list.
    pub fn entries(&self) -> Vec<String> {
        let mut all: Vec<String> = self.entries.read().iter().map(|e| e.to_string()).collect();
        all.sort();
        all
    }
}

/// Normalises one entry: a domain name (to lower-case ASCII, punycode for IDN, no trailing dot)
/// or an IP address.
fn normalise(entry: &str) -> anyhow::Result<Box<str>> {
    let trimmed = entry.trim().trim_end_matches('.');
    let trimmed = trimmed.strip_prefix("*.").unwrap_or(trimmed);
    if trimmed.is_empty() || trimmed.contains(['/', ':', '@', ' ']) && !is_ipv6(trimmed) {
        anyhow::bail!("{entry:?} is not a host name or an IP address");
    }
    if let Ok(ip) = trimmed
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
    {
        return Ok(canonical_ip(ip).into());
    }
    match url::Host::parse(trimmed) {
        Ok(url::Host::Domain(d)) => Ok(d.trim_end_matches('.').into()),
        Ok(other) => Ok(other.to_string().into()),
        Err(e) => anyhow::bail!("{entry:?} is not a host name: {e}"),
    }
}

/// An address as entries hold it: IPv4-mapped IPv6 as the IPv4 address, IPv6 compressed.
fn canonical_ip(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        std::net::IpAddr::V4(v4) => v4.to_string(),
    }
}

fn is_ipv6(s: &str) -> bool {
    s.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::Ipv6Addr>()
        .is_ok()
}

fn parse(text: &str) -> anyhow::Result<HashSet<Box<str>>> {
    let mut entries = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        entries.insert(normalise(line).with_context(|| format!("line {}", n + 1))?);
    }
    Ok(entries)
}

/// Fuzz target (see `crate::fuzzing`): any file text parses or is refused without panicking,
/// and a list denies each of its own entries.
pub(crate) fn fuzz_parse(text: &str) {
    if let Ok(entries) = parse(text) {
        let list = DenyList {
            file: None,
            entries: RwLock::new(Arc::new(entries.clone())),
            generation: AtomicU64::new(1),
        };
        for entry in &entries {
            assert!(list.denies(entry).is_some(), "{entry:?} from {text:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> DenyList {
        DenyList {
            file: None,
            entries: RwLock::new(Arc::new(parse(text).unwrap())),
            generation: AtomicU64::new(1),
        }
    }

    #[test]
    fn entries_cover_their_subdomains_in_every_spelling() {
        let list = list(
            "# bad actors\nEVIL.example.\n*.worse.example\nÉvil.test\n192.0.2.9\n[2001:db8::1]\n",
        );
        for host in [
            "evil.example",
            "a.b.evil.example",
            "evil.example.",
            "x.worse.example",
            "worse.example",
            "xn--vil-9la.test",
            "192.0.2.9",
            "::ffff:c000:209",
            "[2001:db8::1]",
            "2001:0db8:0:0::1",
        ] {
            assert!(list.denies(host).is_some(), "{host}");
        }
        for host in [
            "notevil.example",
            "example",
            "evil.example.org",
            "192.0.2.90",
            "test",
        ] {
            assert!(list.denies(host).is_none(), "{host}");
        }
    }

    #[test]
    fn bad_entries_are_errors_with_their_line() {
        let err = parse("good.example\nhttp://x.example/path\n").unwrap_err();
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
        assert!(parse("a b.example").is_err());
    }
}
