//! `json-bench FILE`: parses every line of an NDJSON file with serde_json
//! and sonic-rs, three rounds, and prints lines/s for each way Eddy could
//! use them, and for Eddy's own decoder:
//!
//! - `eddy pick4`: Eddy's `JsonDecoder` keeping the four fields query `a`'s
//!   pipeline reads, as the file source runs it (its direct reader, with
//!   serde_json for what that leaves);
//! - `visit`: through a serde visitor, every value built (how Eddy's
//!   decoder read a document before its direct reader);
//! - `skim`: through a serde visitor, every value skipped (the fields a
//!   projection leaves out);
//! - `dom`: each parser's own document tree, then a walk of its entries;
//! - `pick3`: the three fields query `a` reads built, the rest skipped
//!   (serde_json through a visitor; sonic-rs through its lazy object
//!   iterator).

use std::borrow::Cow;
use std::time::Instant;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

/// What a visit does with an object's values.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Builds every value.
    Build,
    /// Skips every value.
    Skip,
    /// Builds the three fields query `a` reads, skips the rest.
    Pick,
}

/// Visits an object in a [`Mode`].
struct Object(Mode);

impl<'de> Visitor<'de> for Object {
    type Value = usize;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match self.0 {
                Mode::Build => {
                    n += key.len();
                    let v: serde_json::Value = map.next_value()?;
                    n += usize::from(v.is_string());
                }
                Mode::Pick if matches!(&*key, "auction" | "price" | "date_time") => {
                    n += map.next_value::<i64>()? as usize & 1;
                }
                Mode::Pick => {
                    map.next_value::<IgnoredAny>()?;
                }
                Mode::Skip => {
                    n += key.len();
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(n)
    }
}

type Parse = fn(&str) -> usize;

thread_local! {
    /// Eddy's decoder, keeping what query `a`'s pipeline reads (its filter
    /// reads `type`), as the file source sets it up.
    static EDDY: std::cell::RefCell<eddy_core::json::JsonDecoder> = {
        let mut d = eddy_core::json::JsonDecoder::new();
        let keep = ["type", "auction", "price", "date_time"].map(eddy_core::Sym::intern);
        d.keep_only(Some(keep.to_vec()));
        std::cell::RefCell::new(d)
    };
}

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: json-bench FILE.ndjson");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let lines: Vec<&str> = text.lines().collect();
    let ways: [(&str, Parse); 9] = [
        ("eddy pick4", |l| {
            EDDY.with(|d| d.borrow_mut().decode(l.as_bytes()).map_or(0, |f| f.len()))
        }),
        ("serde_json pick3", |l| {
            let mut de = serde_json::Deserializer::from_str(l);
            de.deserialize_map(Object(Mode::Pick)).unwrap_or(0)
        }),
        ("sonic-rs lazy pick3", |l| {
            let mut n = 0;
            for item in sonic_rs::to_object_iter(l) {
                let Ok((key, value)) = item else { return 0 };
                if matches!(&*key, "auction" | "price" | "date_time") {
                    n += value.as_raw_str().parse::<i64>().unwrap_or(0) as usize & 1;
                }
            }
            n
        }),
        ("serde_json visit", |l| {
            let mut de = serde_json::Deserializer::from_str(l);
            de.deserialize_map(Object(Mode::Build)).unwrap_or(0)
        }),
        ("sonic-rs visit", |l| {
            let mut de = sonic_rs::Deserializer::from_str(l);
            de.deserialize_map(Object(Mode::Build)).unwrap_or(0)
        }),
        ("serde_json skim", |l| {
            let mut de = serde_json::Deserializer::from_str(l);
            de.deserialize_map(Object(Mode::Skip)).unwrap_or(0)
        }),
        ("sonic-rs skim", |l| {
            let mut de = sonic_rs::Deserializer::from_str(l);
            de.deserialize_map(Object(Mode::Skip)).unwrap_or(0)
        }),
        ("serde_json dom", |l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
            v.as_object().map_or(0, |o| {
                o.iter().map(|(k, v)| k.len() + usize::from(v.is_string())).sum()
            })
        }),
        ("sonic-rs dom", |l| {
            use sonic_rs::{JsonContainerTrait, JsonValueTrait};
            let v: sonic_rs::Value = sonic_rs::from_str(l).unwrap_or_default();
            v.as_object().map_or(0, |o| {
                o.iter().map(|(k, v)| k.len() + usize::from(v.is_str())).sum()
            })
        }),
    ];
    for round in 1..=3 {
        for (name, parse) in ways {
            let started = Instant::now();
            let checksum: usize = lines.iter().map(|l| parse(l)).sum();
            let rate = lines.len() as f64 / started.elapsed().as_secs_f64();
            println!("round {round} {name:>16}: {:.2} M lines/s (checksum {checksum})", rate / 1e6);
        }
    }
}
