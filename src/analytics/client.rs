//! Who the visitor is: the TCP peer, or — only when the peer is one of the operator's proxies —
//! the address that proxy says it forwarded for. From anyone else `X-Forwarded-For` and
//! `Forwarded` are ignored: they are free text a client can fill with any address it likes
//! (YOURLS #4111, Shlink #2351), which would let it inflate unique visitors.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use ipnet::IpNet;

/// The operator's proxies and load balancers (`--trusted-proxies`): the only peers whose
/// forwarding headers (and country header) are believed, because only they overwrite or append
/// to what the client sent instead of passing it through.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

/// IPv4-mapped IPv6 addresses are the IPv4 address they carry: a dual-stack listener reports
/// IPv4 peers as `::ffff:a.b.c.d`, and operators write their proxies as IPv4 CIDRs.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl TrustedProxies {
    /// Parses `--trusted-proxies`: comma-separated CIDRs or bare addresses
    /// (`"10.0.0.0/8, 127.0.0.1, ::1"`); an empty list means no proxy is trusted. The error
    /// names the bad entry so a typo fails start-up instead of silently trusting nobody.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let net = entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{entry:?} is not a CIDR (10.0.0.0/8) or an address"))?;
            // A mapped IPv6 network is written as the IPv4 network it means, as `contains`
            // compares canonical addresses.
            let net = match net {
                IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
                    Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).unwrap_or(net),
                    None => net,
                },
                other => other,
            };
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }

    /// True when no proxy is configured: then forwarding headers are never read, and the
    /// caller can skip parsing them altogether.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `ip` (IPv4-mapped IPv6 taken as its IPv4 address) is one of the proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }
}

/// True when `peer` is trusted, so headers it sets (a country header, say) may be believed;
/// from any other peer they are whatever the client chose to send.
pub fn peer_is_trusted(peer: IpAddr, trusted: &TrustedProxies) -> bool {
    trusted.contains(peer)
}

/// `raw` split at `delim` outside RFC 7230 quoted strings (which may hold `,` and `;`, and
/// `\"` escapes). Works on bytes so that one non-UTF-8 entry spoils only itself.
fn split_unquoted(raw: &[u8], delim: u8) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, &b) in raw.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if b == delim && !quoted {
            parts.push(&raw[start..i]);
            start = i + 1;
        }
    }
    parts.push(&raw[start..]);
    parts
}

/// A port after an address: a number, or an RFC 7239 obfuscated port (`_abc`).
fn is_port(p: &str) -> bool {
    p.parse::<u16>().is_ok()
        || p.strip_prefix('_').is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
}

/// One hop named by a forwarding header: an address, optionally quoted, optionally with a
/// port (`192.0.2.60:4711`, `[2001:db8::1]:4711`). Anything else (`unknown`, `_hidden`,
/// trailing junk) is None.
fn parse_hop(raw: &[u8]) -> Option<IpAddr> {
    match plain_ipv4(raw.trim_ascii()) {
        Some(v4) => Some(IpAddr::V4(v4)),
        None => parse_hop_in_general(raw),
    }
}

/// [`parse_hop`] for any form of hop.
fn parse_hop_in_general(raw: &[u8]) -> Option<IpAddr> {
    let v = std::str::from_utf8(raw).ok()?.trim_matches([' ', '\t']);
    let v = match v.strip_prefix('"') {
        Some(inner) => inner
            .strip_suffix('"')
            .filter(|i| !i.contains(['"', '\\']))?,
        None => v,
    };
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = v.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        return port_ok.then(|| host.parse::<Ipv6Addr>().ok().map(IpAddr::V6))?;
    }
    let (host, port) = v.rsplit_once(':')?;
    is_port(port).then(|| host.parse::<Ipv4Addr>().ok().map(IpAddr::V4))?
}

/// A plain dotted-quad IPv4 address (`203.0.113.7`: no port, no quotes), read from the bytes
/// as they are: what a proxy writes for nearly every request, so the redirect path reads it
/// without the UTF-8 check and the general parser. None for anything else, which
/// [`parse_hop`] then reads the general way; where both read an address they agree (a test
/// compares this with `Ipv4Addr::from_str`: no leading zeros, each part at most 255).
fn plain_ipv4(raw: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = raw.split(|b| *b == b'.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || (part.len() > 1 && part[0] == b'0') {
            return None;
        }
        let mut n: u16 = 0;
        for &b in part {
            if !b.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u16::from(b - b'0');
        }
        *octet = u8::try_from(n).ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

/// True for an entry that is only optional whitespace (`a,,b`): skipped rather than treated
/// as junk, since some proxies produce it when the incoming header was empty.
fn blank(part: &[u8]) -> bool {
    part.iter().all(|b| matches!(b, b' ' | b'\t'))
}

/// `X-Forwarded-For`, named once: a lookup by `&str` would parse and check the name first.
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The hops of `X-Forwarded-For` (its header `lines`, comma lists), from right to left, as the
/// client address is looked for; None for an entry that is not an address. Lazy: the walk
/// usually stops at the first hop, and nothing is allocated.
fn x_forwarded_for_from_right<'a, L>(lines: L) -> impl Iterator<Item = Option<IpAddr>>
where
    L: IntoIterator<Item = &'a HeaderValue>,
    L::IntoIter: DoubleEndedIterator,
{
    lines
        .into_iter()
        .rev()
        .flat_map(|line| line.as_bytes().rsplit(|b| *b == b','))
        .filter(|hop| !blank(hop))
        .map(parse_hop)
}

/// The `for=` hops of RFC 7239 `Forwarded` (every line, elements separated by `,`, parameters
/// by `;`, parameter names case-insensitive), left to right. An element without a usable
/// `for=` is None: a proxy that omitted it gives no address, and skipping it would hand the
/// choice to whatever the client wrote to its left.
fn forwarded(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all(header::FORWARDED)
        .iter()
        .flat_map(|line| split_unquoted(line.as_bytes(), b','))
        .filter(|element| !blank(element))
        .map(|element| {
            split_unquoted(element, b';').into_iter().find_map(|pair| {
                let eq = pair.iter().position(|b| *b == b'=')?;
                let name = pair[..eq].trim_ascii();
                name.eq_ignore_ascii_case(b"for")
                    .then(|| parse_hop(&pair[eq + 1..]))
            })?
        })
        .collect()
}

/// The forwarding headers of a request as one pass over its headers saw them (the redirect
/// path reads `User-Agent` and `Referer` in the same pass): no hashed lookup for a header that
/// is absent, and none for a single `X-Forwarded-For` line, nearly every proxied request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Forwarding<'a> {
    /// The first `X-Forwarded-For` line, and how many lines there are.
    pub x_forwarded_for: Option<&'a HeaderValue>,
    pub x_forwarded_for_lines: usize,
    /// Whether there is a `Forwarded` line.
    pub forwarded: bool,
}

impl<'a> Forwarding<'a> {
    /// Notes header `name` with `value` (call it for every header line of the request).
    #[inline]
    pub fn see(&mut self, name: &HeaderName, value: &'a HeaderValue) {
        if *name == X_FORWARDED_FOR {
            self.x_forwarded_for = self.x_forwarded_for.or(Some(value));
            self.x_forwarded_for_lines += 1;
        } else if *name == header::FORWARDED {
            self.forwarded = true;
        }
    }
}

/// The client address of a request that arrived from socket peer `peer`.
///
/// Only when `peer` is trusted are forwarding headers read: the hops of `X-Forwarded-For`
/// (or, when that header is absent, the `for=` hops of `Forwarded`) are walked from the
/// right, skipping trusted proxies; the first untrusted address is the client, since everything
/// left of it was written by that client and is untrustworthy. An entry that is not an address
/// stops the walk at the last trusted hop (or the peer), and if every hop is trusted the
/// left-most one is the client. IPv4-mapped IPv6 addresses come back as IPv4.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let mut seen = Forwarding::default();
    for (name, value) in headers {
        seen.see(name, value);
    }
    client_ip_seen(peer, headers, trusted, seen)
}

/// [`client_ip`] when a pass over `headers` already saw their forwarding headers (`seen`).
pub fn client_ip_seen(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
    seen: Forwarding<'_>,
) -> IpAddr {
    let peer = canonical(peer);
    // No forwarding header (the redirect's common case): the peer, trusted or not.
    if seen.x_forwarded_for.is_none() && !seen.forwarded {
        return peer;
    }
    forwarded_client(peer, headers, trusted, seen)
}

/// [`client_ip_seen`] for a peer that sent forwarding headers: they count only from a trusted
/// peer (out of line, so that the common case stays a few instructions).
#[inline(never)]
fn forwarded_client(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
    seen: Forwarding<'_>,
) -> IpAddr {
    if !trusted.contains(peer) {
        return peer;
    }
    // Present but unreadable X-Forwarded-For must not fall back to Forwarded: a proxy that
    // only maintains X-Forwarded-For passes a client's Forwarded header through untouched.
    match seen.x_forwarded_for {
        Some(line) if seen.x_forwarded_for_lines == 1 => {
            walk(peer, x_forwarded_for_from_right([line]), trusted)
        }
        Some(_) => walk(
            peer,
            x_forwarded_for_from_right(headers.get_all(&X_FORWARDED_FOR)),
            trusted,
        ),
        // `client_ip_seen` came here because there is a `Forwarded` header.
        None => walk(peer, forwarded(headers).into_iter().rev(), trusted),
    }
}

/// The client among `hops` (from right to left) that reached `peer`: the first untrusted one;
/// at an entry that is not an address, the last trusted hop (or the peer); if every hop is
/// trusted, the left-most.
fn walk(
    peer: IpAddr,
    hops: impl Iterator<Item = Option<IpAddr>>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let mut client = peer;
    for hop in hops {
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
        assert!(!peer_is_trusted(ip("203.0.113.9"), &trusted()));
        assert!(peer_is_trusted(ip("10.9.9.9"), &trusted()));
        let none = TrustedProxies::parse("").unwrap();
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &none), ip("10.0.0.1"));
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let t = trusted();
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 10.0.0.2")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("1.2.3.4"));
        // Chained proxies; the client's own (spoofed) entries are left of its address.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.3, 10.0.0.2")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("1.2.3.4"));
        let split = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "1.2.3.4"),
        ]);
        assert_eq!(client_ip(ip("127.0.0.1"), &split, &t), ip("1.2.3.4"));
        // Lines are read last to first, and each line's hops right to left.
        let lines = headers(&[
            ("x-forwarded-for", "6.6.6.6, 1.2.3.4"),
            ("x-forwarded-for", "10.0.0.3, 10.0.0.2"),
        ]);
        assert_eq!(client_ip(ip("10.0.0.1"), &lines, &t), ip("1.2.3.4"));
        let lines = headers(&[
            ("x-forwarded-for", "6.6.6.6, 10.0.0.4"),
            ("x-forwarded-for", "1.2.3.4, 10.0.0.2"),
        ]);
        assert_eq!(client_ip(ip("10.0.0.1"), &lines, &t), ip("1.2.3.4"));
        let all_trusted = headers(&[("x-forwarded-for", "10.0.0.7, 10.0.0.2")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &all_trusted, &t), ip("10.0.0.7"));
        let junk = headers(&[("x-forwarded-for", "1.2.3.4, unknown, 10.0.0.2")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &junk, &t), ip("10.0.0.2"));
        let first_junk = headers(&[("x-forwarded-for", "1.2.3.4, [::1]x")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &first_junk, &t), ip("10.0.0.1"));
        let blanks = headers(&[("x-forwarded-for", " , 1.2.3.4,,10.0.0.2 ")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &blanks, &t), ip("1.2.3.4"));
        let ported = headers(&[("x-forwarded-for", "1.2.3.4:5555, [2001:db8::9]:80")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &ported, &t), ip("2001:db8::9"));
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
            (r#"for="[2001:db8::5]""#, "2001:db8::5"),
            (r#"for="192.0.2.43:8080", FOR=10.0.0.3"#, "192.0.2.43"),
            ("proto=https; for=192.0.2.1 ;by=x", "192.0.2.1"),
            ("for=_hidden, for=10.0.0.3", "10.0.0.3"),
            ("for=unknown", "10.0.0.1"),
            ("for=[2001:db8::1]:_port, for=10.0.0.3", "2001:db8::1"),
            // A quoted `,` or `;` does not split elements or parameters.
            (
                r#"for=198.51.100.7;by="a,b;c", for=10.0.0.4"#,
                "198.51.100.7",
            ),
            (r#"for="1.2.3.4, for=6.6.6.6""#, "10.0.0.1"),
            // An element without `for=` stops the walk: the client wrote what is left of it.
            ("for=6.6.6.6, proto=https", "10.0.0.1"),
            ("for=10.0.0.9, for=10.0.0.8", "10.0.0.9"),
        ] {
            let h = headers(&[("forwarded", value)]);
            assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip(expected), "{value}");
        }
        let lines = headers(&[("forwarded", "for=6.6.6.6"), ("forwarded", "for=1.2.3.4")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &lines, &t), ip("1.2.3.4"));
        // X-Forwarded-For, when present, is the only header read.
        let both = headers(&[("forwarded", "for=5.6.7.8"), ("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &both, &t), ip("1.2.3.4"));
    }

    #[test]
    fn an_unreadable_x_forwarded_for_does_not_fall_back_to_forwarded() {
        let t = trusted();
        let mut h = headers(&[("forwarded", "for=6.6.6.6")]);
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe, 1.2.3.4").unwrap(),
        );
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("1.2.3.4"));
        let mut h = headers(&[("forwarded", "for=6.6.6.6")]);
        h.append("x-forwarded-for", HeaderValue::from_static(""));
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("10.0.0.1"));
    }

    #[test]
    fn plain_ipv4_agrees_with_the_standard_parser() {
        let mut cases: Vec<String> = [
            "1.2.3.4",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1..3.4",
            ".1.2.3",
            "1.2.3.",
            "1.2.3.4 ",
            "+1.2.3.4",
            "1.2.3.-4",
            "1000.2.3.4",
            "",
            "a.b.c.d",
            "1.2.3.4:80",
            "::1",
            "10.0.0.0010",
            "::ffff:1.2.3.4",
            "[::1]:80",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Random near-addresses: 3 to 5 parts of 0 to 300, some with a leading zero or empty.
        let mut seed = 0x9e37_79b9_u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for _ in 0..20_000 {
            let parts = 3 + next(3);
            let case: Vec<String> = (0..parts)
                .map(|_| match next(20) {
                    0 => String::new(),
                    1 => format!("0{}", next(300)),
                    _ => next(300).to_string(),
                })
                .collect();
            cases.push(case.join("."));
        }
        let mut plain = 0;
        for case in &cases {
            let std = case.parse::<Ipv4Addr>().ok();
            assert_eq!(plain_ipv4(case.as_bytes()), std, "{case:?}");
            plain += std.is_some() as usize;
            for hop in [case.clone(), format!(" {case}\t"), format!("\"{case}\"")] {
                let hop = hop.as_bytes();
                assert_eq!(parse_hop(hop), parse_hop_in_general(hop), "{case:?}");
            }
        }
        assert!(plain > 100, "only {plain} random cases were addresses");
    }

    #[test]
    fn mapped_addresses_and_bad_lists() {
        let t = trusted();
        assert!(t.contains(ip("::ffff:10.1.2.3")));
        assert!(!t.contains(ip("::ffff:11.1.2.3")));
        let h = headers(&[("x-forwarded-for", "::ffff:1.2.3.4")]);
        assert_eq!(client_ip(ip("::ffff:127.0.0.1"), &h, &t), ip("1.2.3.4"));
        assert_eq!(
            client_ip(ip("::ffff:203.0.113.9"), &h, &t),
            ip("203.0.113.9")
        );
        let mapped = TrustedProxies::parse("::ffff:192.168.0.0/112").unwrap();
        assert!(mapped.contains(ip("192.168.3.4")));
        assert!(t.contains(ip("::1")));
        let err = TrustedProxies::parse("10.0.0.0/8, 10.0.0.0/99").unwrap_err();
        assert!(err.contains("10.0.0.0/99"), "{err}");
        assert!(TrustedProxies::parse("proxy.local").is_err());
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(TrustedProxies::parse(" , ").unwrap().is_empty());
    }

    #[test]
    fn no_header_value_makes_it_panic() {
        let t = trusted();
        let mut seed = 0x1234_5678_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b" ,;=:[]\"\\\t_f0123456789.abcdeforFOR";
        for round in 0..5_000 {
            let len = next() % 48;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    // Mostly header-ish characters, sometimes any byte at all.
                    if round % 3 == 0 {
                        r as u8
                    } else {
                        alphabet[(r % alphabet.len() as u64) as usize]
                    }
                })
                .collect();
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                let mut h = HeaderMap::new();
                h.insert(header::FORWARDED, v.clone());
                let _ = client_ip(ip("10.0.0.1"), &h, &t);
                h.insert("x-forwarded-for", v);
                let _ = client_ip(ip("10.0.0.1"), &h, &t);
                let _ = client_ip(ip("::ffff:10.0.0.1"), &h, &t);
            }
        }
    }
}
