//! Fuzz targets on the stable toolchain: bounded property tests over the
//! parsers that take user or wire input (CEL expressions, timestamps,
//! durations, event-time values). They assert that nothing panics or
//! overflows the stack, and that failures are `Err`/`None`.
//!
//! Each runs `PROPTEST_CASES` cases (256 without it) on a worker-sized
//! stack and prints how many it ran (see `eddy_testkit::fuzz`);
//! `scripts/fuzz.sh` runs them all for long with `CASES=…`.

use std::sync::Arc;

use eddy_testkit::fuzz::run as fuzz;
use proptest::prelude::*;

use crate::event::{Event, Fields, Value};
use crate::source::{parse_time_value, TimeFormat};
use crate::symbol::Sym;
use crate::time::{parse_duration, parse_rfc3339};
use crate::Expression;

/// Tokens of CEL text, valid and not, to build strings that get past the
/// lexer more often than random characters do.
const TOKENS: &[&str] = &[
    "a",
    "b",
    "s",
    "l",
    "m",
    "m.k",
    "_time",
    "1",
    "0",
    "-1",
    "2.5",
    "1e308",
    "0.0",
    "9223372036854775807",
    "5u",
    "'x'",
    "\"y\"",
    "'''z'''",
    "r'\\d'",
    "b'q'",
    "true",
    "false",
    "null",
    "+",
    "-",
    "*",
    "/",
    "%",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "&&",
    "||",
    "!",
    "?",
    ":",
    "in",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ".",
    "size",
    "int",
    "double",
    "string",
    "bool",
    "type",
    "abs",
    "max",
    "min",
    "timestamp",
    "duration",
    "has",
    "all",
    "exists",
    "exists_one",
    "map",
    "filter",
    "contains",
    "startsWith",
    "trim",
    "x",
    "'",
    "\"",
    "\\",
    "//",
    "\n",
    "`a`",
    "é",
    "matches",
    "1.0/0.0",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..80).prop_map(|t| t.join(" "))
}

fn event_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        prop_oneof![
            Just(0i64),
            Just(1),
            Just(-1),
            Just(i64::MIN),
            Just(i64::MAX)
        ]
        .prop_map(Value::Int),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::Float),
        "[a-z0-9 .:TZ+-]{0,12}".prop_map(|s| Value::str(&s)),
        prop_oneof![
            Just("inf"),
            Just("nan"),
            Just("1e999"),
            Just("5s"),
            Just("2024-05-01T12:00:00Z")
        ]
        .prop_map(Value::str),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| Value::List(Arc::new(v))),
            prop::collection::vec(("[a-c]|k", inner), 0..3).prop_map(|kv| {
                let mut f = Fields::default();
                for (k, v) in kv {
                    f.insert(Sym::intern(&k), v);
                }
                Value::Map(Arc::new(f))
            }),
        ]
    })
}

fn event() -> impl Strategy<Value = Event> {
    (any::<i64>(), prop::collection::vec(event_value(), 5)).prop_map(|(time, values)| {
        let mut f = Fields::default();
        for (name, v) in ["a", "b", "s", "l", "m"].into_iter().zip(values) {
            f.push(Sym::intern(name), v);
        }
        Event::new(time, f)
    })
}

/// Expression text generated from the grammar Eddy supports (and a little
/// it does not), nested a bounded number of levels.
fn expression() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        prop::sample::select(vec![
            "a", "b", "s", "l", "m", "m.a", "m['b']", "l[0]", "_time", "missing"
        ])
        .prop_map(String::from),
        any::<i64>().prop_map(|i| i.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:?}")),
        prop::sample::select(vec![
            "0",
            "0.0",
            "1e308",
            "-1e308",
            "'5s'",
            "'2024-05-01T12:00:00Z'",
            "'inf'",
            "'nan'",
            "''",
            "true",
            "null",
            "[]",
            "{}"
        ])
        .prop_map(String::from),
    ];
    leaf.prop_recursive(6, 64, 4, |inner| {
        let binop = prop::sample::select(vec![
            "+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "in",
        ]);
        let func = prop::sample::select(vec![
            "size",
            "int",
            "double",
            "string",
            "bool",
            "type",
            "abs",
            "max",
            "min",
            "timestamp",
            "duration",
        ]);
        let method = prop::sample::select(vec![
            "contains",
            "startsWith",
            "endsWith",
            "lowerAscii",
            "upperAscii",
            "trim",
            "size",
        ]);
        let mac = prop::sample::select(vec!["all", "exists", "exists_one", "map", "filter"]);
        prop_oneof![
            (inner.clone(), binop, inner.clone()).prop_map(|(x, op, y)| format!("({x} {op} {y})")),
            inner.clone().prop_map(|x| format!("-({x})")),
            inner.clone().prop_map(|x| format!("!({x})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, x, y)| format!("({c} ? {x} : {y})")),
            (func, prop::collection::vec(inner.clone(), 1..3))
                .prop_map(|(f, a)| format!("{f}({})", a.join(", "))),
            (inner.clone(), method, prop::option::of(inner.clone()))
                .prop_map(|(x, m, a)| format!("({x}).{m}({})", a.unwrap_or_default())),
            (inner.clone(), mac, inner.clone())
                .prop_map(|(x, m, body)| format!("({x}).{m}(v, {body})")),
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            (inner.clone(), inner.clone()).prop_map(|(x, y)| format!("{{'k': {x}, 'j': {y}}}")),
            (inner.clone(), inner.clone()).prop_map(|(x, i)| format!("({x})[{i}]")),
            inner.clone().prop_map(|x| format!("has(({x}).k)")),
        ]
    })
}

/// Compiling and evaluating never panics; a double result is finite.
fn compile_and_eval(src: &str, events: &[Event]) {
    let Ok(expr) = Expression::compile(src) else {
        return;
    };
    for ev in events {
        match expr.eval(ev) {
            Ok(Value::Float(f)) => assert!(f.is_finite(), "`{src}` gave {f}"),
            Ok(_) => {}
            Err(e) => assert!(!e.message.is_empty(), "`{src}`: empty error"),
        }
        let _ = expr.eval_bool(ev);
    }
}

#[test]
fn fuzz_cel_compile_arbitrary_strings() {
    fuzz(
        "fuzz_cel_compile_arbitrary_strings",
        || {
            (
                prop_oneof![any::<String>(), token_soup()],
                prop::collection::vec(event(), 1..3),
            )
        },
        |(src, events)| compile_and_eval(&src, &events),
    );
}

#[test]
fn fuzz_cel_structured_expressions() {
    fuzz(
        "fuzz_cel_structured_expressions",
        || (expression(), prop::collection::vec(event(), 1..4)),
        |(src, events)| compile_and_eval(&src, &events),
    );
}

#[test]
fn fuzz_parse_rfc3339() {
    fn shaped() -> impl Strategy<Value = String> {
        (
            0u32..10000,
            0u32..14,
            0u32..33,
            0u32..25,
            0u32..61,
            0u32..62,
            prop::option::of("[0-9]{1,12}"),
            prop::sample::select(vec!["Z", "z", "+00:00", "-23:59", "+24:00", "", "+5"]),
            prop::sample::select(vec!["T", "t", " ", "_"]),
        )
            .prop_map(|(y, mo, d, h, mi, s, frac, tz, sep)| {
                let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
                format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{frac}{tz}")
            })
    }
    fuzz(
        "fuzz_parse_rfc3339",
        || prop_oneof![any::<String>(), shaped()],
        |s| {
            let _ = parse_rfc3339(&s);
        },
    );
}

#[test]
fn fuzz_parse_duration() {
    fn shaped() -> impl Strategy<Value = String> {
        prop::collection::vec(
            (
                prop_oneof![
                    any::<u64>().prop_map(|n| n.to_string()),
                    "[0-9]{0,25}(\\.[0-9]{0,5})?"
                ],
                prop::sample::select(vec![
                    "ms", "s", "m", "h", "d", "w", "us", "ns", "", " ", "x",
                ]),
            ),
            0..5,
        )
        .prop_map(|parts| {
            parts
                .into_iter()
                .map(|(n, u)| format!("{n}{u}"))
                .collect::<String>()
        })
    }
    fuzz(
        "fuzz_parse_duration",
        || prop_oneof![any::<String>(), shaped()],
        |s| {
            let _ = parse_duration(&s);
        },
    );
}

#[test]
fn fuzz_parse_time_value() {
    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::Int),
            prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(-1), Just(0)].prop_map(Value::Int),
            any::<f64>().prop_map(Value::Float),
            prop_oneof![
                Just(f64::MAX),
                Just(-f64::MAX),
                Just(1e11),
                Just(9.3e15),
                Just(-9.3e18)
            ]
            .prop_map(Value::Float),
            any::<String>().prop_map(|s| Value::str(&s)),
            "-?[0-9]{0,22}(\\.[0-9]{0,4})?(e[0-9]{1,3})?".prop_map(|s| Value::str(&s)),
            Just(Value::Null),
            Just(Value::Bool(true)),
        ]
    }
    fn format() -> impl Strategy<Value = TimeFormat> {
        prop::sample::select(vec![
            TimeFormat::Auto,
            TimeFormat::EpochS,
            TimeFormat::EpochMs,
            TimeFormat::Rfc3339,
        ])
    }
    fuzz(
        "fuzz_parse_time_value",
        || (value(), format()),
        |(v, f)| {
            let _ = parse_time_value(&v, f);
        },
    );
}

#[test]
fn fuzz_json_decoder() {
    /// JSON-ish text: fragments that get past the tokenizer often.
    fn soup() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop::sample::select(vec![
                "{",
                "}",
                "[",
                "]",
                ":",
                ",",
                "\"k\"",
                "\"a\\\"b\"",
                "1",
                "-0",
                "1e400",
                "123456789012345678901234567890",
                "18446744073709551616",
                "-9223372036854775809",
                "1.5",
                "true",
                "null",
                "\"\\u0000\"",
                "\u{feff}",
                " ",
                "\n",
                "\"",
            ]),
            0..60,
        )
        .prop_map(|parts| parts.concat().into_bytes())
    }
    fuzz(
        "fuzz_json_decoder",
        || prop_oneof![prop::collection::vec(any::<u8>(), 0..400), soup()],
        |bytes| {
            let mut d = crate::json::JsonDecoder::new();
            let from_bytes = d.decode(&bytes);
            if let Ok(text) = std::str::from_utf8(&bytes) {
                assert_eq!(from_bytes, d.decode_str(text));
            }
            // What decodes encodes to JSON that decodes to the same fields.
            if let Ok(fields) = from_bytes {
                let text = crate::json::fields_to_json_string(&fields);
                assert_eq!(d.decode_str(&text).as_ref(), Ok(&fields), "{text}");
            }
        },
    );
}

/// Bytes that look like an encoded value: a real encoding with some bytes
/// flipped, cut short or extended.
fn codec_bytes() -> impl Strategy<Value = Vec<u8>> {
    use crate::codec::encode_to_vec;
    let valid = event().prop_map(|e| encode_to_vec(&e));
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        (
            valid,
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            any::<prop::sample::Index>()
        )
            .prop_map(|(mut bytes, flips, cut)| {
                if !bytes.is_empty() {
                    for (i, b) in flips {
                        let i = i.index(bytes.len());
                        bytes[i] = b;
                    }
                    bytes.truncate(cut.index(bytes.len() + 1));
                }
                bytes
            }),
    ]
}

#[test]
fn fuzz_codec_decode_arbitrary_bytes() {
    use crate::codec::{decode_from, encode_to_vec};
    fuzz("fuzz_codec_decode_arbitrary_bytes", codec_bytes, |bytes| {
        // Whatever decodes must encode back to bytes that decode the same.
        if let Ok(v) = decode_from::<Value>(&bytes) {
            let again = encode_to_vec(&v);
            assert_eq!(decode_from::<Value>(&again).ok(), Some(v));
        }
        if let Ok(e) = decode_from::<Event>(&bytes) {
            let again = encode_to_vec(&e);
            assert_eq!(decode_from::<Event>(&again).ok(), Some(e));
        }
        let _ = decode_from::<Fields>(&bytes);
    });
}
