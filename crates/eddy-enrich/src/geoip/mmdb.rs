//! A small writer of MaxMind-format databases, so the tests make their
//! own: an IPv6 search tree (IPv4 networks under `::/96`) with 24-bit
//! records, the data section and the metadata, as the format's
//! specification lays them out.

use std::net::IpAddr;

/// A value of the format's data section.
pub enum Data {
    Str(String),
    F64(f64),
    U16(u16),
    U32(u32),
    U64(u64),
    Bool(bool),
    Map(Vec<(String, Data)>),
    Array(Vec<Data>),
}

/// A map from `(key, value)` pairs.
pub fn map<const N: usize>(pairs: [(&str, Data); N]) -> Data {
    Data::Map(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// A string value.
pub fn s(text: &str) -> Data {
    Data::Str(text.to_owned())
}

fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    let (bits, extra): (u8, Vec<u8>) = match size {
        0..29 => (size as u8, vec![]),
        29..285 => (29, vec![(size - 29) as u8]),
        285..65_821 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
    };
    if kind <= 7 {
        out.push(kind << 5 | bits);
    } else {
        out.push(bits);
        out.push(kind - 7);
    }
    out.extend(extra);
}

fn unsigned(out: &mut Vec<u8>, kind: u8, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    control(out, kind, 8 - skip);
    out.extend(&bytes[skip..]);
}

fn encode(d: &Data, out: &mut Vec<u8>) {
    match d {
        Data::Str(t) => {
            control(out, 2, t.len());
            out.extend(t.as_bytes());
        }
        Data::F64(x) => {
            control(out, 3, 8);
            out.extend(x.to_be_bytes());
        }
        Data::U16(n) => unsigned(out, 5, (*n).into()),
        Data::U32(n) => unsigned(out, 6, (*n).into()),
        Data::U64(n) => unsigned(out, 9, *n),
        Data::Bool(b) => control(out, 14, usize::from(*b)),
        Data::Map(pairs) => {
            control(out, 7, pairs.len());
            for (k, v) in pairs {
                encode(&Data::Str(k.clone()), out);
                encode(v, out);
            }
        }
        Data::Array(items) => {
            control(out, 11, items.len());
            for item in items {
                encode(item, out);
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Child {
    Empty,
    Node(usize),
    Record(usize),
}

/// A database of `database_type` holding `records` at their networks
/// (address, prefix length); the networks must not overlap.
pub fn build(database_type: &str, records: Vec<(IpAddr, u8, Data)>) -> Vec<u8> {
    let mut nodes: Vec<[Child; 2]> = vec![[Child::Empty; 2]];
    let mut data = Vec::new();
    let mut offsets = Vec::new();
    for (i, (ip, prefix, record)) in records.iter().enumerate() {
        offsets.push(data.len());
        encode(record, &mut data);
        let (bits, len) = match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(*v4)), 96 + *prefix as usize),
            IpAddr::V6(v6) => (u128::from(*v6), *prefix as usize),
        };
        let bit = |depth: usize| (bits >> (127 - depth) & 1) as usize;
        let mut node = 0;
        for depth in 0..len - 1 {
            node = match nodes[node][bit(depth)] {
                Child::Node(next) => next,
                Child::Empty => {
                    nodes.push([Child::Empty; 2]);
                    let next = nodes.len() - 1;
                    nodes[node][bit(depth)] = Child::Node(next);
                    next
                }
                Child::Record(_) => panic!("network {ip}/{prefix} overlaps another"),
            };
        }
        nodes[node][bit(len - 1)] = Child::Record(i);
    }
    let count = nodes.len();
    let mut out = Vec::new();
    for node in &nodes {
        for child in node {
            let value = match *child {
                Child::Empty => count,
                Child::Node(n) => n,
                Child::Record(i) => count + 16 + offsets[i],
            };
            out.extend(&(value as u32).to_be_bytes()[1..]);
        }
    }
    out.extend([0u8; 16]);
    out.extend(data);
    out.extend(b"\xAB\xCD\xEFMaxMind.com");
    let metadata = map([
        ("binary_format_major_version", Data::U16(2)),
        ("binary_format_minor_version", Data::U16(0)),
        ("build_epoch", Data::U64(1_700_000_000)),
        ("database_type", s(database_type)),
        ("description", map([("en", s("Eddy test database"))])),
        ("ip_version", Data::U16(6)),
        ("languages", Data::Array(vec![s("en")])),
        ("node_count", Data::U32(count as u32)),
        ("record_size", Data::U16(24)),
    ]);
    encode(&metadata, &mut out);
    out
}
