//! Unique visitors: a HyperLogLog++-class sketch per link and day (Cloudflare's
//! `cardinality-estimator`: exact for small counts, then a 2^14-register HyperLogLog with a
//! standard error of 0.8 %, so ±2 % is 2.5 σ).
//!
//! What goes in is a keyed 64-bit hash of (client address, user agent) whose key (salt) is
//! random per day and forgotten after it (see `VisitorKey`), never an address. Sketches merge by
//! register-wise max, so a range of days, or the sketches of several instances, combine exactly:
//! the estimate of a merge equals the estimate of one sketch fed everything.

use cardinality_estimator::CardinalityEstimator;
use siphasher::sip::SipHasher13;
use std::hash::Hasher;
use std::net::IpAddr;

/// Registers 2^P; W bits per register.
const P: usize = 14;
const W: usize = 6;

type Estimator = CardinalityEstimator<u64, wyhash::WyHash, P, W>;

#[derive(Clone, Default, PartialEq)]
pub struct Visitors(Estimator);

impl std::fmt::Debug for Visitors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Visitors(~{})", self.estimate())
    }
}

impl Visitors {
    pub fn insert(&mut self, visitor: u64) {
        self.0.insert_hash(visitor);
    }

    pub fn merge(&mut self, other: &Visitors) {
        self.0.merge(&other.0);
    }

    pub fn estimate(&self) -> u64 {
        self.0.estimate() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.estimate() == 0
    }

    /// Compact bytes for the store (nothing when empty, tens of bytes while small, ≤ 12 KiB
    /// once dense).
    pub fn to_bytes(&self) -> Vec<u8> {
        if self.is_empty() {
            return Vec::new();
        }
        postcard::to_stdvec(&self.0).unwrap_or_default()
    }

    /// A stored sketch; unreadable bytes count as empty (logged), never as an error that would
    /// hide the rest of a link's statistics.
    pub fn from_bytes(bytes: &[u8]) -> Visitors {
        if bytes.is_empty() {
            return Visitors::default();
        }
        match postcard::from_bytes::<Estimator>(bytes) {
            Ok(e) => Visitors(e),
            Err(e) => {
                tracing::warn!(error = %e, "unreadable visitor sketch ignored");
                Visitors::default()
            }
        }
    }
}

/// The day's secret key for visitor hashes. Random, shared through the store by every instance
/// (so that their sketches merge), and deleted once its day is over: after that, not even the
/// operator can test whether a given address was among a day's visitors.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VisitorKey {
    pub day: i64,
    key: [u8; 16],
}

impl VisitorKey {
    pub fn new(day: i64, key: [u8; 16]) -> Self {
        VisitorKey { day, key }
    }

    /// The visitor hash of one click: the client address and the user agent's fingerprint
    /// ([`crate::analytics::ua::UaClass::fingerprint`], computed once per user-agent string).
    pub fn visitor(&self, ip: IpAddr, user_agent: u64) -> u64 {
        let mut h = SipHasher13::new_with_key(&self.key);
        match ip {
            IpAddr::V4(v4) => h.write(&v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => h.write(&v4.octets()),
                None => h.write(&v6.octets()),
            },
        }
        h.write_u64(user_agent);
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> VisitorKey {
        VisitorKey::new(1, [7; 16])
    }

    fn ip(i: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn small_counts_are_exact_and_repeats_do_not_count() {
        let mut v = Visitors::default();
        for round in 0..3 {
            for i in 0..50 {
                v.insert(key().visitor(ip(i), 1));
            }
            assert_eq!(v.estimate(), 50, "round {round}");
        }
        assert_eq!(
            Visitors::from_bytes(&v.to_bytes()).estimate(),
            50,
            "survives the store"
        );
    }

    #[test]
    fn large_counts_are_within_two_percent_and_merges_are_exact() {
        for n in [10_000u32, 50_000, 200_000] {
            let (mut all, mut a, mut b) = Default::default();
            let (all, a, b): (&mut Visitors, &mut Visitors, &mut Visitors) =
                (&mut all, &mut a, &mut b);
            for i in 0..n {
                let h = key().visitor(ip(i), 2);
                all.insert(h);
                // Two instances seeing overlapping halves.
                if i < n * 2 / 3 {
                    a.insert(h);
                }
                if i > n / 3 {
                    b.insert(h);
                }
            }
            let error = (all.estimate() as f64 - n as f64).abs() / n as f64;
            assert!(
                error < 0.02,
                "{n}: estimate {} ({error:.4})",
                all.estimate()
            );
            let mut merged = Visitors::from_bytes(&a.to_bytes());
            merged.merge(&Visitors::from_bytes(&b.to_bytes()));
            assert_eq!(merged.estimate(), all.estimate(), "{n}: merge = union");
        }
    }

    #[test]
    fn the_same_visitor_differs_between_days_and_agents() {
        let k2 = VisitorKey::new(2, [8; 16]);
        assert_ne!(key().visitor(ip(1), 1), k2.visitor(ip(1), 1));
        assert_ne!(key().visitor(ip(1), 1), key().visitor(ip(1), 2));
        let mapped = IpAddr::V6(std::net::Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(key().visitor(ip(1), 1), key().visitor(mapped, 1));
    }

    #[test]
    fn garbage_bytes_read_as_an_empty_sketch() {
        assert_eq!(Visitors::from_bytes(&[0xff; 7]).estimate(), 0);
    }
}
