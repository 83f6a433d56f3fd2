//! Test support: writes a small MaxMind DB (format 2.0) country database, so tests exercise
//! `--geoip-db` against a file they build themselves rather than a downloaded database (whose
//! licence forbids redistribution). Only what a country lookup needs: an IPv6 tree (IPv4
//! networks under `::/96`, where readers look for them), 24-bit records, and
//! `{"country": {"iso_code": …}}` per network. Overlapping networks are allowed: the longer
//! prefix wins inside the shorter one.

use ipnet::IpNet;

#[derive(Clone, Copy)]
enum Record {
    Empty,
    Node(usize),
    Data(usize),
}

/// A control byte (and extended type byte) for a value of type `kind` and `size` bytes/entries.
fn control(kind: u8, size: usize, out: &mut Vec<u8>) {
    assert!(size < 29 + 256, "mmdb_writer: value too large");
    let (low, extra) = if size < 29 {
        (size as u8, None)
    } else {
        (29, Some((size - 29) as u8))
    };
    if kind <= 7 {
        out.push((kind << 5) | low);
    } else {
        out.push(low);
        out.push(kind - 7);
    }
    out.extend(extra);
}

fn string(s: &str, out: &mut Vec<u8>) {
    control(2, s.len(), out);
    out.extend_from_slice(s.as_bytes());
}

/// An unsigned integer of type `kind` (5 = uint16, 6 = uint32, 9 = uint64), minimal bytes.
fn uint(kind: u8, n: u64, out: &mut Vec<u8>) {
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(kind, 8 - skip, out);
    out.extend_from_slice(&bytes[skip..]);
}

fn map_header(pairs: usize, out: &mut Vec<u8>) {
    control(7, pairs, out);
}

/// The bits of a network as an IPv6 prefix (IPv4 under `::/96`); a bare address is a host.
fn prefix(cidr: &str) -> (u128, u8) {
    let net = cidr
        .parse::<IpNet>()
        .or_else(|_| cidr.parse::<std::net::IpAddr>().map(IpNet::from))
        .unwrap_or_else(|_| panic!("mmdb_writer: {cidr:?} is not a network"));
    match net {
        IpNet::V4(v4) => (u32::from(v4.network()) as u128, 96 + v4.prefix_len()),
        IpNet::V6(v6) => (u128::from(v6.network()), v6.prefix_len()),
    }
}

/// A database mapping each `(network, ISO country code)`, e.g.
/// `country_db(&[("1.2.3.0/24", "DE"), ("2001:db8::/32", "JP")])`.
///
/// # Panics
/// On a network that does not parse: this builds test fixtures, where a typo should fail loudly.
pub fn country_db(networks: &[(&str, &str)]) -> Vec<u8> {
    let records: Vec<_> = networks
        .iter()
        .map(|&(n, iso)| (n, "country", iso))
        .collect();
    db(&records)
}

/// A database mapping each `(network, key, ISO code)` to `{key: {"iso_code": code}}`, where key
/// is `country` or `registered_country` (the reader's fallback).
///
/// # Panics
/// As [`country_db`].
pub fn db(records: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut nodes: Vec<[Record; 2]> = vec![[Record::Empty; 2]];
    // Shorter prefixes first, so a longer one splits the shorter one's record on its way down.
    let mut sorted: Vec<_> = records.iter().map(|r| (prefix(r.0), r.1, r.2)).collect();
    sorted.sort_by_key(|((_, len), _, _)| *len);
    for ((bits, len), key, iso) in sorted {
        let offset = data.len();
        map_header(1, &mut data);
        string(key, &mut data);
        map_header(1, &mut data);
        string("iso_code", &mut data);
        string(iso, &mut data);

        if len == 0 {
            nodes[0] = [Record::Data(offset); 2];
            continue;
        }
        let mut node = 0;
        for i in 0..len {
            let bit = ((bits >> (127 - i)) & 1) as usize;
            if i + 1 == len {
                nodes[node][bit] = Record::Data(offset);
                break;
            }
            node = match nodes[node][bit] {
                Record::Node(next) => next,
                inherited => {
                    let split = match inherited {
                        Record::Data(_) => inherited,
                        _ => Record::Empty,
                    };
                    nodes.push([split; 2]);
                    nodes[node][bit] = Record::Node(nodes.len() - 1);
                    nodes.len() - 1
                }
            };
        }
    }

    let count = nodes.len();
    assert!(
        count + 16 + data.len() < 1 << 24,
        "mmdb_writer: too big for 24-bit records"
    );
    let mut out = Vec::with_capacity(count * 6 + data.len() + 256);
    for node in &nodes {
        for record in node {
            let value = match *record {
                Record::Empty => count,
                Record::Node(n) => n,
                Record::Data(offset) => count + 16 + offset,
            };
            out.extend_from_slice(&(value as u32).to_be_bytes()[1..]);
        }
    }
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&data);

    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    let m = &mut out;
    map_header(9, m);
    string("binary_format_major_version", m);
    uint(5, 2, m);
    string("binary_format_minor_version", m);
    uint(5, 0, m);
    string("build_epoch", m);
    uint(9, 1_700_000_000, m);
    string("database_type", m);
    string("GeoLite2-Country", m);
    string("description", m);
    map_header(1, m);
    string("en", m);
    string("snip test countries", m);
    string("ip_version", m);
    uint(5, 6, m);
    string("languages", m);
    control(11, 1, m);
    string("en", m);
    string("node_count", m);
    uint(6, count as u64, m);
    string("record_size", m);
    uint(5, 24, m);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(reader: &maxminddb::Reader<Vec<u8>>, ip: &str) -> Option<String> {
        let found: Option<maxminddb::geoip2::Country<'_>> = reader
            .lookup(ip.parse().unwrap())
            .unwrap()
            .decode()
            .unwrap();
        found.and_then(|c| c.country.iso_code.map(str::to_string))
    }

    #[test]
    fn the_written_database_is_read_back_by_the_maxminddb_crate() {
        let bytes = country_db(&[
            ("1.2.3.0/24", "DE"),
            ("10.0.0.0/8", "JP"),
            ("2001:db8::/32", "NL"),
        ]);
        let reader = maxminddb::Reader::from_source(bytes).unwrap();
        reader.verify().unwrap();
        let meta = reader.metadata();
        assert_eq!(meta.database_type, "GeoLite2-Country");
        assert_eq!((meta.ip_version, meta.record_size), (6, 24));
        assert_eq!(meta.binary_format_major_version, 2);
        assert_eq!(iso(&reader, "1.2.3.0").as_deref(), Some("DE"));
        assert_eq!(iso(&reader, "1.2.3.255").as_deref(), Some("DE"));
        assert_eq!(iso(&reader, "10.255.0.1").as_deref(), Some("JP"));
        assert_eq!(iso(&reader, "::a00:1").as_deref(), Some("JP"));
        assert_eq!(iso(&reader, "2001:db8:1::5").as_deref(), Some("NL"));
        assert_eq!(iso(&reader, "1.2.4.1"), None);
        assert_eq!(iso(&reader, "1.2.2.255"), None);
        assert_eq!(iso(&reader, "11.0.0.1"), None);
        assert_eq!(iso(&reader, "2001:db9::1"), None);
        assert_eq!(iso(&reader, "::1"), None);
    }

    #[test]
    fn overlapping_hosts_and_empty_databases() {
        let bytes = country_db(&[
            ("1.2.3.4", "FR"),
            ("1.0.0.0/8", "US"),
            ("2001:db8::/32", "NL"),
            ("2001:db8:5::/48", "BE"),
        ]);
        let reader = maxminddb::Reader::from_source(bytes).unwrap();
        reader.verify().unwrap();
        assert_eq!(iso(&reader, "1.2.3.4").as_deref(), Some("FR"));
        assert_eq!(iso(&reader, "1.2.3.5").as_deref(), Some("US"));
        assert_eq!(iso(&reader, "1.200.0.0").as_deref(), Some("US"));
        assert_eq!(iso(&reader, "2001:db8:5::1").as_deref(), Some("BE"));
        assert_eq!(iso(&reader, "2001:db8:6::1").as_deref(), Some("NL"));

        let empty = maxminddb::Reader::from_source(country_db(&[])).unwrap();
        empty.verify().unwrap();
        assert_eq!(iso(&empty, "1.2.3.4"), None);
        assert_eq!(iso(&empty, "2001:db8::1"), None);
    }

    #[test]
    fn registered_country_records() {
        let reader =
            maxminddb::Reader::from_source(db(&[("5.0.0.0/8", "registered_country", "SE")]))
                .unwrap();
        let found: maxminddb::geoip2::Country<'_> = reader
            .lookup("5.1.1.1".parse().unwrap())
            .unwrap()
            .decode()
            .unwrap()
            .unwrap();
        assert_eq!(found.country.iso_code, None);
        assert_eq!(found.registered_country.iso_code, Some("SE"));
    }

    #[test]
    #[should_panic(expected = "not a network")]
    fn a_typo_fails_loudly() {
        country_db(&[("1.2.3.0/33", "DE")]);
    }
}
