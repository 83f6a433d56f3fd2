//! Who the visitor is: the TCP peer, or — only when the peer is one of the operator's proxies —
//! the address that proxy says it forwarded for. From anyone else `X-Forwarded-For` and
//! `Forwarded` are ignored: they are free text a client can fill with any address it likes
//! (YOURLS #4111, Shlink #2351), which would let it inflate unique visitors.

use std::net::IpAddr;

use axum::http::{HeaderMap, header};
use ipnet::IpNet;

/// The operator's proxies and load balancers (`--trusted-proxies`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

/// IPv4-mapped IPv6 addresses are the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl TrustedProxies {
    /// Comma-separated CIDRs or bare addresses; empty means none.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let net = entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{entry:?} is not a CIDR (10.0.0.0/8) or an address"))?;
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }
}

/// One hop named by a forwarding header.
fn parse_hop(raw: &str) -> Option<IpAddr> {
    let v = raw.trim().trim_matches('"');
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Some(ip);
    }
    // "[2001:db8::1]:4711" or "[2001:db8::1]"
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    // "192.0.2.60:4711"
    let (host, port) = v.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The hops of `X-Forwarded-For` (every header line, comma lists), left to right; None for an
/// entry that is not an address.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .filter(|h| !h.trim().is_empty())
        .map(parse_hop)
        .collect()
}

/// The `for=` hops of RFC 7239 `Forwarded`, left to right.
fn forwarded(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all(header::FORWARDED)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then(|| parse_hop(v))
            })
        })
        .collect()
}

/// The client address of a request that arrived from `peer`.
///
/// When `peer` is trusted, the hops of `X-Forwarded-For` (or, without it, `Forwarded`) are
/// walked from the right, skipping trusted proxies; the first untrusted address is the client.
/// An entry that is not an address stops the walk at the last trusted hop, and if every hop is
/// trusted the left-most one is the client.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.contains(peer) {
        return peer;
    }
    let mut hops = forwarded_for(headers);
    if hops.is_empty() {
        hops = forwarded(headers);
    }
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.map(canonical) {
            Some(ip) if trusted.contains(ip) => client = ip,
            Some(ip) => return ip,
            None => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn trusted() -> TrustedProxies {
        TrustedProxies::parse("10.0.0.0/8, 127.0.0.1, ::1").unwrap()
    }

    #[test]
    fn an_untrusted_peer_cannot_choose_its_address() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), &h, &trusted()),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let t = trusted();
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.2")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("1.2.3.4"));
        let split = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "1.2.3.4"),
        ]);
        assert_eq!(client_ip(ip("127.0.0.1"), &split, &t), ip("1.2.3.4"));
        let all_trusted = headers(&[("x-forwarded-for", "10.0.0.7, 10.0.0.2")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &all_trusted, &t), ip("10.0.0.7"));
        let junk = headers(&[("x-forwarded-for", "1.2.3.4, unknown, 10.0.0.2")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &junk, &t), ip("10.0.0.2"));
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &t),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn forwarded_is_read_when_x_forwarded_for_is_absent() {
        let t = trusted();
        for (value, expected) in [
            ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
            (r#"For="[2001:db8:cafe::17]:4711""#, "2001:db8:cafe::17"),
            ("for=192.0.2.43:8080, for=10.0.0.3", "192.0.2.43"),
            ("for=_hidden, for=10.0.0.3", "10.0.0.3"),
        ] {
            let h = headers(&[("forwarded", value)]);
            assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip(expected), "{value}");
        }
    }

    #[test]
    fn mapped_addresses_and_bad_lists() {
        let t = trusted();
        assert!(t.contains(ip("::ffff:10.1.2.3")));
        let h = headers(&[("x-forwarded-for", "::ffff:1.2.3.4")]);
        assert_eq!(client_ip(ip("::ffff:127.0.0.1"), &h, &t), ip("1.2.3.4"));
        assert!(TrustedProxies::parse("10.0.0.0/99").is_err());
        assert!(TrustedProxies::parse("").unwrap().is_empty());
    }

    #[test]
    fn no_header_value_makes_it_panic() {
        let t = trusted();
        let mut seed = 0x1234_5678_u64;
        for _ in 0..2_000 {
            let bytes: Vec<u8> = (0..(seed % 40))
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    b" ,;=:[]\"\tf0123456789.abcdefor"[(seed % 29) as usize]
                })
                .collect();
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                let mut h = HeaderMap::new();
                h.insert("x-forwarded-for", v.clone());
                h.insert(header::FORWARDED, v);
                let _ = client_ip(ip("10.0.0.1"), &h, &t);
            }
            seed = seed.wrapping_add(0x9e37_79b9);
        }
    }
}
