//! The visitor's country: from a header set by the operator's CDN or proxy (`--country-header`,
//! e.g. Cloudflare's `CF-IPCountry`), or from a MaxMind-format country database
//! (`--geoip-db`, GeoLite2-Country or compatible) looked up by client address.

use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;
use axum::http::{HeaderMap, HeaderName};
use maxminddb::geoip2;

/// Where a click's country comes from. Both sources are optional: with neither, analytics
/// records no countries and the redirect path skips the lookup entirely (`is_enabled`).
pub struct Geo {
    header: Option<HeaderName>,
    db: Option<maxminddb::Reader<Vec<u8>>>,
}

/// Two ASCII letters, upper-cased. Anything else is None rather than an error: CDNs send
/// `XX` for unknown and `T1` for Tor, and a wrong header must not invent countries.
fn iso_code(raw: &[u8]) -> Option<[u8; 2]> {
    match raw {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            let code = [a.to_ascii_uppercase(), b.to_ascii_uppercase()];
            (&code != b"XX").then_some(code)
        }
        _ => None,
    }
}

impl Geo {
    /// Builds the sources from `--country-header` and `--geoip-db`. Fails at start-up, with
    /// the option named, for an invalid header name or a database that cannot be read or is not
    /// a MaxMind DB, rather than recording no countries without a word.
    pub fn new(header: Option<&str>, db_path: Option<&Path>) -> anyhow::Result<Self> {
        let header = header
            .map(|h| {
                HeaderName::from_bytes(h.trim().as_bytes())
                    .with_context(|| format!("--country-header: {h:?} is not a header name"))
            })
            .transpose()?;
        let db = db_path
            .map(|p| {
                maxminddb::Reader::open_readfile(p).with_context(|| {
                    format!(
                        "--geoip-db: cannot read {} as an .mmdb database",
                        p.display()
                    )
                })
            })
            .transpose()?;
        Ok(Geo { header, db })
    }

    /// True when there is any source, so callers skip the work for a click otherwise.
    pub fn is_enabled(&self) -> bool {
        self.header.is_some() || self.db.is_some()
    }

    /// The country of a request from client address `ip`, as an upper-case ISO 3166-1 alpha-2
    /// code. The header wins when it is configured, believed (`header_trusted`: set by a
    /// trusted proxy) and holds a country, as the CDN saw the client itself; otherwise the
    /// database's `country`, falling back to `registered_country` (anycast and satellite
    /// ranges often have only the latter). Lookup errors are None: a click is never lost to
    /// geography.
    pub fn country(
        &self,
        headers: &HeaderMap,
        ip: IpAddr,
        header_trusted: bool,
    ) -> Option<[u8; 2]> {
        if let (Some(name), true) = (&self.header, header_trusted)
            && let Some(code) = headers
                .get(name)
                .and_then(|v| iso_code(v.as_bytes().trim_ascii()))
        {
            return Some(code);
        }
        let db = self.db.as_ref()?;
        // IPv4-mapped IPv6 is looked up as IPv4: databases alias `::ffff:0:0/96` at best.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let found: geoip2::Country<'_> = db.lookup(ip).ok()?.decode().ok()??;
        found
            .country
            .iso_code
            .or(found.registered_country.iso_code)
            .and_then(|c| iso_code(c.as_bytes()))
    }
}

/// The test support that writes MaxMind DB files, shared with the black-box tests.
#[cfg(test)]
#[path = "../../tests/common/mmdb_writer.rs"]
mod mmdb_writer;

#[cfg(test)]
mod tests {
    use super::mmdb_writer;
    use super::*;
    use axum::http::HeaderValue;

    fn with(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn the_header_gives_upper_case_codes_and_nothing_else() {
        let geo = Geo::new(Some("CF-IPCountry"), None).unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            geo.country(&with("cf-ipcountry", "de"), ip, true),
            Some(*b"DE")
        );
        assert_eq!(geo.country(&with("cf-ipcountry", "DE"), ip, false), None);
        assert_eq!(
            geo.country(&with("cf-ipcountry", " fR "), ip, true),
            Some(*b"FR")
        );
        for bad in ["XX", "xx", "T1", "DEU", "", "1A", "=1", "D", "Dé"] {
            assert_eq!(
                geo.country(&with("cf-ipcountry", bad), ip, true),
                None,
                "{bad}"
            );
        }
    }

    #[test]
    fn the_database_answers_by_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.mmdb");
        std::fs::write(
            &path,
            mmdb_writer::country_db(&[("1.2.3.0/24", "DE"), ("2001:db8::/32", "JP")]),
        )
        .unwrap();
        let geo = Geo::new(Some("X-Country"), Some(&path)).unwrap();
        let none = HeaderMap::new();
        assert_eq!(
            geo.country(&none, "1.2.3.4".parse().unwrap(), true),
            Some(*b"DE")
        );
        assert_eq!(
            geo.country(&none, "2001:db8::1".parse().unwrap(), true),
            Some(*b"JP")
        );
        assert_eq!(geo.country(&none, "1.2.4.4".parse().unwrap(), true), None);
        // The header, when believed, wins.
        assert_eq!(
            geo.country(&with("x-country", "FR"), "1.2.3.4".parse().unwrap(), true),
            Some(*b"FR")
        );
        // IPv4-mapped addresses are looked up as IPv4.
        assert_eq!(
            geo.country(&none, "::ffff:1.2.3.4".parse().unwrap(), true),
            Some(*b"DE")
        );
        // Not believed: the database answers.
        assert_eq!(
            geo.country(&with("x-country", "FR"), "1.2.3.4".parse().unwrap(), false),
            Some(*b"DE")
        );
        // A header without a country falls through to the database.
        assert_eq!(
            geo.country(&with("x-country", "XX"), "1.2.3.4".parse().unwrap(), true),
            Some(*b"DE")
        );
        assert!(geo.is_enabled());
        assert!(!Geo::new(None, None).unwrap().is_enabled());
        let err = Geo::new(None, Some(&dir.path().join("missing.mmdb")))
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("missing.mmdb"), "{err:#}");
        let junk = dir.path().join("junk.mmdb");
        std::fs::write(&junk, b"not a database").unwrap();
        assert!(Geo::new(None, Some(&junk)).is_err());
        let err = Geo::new(Some("bad header"), None).err().unwrap();
        assert!(format!("{err:#}").contains("bad header"), "{err:#}");
    }

    #[test]
    fn registered_country_is_the_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.mmdb");
        std::fs::write(
            &path,
            mmdb_writer::db(&[
                ("5.0.0.0/8", "registered_country", "se"),
                ("5.5.0.0/16", "country", "NO"),
            ]),
        )
        .unwrap();
        let geo = Geo::new(None, Some(&path)).unwrap();
        let none = HeaderMap::new();
        let at = |ip: &str| geo.country(&none, ip.parse().unwrap(), true);
        assert_eq!(at("5.1.1.1"), Some(*b"SE"));
        assert_eq!(at("5.5.1.1"), Some(*b"NO"));
        assert_eq!(at("6.1.1.1"), None);
    }
}
