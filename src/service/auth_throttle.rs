//! Throttling of failed authentications per client address: guessing API keys costs the
//! guesser a minute per `--failed-auth-limit` wrong keys, and the store nothing once the limit
//! is reached.
//!
//! The client address is the one the trusted-proxy rule gives (`--trusted-proxies`); IPv6
//! clients are counted per /64, since anyone holding one address usually holds its /64. Each
//! address gets `limit` failures in a window of [`WINDOW`] that starts at its first failure.
//! Past that, a request from the address that presents a key this instance has not recently
//! authenticated answers `429` with `Retry-After` (the end of the window), without a store
//! read; a key authenticated in the last few seconds still works, so a client that shares an
//! address with a guesser keeps working as long as its key is cached.

use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The window in which an address's failures are counted.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Addresses tracked at once (bounded memory; the least recently seen are forgotten first).
const TRACKED: usize = 100_000;

pub struct FailedAuth {
    /// Failures allowed per address and window; 0 turns throttling off.
    limit: u32,
    /// Per address: failures so far and when its window started.
    seen: quick_cache::sync::Cache<IpAddr, (u32, Instant)>,
}

impl FailedAuth {
    pub fn new(limit: u32) -> Self {
        FailedAuth {
            limit,
            seen: quick_cache::sync::Cache::new(if limit == 0 { 1 } else { TRACKED }),
        }
    }

    /// Seconds until `client` may try again, when it has used up its failures.
    pub fn blocked(&self, client: IpAddr) -> Option<u64> {
        if self.limit == 0 {
            return None;
        }
        let (failures, since) = self.seen.get(&bucket(client))?;
        let left = WINDOW.checked_sub(since.elapsed())?;
        (failures >= self.limit).then(|| retry_after(left))
    }

    /// Counts a failed authentication from `client`; says how long to wait when this one used
    /// up the limit.
    pub fn failed(&self, client: IpAddr) -> Option<u64> {
        metrics::counter!("snip_auth_failures_total").increment(1);
        if self.limit == 0 {
            return None;
        }
        let key = bucket(client);
        let now = Instant::now();
        let (failures, since) = match self.seen.get(&key) {
            Some((n, since)) if since.elapsed() < WINDOW => (n.saturating_add(1), since),
            _ => (1, now),
        };
        self.seen.insert(key, (failures, since));
        (failures > self.limit).then(|| retry_after(WINDOW.saturating_sub(since.elapsed())))
    }
}

fn retry_after(left: Duration) -> u64 {
    left.as_secs_f64().ceil().max(1.0) as u64
}

/// The unit an address is counted in: an IPv4 address, or an IPv6 /64.
fn bucket(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_gets_limit_failures_then_waits_for_the_window() {
        let throttle = FailedAuth::new(3);
        let client = ip("192.0.2.7");
        for _ in 0..3 {
            assert_eq!(throttle.blocked(client), None);
            assert_eq!(throttle.failed(client), None);
        }
        let wait = throttle.blocked(client).expect("blocked after 3 failures");
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(throttle.failed(client).is_some());
        assert_eq!(throttle.blocked(ip("192.0.2.8")), None, "another address");
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() {
        let throttle = FailedAuth::new(1);
        throttle.failed(ip("2001:db8:1:2::1"));
        throttle.failed(ip("2001:db8:1:2:ffff::9"));
        assert!(throttle.blocked(ip("2001:db8:1:2::42")).is_some());
        assert_eq!(throttle.blocked(ip("2001:db8:1:3::1")), None);
        throttle.failed(ip("::ffff:192.0.2.1"));
        throttle.failed(ip("192.0.2.1"));
        assert!(throttle.blocked(ip("192.0.2.1")).is_some());
    }

    #[test]
    fn a_limit_of_zero_never_blocks() {
        let throttle = FailedAuth::new(0);
        for _ in 0..100 {
            assert_eq!(throttle.failed(ip("192.0.2.1")), None);
        }
        assert_eq!(throttle.blocked(ip("192.0.2.1")), None);
    }
}
