use std::collections::HashMap;
use std::time::Instant;

use apache_avro::types::Value as A;
use eddy_core::json::JsonDecoder;
use eddy_core::Sym;

use super::*;

fn json_fields(text: &str) -> Fields {
    JsonDecoder::new().decode_str(text).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const PAYMENT_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["id", "amount"],
  "additionalProperties": false,
  "properties": {
    "id": { "type": "integer", "minimum": 1 },
    "amount": { "type": "number", "exclusiveMinimum": 0 },
    "currency": { "enum": ["EUR", "USD"] },
    "note": { "type": "string", "maxLength": 5 },
    "tags": { "type": "array", "items": { "type": "string" }, "maxItems": 2 },
    "kind": { "const": "payment" }
  }
}"#;

#[test]
fn json_schema_accepts_and_rejects_with_pointer_and_keyword() {
    let dir = tempfile::tempdir().unwrap();
    let v = JsonSchemaValidator::load(&write(dir.path(), "p.json", PAYMENT_SCHEMA)).unwrap();
    // (record, None if valid / Some(substrings of the reason))
    let cases: &[(&str, Option<&[&str]>)] = &[
        (r#"{"id": 1, "amount": 2.5}"#, None),
        (
            r#"{"id": 1, "amount": 3, "currency": "EUR", "tags": ["a"]}"#,
            None,
        ),
        (
            r#"{"id": 2, "amount": 1, "note": "short", "kind": "payment"}"#,
            None,
        ),
        (
            r#"{"id": 1, "amount": "abc"}"#,
            Some(&[r#"/amount: "abc" is not of type "number" (type)"#]),
        ),
        (r#"{"id": 1}"#, Some(&["/: ", "amount", "(required)"])),
        (r#"{"id": 0, "amount": 1}"#, Some(&["/id: ", "(minimum)"])),
        (
            r#"{"id": 1, "amount": 0}"#,
            Some(&["/amount: ", "(exclusiveMinimum)"]),
        ),
        (r#"{"id": 1.5, "amount": 1}"#, Some(&["/id: ", "(type)"])),
        (
            r#"{"id": 1, "amount": 1, "currency": "GBP"}"#,
            Some(&["/currency: ", "(enum)"]),
        ),
        (
            r#"{"id": 1, "amount": 1, "note": "too long"}"#,
            Some(&["/note: ", "(maxLength)"]),
        ),
        (
            r#"{"id": 1, "amount": 1, "tags": ["a", 2]}"#,
            Some(&["/tags/1: ", "(type)"]),
        ),
        (
            r#"{"id": 1, "amount": 1, "tags": ["a", "b", "c"]}"#,
            Some(&["/tags: ", "(maxItems)"]),
        ),
        (
            r#"{"id": 1, "amount": 1, "kind": "refund"}"#,
            Some(&["/kind: ", "(const)"]),
        ),
        (
            r#"{"id": 1, "amount": 1, "extra": true}"#,
            Some(&["/: ", "extra", "(additionalProperties)"]),
        ),
    ];
    for (record, expected) in cases {
        let got = v.check(&json_fields(record));
        match expected {
            None => assert_eq!(got, Ok(()), "{record}"),
            Some(parts) => {
                let reason = got.expect_err(record);
                assert!(reason.starts_with("schema violation: "), "{reason}");
                for p in *parts {
                    assert!(reason.contains(p), "{record}: `{reason}` lacks `{p}`");
                }
            }
        }
    }
}

#[test]
fn json_schema_reports_a_few_violations_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let schema = r#"{"properties": {"a": {"type": "string"}, "b": {"type": "string"},
        "c": {"type": "string"}, "d": {"type": "string"}, "e": {"type": "string"}}}"#;
    let v = JsonSchemaValidator::load(&write(dir.path(), "s.json", schema)).unwrap();
    let reason = v
        .check(&json_fields(r#"{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}"#))
        .unwrap_err();
    assert_eq!(reason.matches("(type)").count(), 3, "{reason}");
    assert!(reason.ends_with("and 2 more"), "{reason}");
}

#[test]
fn schema_files_that_cannot_be_used_are_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let e = JsonSchemaValidator::load(&missing)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("cannot read schema") && e.contains("nope.json"),
        "{e}"
    );
    let bad = write(dir.path(), "bad.json", "{ not json");
    let e = JsonSchemaValidator::load(&bad).err().unwrap().to_string();
    assert!(
        e.contains("invalid schema") && e.contains("bad.json"),
        "{e}"
    );
    let wrong = write(dir.path(), "wrong.json", r#"{"type": 5}"#);
    let e = JsonSchemaValidator::load(&wrong).err().unwrap().to_string();
    assert!(e.contains("wrong.json"), "{e}");
    let avsc = write(dir.path(), "bad.avsc", r#"{"type": "record"}"#);
    let e = AvroDecoder::load(&avsc).err().unwrap().to_string();
    assert!(
        e.contains("invalid schema") && e.contains("bad.avsc"),
        "{e}"
    );
    let e = ConfluentAvroDecoder::new(&dir.path().join("absent"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("absent"), "{e}");
    let e = ConfluentAvroDecoder::new(&avsc).err().unwrap().to_string();
    assert!(e.contains("must be a directory"), "{e}");
}

#[test]
fn ints_stay_integers_and_non_finite_floats_become_null() {
    let mut f = Fields::default();
    f.push(Sym::intern("i"), Value::Int(3));
    f.push(Sym::intern("x"), Value::Float(3.0));
    f.push(Sym::intern("nan"), Value::Float(f64::NAN));
    let j = fields_to_json(&f);
    assert!(j["i"].is_i64());
    assert!(j["x"].is_f64());
    assert!(j["nan"].is_null());
}

const SMALL_AVSC: &str = r#"{"type": "record", "name": "P", "fields": [
  {"name": "id", "type": "long"}, {"name": "who", "type": "string"},
  {"name": "ok", "type": "boolean"}]}"#;

/// Hand-encoded datum of SMALL_AVSC: zig-zag varint long, length-prefixed
/// string, one byte boolean.
fn small_datum(id: u8, who: &str, ok: bool) -> Vec<u8> {
    // Zig-zag: n >= 0 encodes as 2n (fits one byte below 64).
    let mut out = vec![id * 2, (who.len() as u8) * 2];
    out.extend_from_slice(who.as_bytes());
    out.push(u8::from(ok));
    out
}

#[test]
fn hand_encoded_avro_record_decodes_into_fields() {
    let dir = tempfile::tempdir().unwrap();
    let d = AvroDecoder::load(&write(dir.path(), "p.avsc", SMALL_AVSC)).unwrap();
    let f = d.decode(&small_datum(21, "ann", true)).unwrap();
    assert_eq!(f.get(Sym::intern("id")), Some(&Value::Int(21)));
    assert_eq!(f.get(Sym::intern("who")), Some(&Value::str("ann")));
    assert_eq!(f.get(Sym::intern("ok")), Some(&Value::Bool(true)));
    // Negative zig-zag: -3 encodes as 5; a two-byte varint: 300 -> 600.
    let f = d.decode(&[5, 0, 0]).unwrap();
    assert_eq!(f.get(Sym::intern("id")), Some(&Value::Int(-3)));
    let f = d.decode(&[0xd8, 0x04, 0, 1]).unwrap();
    assert_eq!(f.get(Sym::intern("id")), Some(&Value::Int(300)));

    let mut long = small_datum(1, "a", false);
    long.push(7);
    let e = d.decode(&long).unwrap_err();
    assert!(e.contains("1 bytes left"), "{e}");
    let e = d.decode(&[2, 20, b'a']).unwrap_err();
    assert!(e.starts_with("invalid Avro datum"), "{e}");
    assert!(d.decode(&[]).is_err());
}

const ALL_TYPES_AVSC: &str = r#"{"type": "record", "name": "All", "fields": [
  {"name": "n", "type": "null"},
  {"name": "b", "type": "boolean"},
  {"name": "i", "type": "int"},
  {"name": "l", "type": "long"},
  {"name": "f", "type": "float"},
  {"name": "d", "type": "double"},
  {"name": "by", "type": "bytes"},
  {"name": "s", "type": "string"},
  {"name": "fx", "type": {"type": "fixed", "name": "F2", "size": 2}},
  {"name": "e", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}},
  {"name": "a", "type": {"type": "array", "items": "int"}},
  {"name": "m", "type": {"type": "map", "values": "string"}},
  {"name": "u", "type": ["null", "string"]},
  {"name": "u2", "type": ["null", "string"]},
  {"name": "r", "type": {"type": "record", "name": "Inner", "fields": [{"name": "x", "type": "int"}]}},
  {"name": "tms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "tus", "type": {"type": "long", "logicalType": "timestamp-micros"}},
  {"name": "day", "type": {"type": "int", "logicalType": "date"}},
  {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}},
  {"name": "next", "type": ["null", "Inner"]}
]}"#;

#[test]
fn every_avro_type_maps_to_an_eddy_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "all.avsc", ALL_TYPES_AVSC);
    let schema = apache_avro::Schema::parse_str(ALL_TYPES_AVSC).unwrap();
    let mut map = HashMap::new();
    map.insert("k".to_string(), A::String("v".into()));
    let record = A::Record(vec![
        ("n".into(), A::Null),
        ("b".into(), A::Boolean(true)),
        ("i".into(), A::Int(-7)),
        ("l".into(), A::Long(1 << 40)),
        ("f".into(), A::Float(1.5)),
        ("d".into(), A::Double(-0.25)),
        ("by".into(), A::Bytes(vec![0, 255, 1])),
        ("s".into(), A::String("héllo".into())),
        ("fx".into(), A::Fixed(2, vec![1, 2])),
        ("e".into(), A::Enum(1, "GREEN".into())),
        ("a".into(), A::Array(vec![A::Int(1), A::Int(2)])),
        ("m".into(), A::Map(map)),
        ("u".into(), A::Union(1, Box::new(A::String("some".into())))),
        ("u2".into(), A::Union(0, Box::new(A::Null))),
        ("r".into(), A::Record(vec![("x".into(), A::Int(9))])),
        ("tms".into(), A::TimestampMillis(1_700_000_000_123)),
        ("tus".into(), A::TimestampMicros(1_700_000_000_123_456)),
        ("day".into(), A::Date(19_000)),
        ("dec".into(), A::Decimal(vec![0xfbu8, 0x2e].into())),
        (
            "next".into(),
            A::Union(1, Box::new(A::Record(vec![("x".into(), A::Int(-1))]))),
        ),
    ]);
    let bytes = apache_avro::to_avro_datum(&schema, record).unwrap();
    let f = AvroDecoder::load(&path).unwrap().decode(&bytes).unwrap();
    let json = eddy_core::json::fields_to_json_string(&f);
    assert_eq!(
        json,
        concat!(
            r#"{"n":null,"b":true,"i":-7,"l":1099511627776,"f":1.5,"d":-0.25,"#,
            r#""by":"AP8B","s":"héllo","fx":"AQI=","e":"GREEN","a":[1,2],"#,
            r#""m":{"k":"v"},"u":"some","u2":null,"r":{"x":9},"#,
            r#""tms":1700000000123,"tus":1700000000123,"day":19000,"dec":"-12.34","#,
            r#""next":{"x":-1}}"#
        )
    );
}

#[test]
fn top_level_avro_value_must_be_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let d = AvroDecoder::load(&write(dir.path(), "s.avsc", r#""string""#)).unwrap();
    let e = d.decode(&[2, b'x']).unwrap_err();
    assert!(e.contains("expected an Avro record"), "{e}");
}

fn framed(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(datum);
    out
}

#[test]
fn confluent_framing_resolves_ids_and_reports_bad_records() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "7.avsc", SMALL_AVSC);
    write(dir.path(), "8.avsc", "{ broken");
    let mut d = ConfluentAvroDecoder::new(dir.path()).unwrap();
    let f = d.decode(&framed(7, &small_datum(4, "bo", false))).unwrap();
    assert_eq!(f.get(Sym::intern("who")), Some(&Value::str("bo")));

    let e = d
        .decode(&framed(9, &small_datum(4, "bo", false)))
        .unwrap_err();
    assert!(
        e.contains("unknown schema id 9") && e.contains("9.avsc"),
        "{e}"
    );
    let e = d.decode(&framed(8, &[])).unwrap_err();
    assert!(e.contains("schema id 8") && e.contains("8.avsc"), "{e}");
    let e = d.decode(&[1, 0, 0, 0, 7, 2]).unwrap_err();
    assert!(e.contains("magic byte is 1, expected 0"), "{e}");
    let e = d.decode(&[0, 0, 0]).unwrap_err();
    assert!(e.contains("shorter than the 5-byte header"), "{e}");
    let e = d.decode(&framed(7, &[2])).unwrap_err();
    assert!(e.contains("schema id 7: invalid Avro datum"), "{e}");

    // Parsed once: removing the file does not matter to a cached id.
    std::fs::remove_file(dir.path().join("7.avsc")).unwrap();
    assert!(d.decode(&framed(7, &small_datum(1, "c", true))).is_ok());
}

/// Throughput of JSON decoding with and without schema validation. Prints
/// figures, asserts nothing about them; run with
/// `cargo test -p eddy-connectors --release --lib schema -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark: run on demand in release mode"]
fn bench_json_schema_validation_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let v = JsonSchemaValidator::load(&write(dir.path(), "p.json", PAYMENT_SCHEMA)).unwrap();
    let records: Vec<String> = (0..200_000)
        .map(|i| {
            format!(
                r#"{{"id": {}, "amount": {}.5, "currency": "EUR", "note": "n{}", "tags": ["a", "b"]}}"#,
                i + 1,
                i % 1000,
                i % 10
            )
        })
        .collect();
    let mut decoder = JsonDecoder::new();
    let mut run = |validate: bool| {
        let start = Instant::now();
        let mut ok = 0usize;
        for r in &records {
            let f = decoder.decode(r.as_bytes()).unwrap();
            if !validate || v.check(&f).is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, records.len());
        records.len() as f64 / start.elapsed().as_secs_f64()
    };
    let _ = run(false);
    let plain = run(false);
    let validated = run(true);
    println!(
        "json decode: {:.0} records/s; with json_schema: {:.0} records/s ({:.0}% of plain)",
        plain,
        validated,
        100.0 * validated / plain
    );

    let schema = apache_avro::Schema::parse_str(SMALL_AVSC).unwrap();
    write(dir.path(), "1.avsc", SMALL_AVSC);
    let mut confluent = ConfluentAvroDecoder::new(dir.path()).unwrap();
    let datums: Vec<Vec<u8>> = (0..200_000)
        .map(|i: i64| {
            let rec = A::Record(vec![
                ("id".into(), A::Long(i)),
                ("who".into(), A::String(format!("user-{}", i % 100))),
                ("ok".into(), A::Boolean(i % 2 == 0)),
            ]);
            framed(1, &apache_avro::to_avro_datum(&schema, rec).unwrap())
        })
        .collect();
    let start = Instant::now();
    for d in &datums {
        confluent.decode(d).unwrap();
    }
    println!(
        "confluent_avro decode: {:.0} records/s",
        datums.len() as f64 / start.elapsed().as_secs_f64()
    );
}

#[test]
fn hostile_lengths_and_counts_are_rejected_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let nulls = r#"{"type": "record", "name": "N", "fields": [
        {"name": "a", "type": {"type": "array", "items": "null"}}]}"#;
    let d = AvroDecoder::load(&write(dir.path(), "n.avsc", nulls)).unwrap();
    // Two nulls in a 2-byte record would be legal; a count of 2^62 is not.
    let e = d
        .decode(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f, 0])
        .unwrap_err();
    assert!(e.contains("items in a 10-byte record"), "{e}");
    let d = AvroDecoder::load(&write(dir.path(), "p.avsc", SMALL_AVSC)).unwrap();
    // A string claiming 2^40 bytes is a short read, not an allocation.
    let e = d
        .decode(&[2, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40])
        .unwrap_err();
    assert!(e.contains("more bytes expected"), "{e}");
    let e = d.decode(&[2, 3]).unwrap_err();
    assert!(e.contains("negative length"), "{e}");
    let e = d.decode(&[2, 2, 0xff, 1]).unwrap_err();
    assert!(e.contains("not UTF-8"), "{e}");
    let e = d.decode(&[2, 0, 2]).unwrap_err();
    assert!(e.contains("boolean byte 2"), "{e}");
}
