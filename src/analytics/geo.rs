//! The visitor's country: from a header set by the operator's CDN or proxy (`--country-header`,
//! e.g. Cloudflare's `CF-IPCountry`), or from a MaxMind-format country database
//! (`--geoip-db`, GeoLite2-Country or compatible) looked up by client address.

use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;
use axum::http::{HeaderMap, HeaderName};
use maxminddb::geoip2;

pub struct Geo {
    header: Option<HeaderName>,
    db: Option<maxminddb::Reader<Vec<u8>>>,
}

/// Two ASCII letters, upper-cased; `XX` (unknown) and `T1` (Tor) are not countries.
fn iso_code(raw: &[u8]) -> Option<[u8; 2]> {
    let code = match raw {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphanumeric() => {
            [a.to_ascii_uppercase(), b.to_ascii_uppercase()]
        }
        _ => return None,
    };
    (code[1].is_ascii_alphabetic() && &code != b"XX").then_some(code)
}

impl Geo {
    /// Fails with a clear message for an invalid header name or an unreadable database.
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

    pub fn is_enabled(&self) -> bool {
        self.header.is_some() || self.db.is_some()
    }

    /// The country of a request from client address `ip`. The header wins when it is
    /// configured, believed (`header_trusted`) and holds a country; otherwise the database.
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
        let found: geoip2::Country<'_> = db.lookup(ip).ok()?.decode().ok()??;
        found
            .country
            .iso_code
            .or(found.registered_country.iso_code)
            .and_then(|c| iso_code(c.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
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
        for bad in ["XX", "T1", "DEU", "", "1A", "=1"] {
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
            super::super::mmdb_writer::country_db(&[("1.2.3.0/24", "DE"), ("2001:db8::/32", "JP")]),
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
        assert!(Geo::new(None, Some(&dir.path().join("missing.mmdb"))).is_err());
        assert!(Geo::new(Some("bad header"), None).is_err());
    }
}
