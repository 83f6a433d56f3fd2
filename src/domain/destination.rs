//! Destinations: the long URL a code redirects to.
//!
//! Parsed and normalised by the WHATWG `url` crate, so the stored form is already the ASCII
//! serialisation (IDN hosts in punycode, non-ASCII path and query percent-encoded) that goes into
//! `Location` unchanged. Rejected: other schemes than http/https, no host, credentials, control
//! characters anywhere in the input, more than 8 KiB, and links back to this service (loops).

use url::Url;

/// Longest destination accepted, in bytes, before and after normalisation.
pub const MAX_LEN: usize = 8 * 1024;

/// A validated, normalised http(s) destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination(Url);

/// Why a destination was refused; the message is shown to the client.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("url: must not be empty")]
    Empty,
    #[error("url: longer than {MAX_LEN} bytes")]
    TooLong,
    #[error("url: contains control characters")]
    ControlCharacters,
    #[error("url: not a valid absolute URL ({0})")]
    Syntax(String),
    #[error("url: scheme must be http or https")]
    Scheme,
    #[error("url: must have a host")]
    NoHost,
    #[error("url: must not contain credentials")]
    Credentials,
    #[error("url: points at this service itself")]
    Loop,
}

impl Destination {
    /// Parses user input. `own_origins` are the origins of this service (base URL and listen
    /// address); a destination on one of them would redirect to itself.
    pub fn parse(raw: &str, own_origins: &[Url]) -> Result<Self, DestinationError> {
        let trimmed = raw.trim_matches(' ');
        if trimmed.is_empty() {
            return Err(DestinationError::Empty);
        }
        if trimmed.len() > MAX_LEN {
            return Err(DestinationError::TooLong);
        }
        // The WHATWG parser silently strips tabs and newlines; we refuse them instead.
        if trimmed.chars().any(|c| c.is_control()) {
            return Err(DestinationError::ControlCharacters);
        }
        let url = Url::parse(trimmed).map_err(|e| DestinationError::Syntax(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(DestinationError::Scheme);
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(DestinationError::NoHost);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(DestinationError::Credentials);
        }
        if url.as_str().len() > MAX_LEN {
            return Err(DestinationError::TooLong);
        }
        if own_origins.iter().any(|own| same_origin(own, &url)) {
            return Err(DestinationError::Loop);
        }
        Ok(Destination(url))
    }

    /// Wraps a destination read back from the store (validated when it was written).
    pub fn from_trusted(raw: &str) -> Option<Self> {
        Url::parse(raw).ok().map(Destination)
    }

    /// The ASCII serialisation, as stored and as sent in `Location`.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &Url {
        &self.0
    }
}

/// The host of a destination as stored (normalised ASCII `scheme://host[:port]/…`, without
/// credentials), found without parsing the whole URL: what the deny list is checked against.
pub fn stored_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    authority.split(':').next().unwrap_or("")
}

/// Whether `dst` names the service at `own`: the same host after normalisation (case, a
/// trailing dot, IPv4-mapped IPv6, percent-decoding: the URL parser does the first and the
/// last), or any loopback spelling when `own` is a loopback or unspecified address, on the same
/// port, either scheme counting with its default port (`http://sn.ip` is `https://sn.ip` one
/// redirect away).
fn same_origin(own: &Url, dst: &Url) -> bool {
    let (Some(own_host), Some(dst_host)) = (canonical_host(own), canonical_host(dst)) else {
        return false;
    };
    let same_port = own.port_or_known_default() == dst.port_or_known_default()
        || (own.port().is_none() && dst.port().is_none());
    same_port && (own_host == dst_host || (is_local(&own_host) && is_local(&dst_host)))
}

/// The host of `url` as compared for loops: lower case, no trailing dot, an IPv4-mapped IPv6
/// address as the IPv4 address it means.
fn canonical_host(url: &Url) -> Option<String> {
    let host = match url.host()? {
        url::Host::Ipv6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        url::Host::Ipv4(v4) => v4.to_string(),
        url::Host::Domain(d) => d.trim_end_matches('.').to_ascii_lowercase(),
    };
    Some(host)
}

/// A name or address that reaches this machine itself: `localhost` (and its subdomains,
/// RFC 6761), the whole loopback range, and the unspecified addresses.
fn is_local(host: &str) -> bool {
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn own() -> Vec<Url> {
        vec![Url::parse("https://sn.ip").unwrap()]
    }

    fn parse(raw: &str) -> Result<Destination, DestinationError> {
        Destination::parse(raw, &own())
    }

    #[test]
    fn http_and_https_urls_are_normalised() {
        assert_eq!(
            parse("https://EXAMPLE.com").unwrap().as_str(),
            "https://example.com/"
        );
        assert_eq!(
            parse("http://example.com:80/a b?q=1#f").unwrap().as_str(),
            "http://example.com/a%20b?q=1#f"
        );
    }

    #[test]
    fn idn_hosts_and_unicode_paths_become_ascii() {
        assert_eq!(
            parse("https://bücher.example/ä?q=ü").unwrap().as_str(),
            "https://xn--bcher-kva.example/%C3%A4?q=%C3%BC"
        );
    }

    #[test]
    fn other_schemes_are_refused_in_any_case_or_encoding() {
        for raw in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            " javascript:alert(1)",
            "data:text/html,<script>",
            "vbscript:msgbox",
            "file:///etc/passwd",
            "ftp://example.com/",
            "mailto:a@b.c",
        ] {
            assert_eq!(parse(raw), Err(DestinationError::Scheme), "{raw}");
        }
        assert!(matches!(
            parse("%6Aavascript:alert(1)"),
            Err(DestinationError::Syntax(_))
        ));
    }

    #[test]
    fn credentials_control_characters_and_loops_are_refused() {
        assert_eq!(
            parse("https://u:p@x.com"),
            Err(DestinationError::Credentials)
        );
        assert_eq!(parse("https://u@x.com"), Err(DestinationError::Credentials));
        for raw in [
            "https://x.com/\r\nSet-Cookie: a=b",
            "https://x.com/\0",
            "https://x\t.com",
        ] {
            assert_eq!(
                parse(raw),
                Err(DestinationError::ControlCharacters),
                "{raw:?}"
            );
        }
        assert_eq!(parse("https://SN.IP/abc"), Err(DestinationError::Loop));
        for spelling in [
            "https://sn.ip./abc",
            "https://SN.IP./abc",
            "http://sn.ip/abc",
            "http://sn.ip:80/abc",
            "https://sn%2Eip/abc",
            "https://sn%2eip./abc",
        ] {
            assert_eq!(parse(spelling), Err(DestinationError::Loop), "{spelling}");
        }
        let local = vec![Url::parse("http://127.0.0.1:8080").unwrap()];
        for spelling in [
            "http://127.0.0.1:8080/x",
            "http://[::ffff:127.0.0.1]:8080/x",
            "http://[::1]:8080/x",
            "http://127.0.0.2:8080/x",
            "http://localhost:8080/x",
            "http://localhost.:8080/x",
            "http://LOCALHOST:8080/x",
            "http://app.localhost:8080/x",
            "http://0.0.0.0:8080/x",
            "https://127.0.0.1:8080/x",
            "http://2130706433:8080/x",
        ] {
            assert_eq!(
                Destination::parse(spelling, &local),
                Err(DestinationError::Loop),
                "{spelling}"
            );
        }
        assert!(Destination::parse("http://127.0.0.1:8081/x", &local).is_ok());
        assert!(Destination::parse("http://example.com:8080/x", &local).is_ok());
        assert_eq!(parse("https://sn.ip:443/abc"), Err(DestinationError::Loop));
        assert!(parse("https://sn.ip:8443/abc").is_ok());
    }

    #[test]
    fn hostless_empty_and_oversized_urls_are_refused() {
        assert_eq!(parse(""), Err(DestinationError::Empty));
        assert!(matches!(
            parse("https://"),
            Err(DestinationError::Syntax(_))
        ));
        assert!(matches!(
            parse("example.com"),
            Err(DestinationError::Syntax(_))
        ));
        let long = format!("https://x.com/{}", "a".repeat(MAX_LEN));
        assert_eq!(parse(&long), Err(DestinationError::TooLong));
        // Percent-encoding may grow a URL past the limit.
        let grows = format!("https://x.com/{}", "ä".repeat(MAX_LEN / 2 - 10));
        assert_eq!(parse(&grows), Err(DestinationError::TooLong));
    }

    proptest! {
        #[test]
        fn every_accepted_destination_is_a_valid_ascii_location(
            path in "\\PC{0,40}", host in "[a-zA-Zä-ü0-9-]{1,20}", q in "\\PC{0,20}"
        ) {
            let raw = format!("https://{host}.com/{path}?{q}");
            if let Ok(dest) = parse(&raw) {
                let s = dest.as_str();
                prop_assert!(s.is_ascii());
                prop_assert!(!s.contains(['\r', '\n', '\0']));
                prop_assert!(axum::http::HeaderValue::from_str(s).is_ok());
                // Round trip: parsing the stored form gives the same destination.
                let again = parse(s).unwrap();
                prop_assert_eq!(again.as_str(), s);
            }
        }

        #[test]
        fn nothing_with_cr_lf_or_nul_is_ever_accepted(
            a in "\\PC{0,20}", b in prop::sample::select(vec!['\r', '\n', '\0']), c in "\\PC{0,20}"
        ) {
            let raw = format!("https://example.com/{a}{b}{c}");
            prop_assert!(parse(&raw).is_err());
        }
    }
}
