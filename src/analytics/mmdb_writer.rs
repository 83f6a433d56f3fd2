//! Test support: writes a small MaxMind DB (format 2.0) country database, so tests exercise
//! `--geoip-db` against a file they build themselves rather than a downloaded database.
//! Only what a country lookup needs: an IPv6 tree (IPv4 networks under `::/96`), 24-bit
//! records, and `{"country": {"iso_code": …}}` per network. Networks must not overlap.

use std::net::IpAddr;

#[derive(Clone, Copy)]
enum Record {
    Empty,
    Node(usize),
    Data(usize),
}

fn control(kind: u8, size: usize, out: &mut Vec<u8>) {
    // Sizes below 29 fit the control byte; the databases written here never need more.
    assert!(size < 29, "mmdb_writer: value too large");
    if kind <= 7 {
        out.push((kind << 5) | size as u8);
    } else {
        out.push(size as u8);
        out.push(kind - 7);
    }
}

fn string(s: &str, out: &mut Vec<u8>) {
    control(2, s.len(), out);
    out.extend_from_slice(s.as_bytes());
}

fn uint(kind: u8, n: u64, out: &mut Vec<u8>) {
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(kind, 8 - skip, out);
    out.extend_from_slice(&bytes[skip..]);
}

fn map_header(pairs: usize, out: &mut Vec<u8>) {
    control(7, pairs, out);
}

/// The bits of a network as an IPv6 prefix (IPv4 mapped under `::/96`).
fn prefix(cidr: &str) -> (u128, u8) {
    let (addr, len) = cidr.split_once('/').expect("network as ADDR/LEN");
    let len: u8 = len.parse().expect("prefix length");
    match addr.parse::<IpAddr>().expect("network address") {
        IpAddr::V4(v4) => (u32::from(v4) as u128, 96 + len),
        IpAddr::V6(v6) => (u128::from(v6), len),
    }
}

/// A database mapping each `(network, ISO country code)`.
pub fn country_db(networks: &[(&str, &str)]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut nodes: Vec<[Record; 2]> = vec![[Record::Empty; 2]];
    for (cidr, iso) in networks {
        let offset = data.len();
        map_header(1, &mut data);
        string("country", &mut data);
        map_header(1, &mut data);
        string("iso_code", &mut data);
        string(iso, &mut data);

        let (bits, len) = prefix(cidr);
        let mut node = 0;
        for i in 0..len {
            let bit = ((bits >> (127 - i)) & 1) as usize;
            if i + 1 == len {
                nodes[node][bit] = Record::Data(offset);
                break;
            }
            node = match nodes[node][bit] {
                Record::Node(next) => next,
                _ => {
                    nodes.push([Record::Empty; 2]);
                    let next = nodes.len() - 1;
                    nodes[node][bit] = Record::Node(next);
                    next
                }
            };
        }
    }

    let count = nodes.len();
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
        assert_eq!(reader.metadata().database_type, "GeoLite2-Country");
        assert_eq!(iso(&reader, "1.2.3.200").as_deref(), Some("DE"));
        assert_eq!(iso(&reader, "10.255.0.1").as_deref(), Some("JP"));
        assert_eq!(iso(&reader, "2001:db8:1::5").as_deref(), Some("NL"));
        assert_eq!(iso(&reader, "1.2.4.1"), None);
        assert_eq!(iso(&reader, "2001:db9::1"), None);
    }
}
