use std::fs;
use std::net::IpAddr;
use std::thread;
use std::time::Duration as StdDuration;

use eddy_core::{Event, Value};

use super::mmdb::{self, map, s, Data};
use super::*;
use crate::test_support::{build, config, field, process, run};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn place(city: &str, country: (&str, &str), region: &str, at: (f64, f64)) -> Data {
    map([
        (
            "city",
            map([("names", map([("en", s(city)), ("de", s("x"))]))]),
        ),
        ("continent", map([("code", s("EU"))])),
        (
            "country",
            map([
                ("iso_code", s(country.0)),
                ("names", map([("en", s(country.1))])),
            ]),
        ),
        (
            "location",
            map([
                ("accuracy_radius", Data::U16(20)),
                ("latitude", Data::F64(at.0)),
                ("longitude", Data::F64(at.1)),
                ("time_zone", s("Europe/Berlin")),
            ]),
        ),
        ("postal", map([("code", s("10115"))])),
        (
            "subdivisions",
            Data::Array(vec![map([
                ("iso_code", s(region)),
                ("names", map([("en", s("Berlin"))])),
            ])]),
        ),
        ("traits", map([("is_anycast", Data::Bool(false))])),
    ])
}

fn city_db() -> Vec<u8> {
    mmdb::build(
        "GeoIP2-City",
        vec![
            (
                ip("81.2.69.0"),
                24,
                place("Berlin", ("DE", "Germany"), "BE", (52.52, 13.405)),
            ),
            (
                ip("2001:db8::"),
                32,
                place("Hamburg", ("DE", "Germany"), "HH", (53.55, 9.99)),
            ),
            (
                ip("89.160.20.128"),
                25,
                place("Linköping", ("SE", "Sweden"), "E", (58.41, 15.62)),
            ),
        ],
    )
}

fn setup(db: &[u8], extra: &str) -> (tempfile::TempDir, GeoIpConfig) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("geo.mmdb");
    fs::write(&path, db).unwrap();
    let cfg = config(&format!(
        "[transforms.geo]\ntype = \"geoip\"\nfield = \"ip\"\ndatabase = {:?}\n{extra}",
        path.display().to_string()
    ))
    .unwrap();
    (dir, cfg)
}

fn json(e: &Event, path: &str) -> String {
    field(e, path).map(Value::to_string).unwrap_or_default()
}

#[test]
fn addresses_are_located_and_unknown_or_bad_ones_are_told_apart() {
    let (_dir, cfg) = setup(&city_db(), "");
    let (main, dead) = run(
        &cfg,
        &[
            r#"{"ip": "81.2.69.142"}"#,
            r#"{"ip": "2001:db8:1::7"}"#,
            r#"{"ip": "89.160.20.200"}"#,
            r#"{"ip": "10.1.2.3"}"#,
            r#"{"user": "no address"}"#,
            r#"{"ip": "999.1.1.1"}"#,
            r#"{"ip": 17}"#,
        ],
    );
    assert_eq!(
        json(&main[0], "geo"),
        r#"{"country_code":"DE","country_name":"Germany","continent_code":"EU","region_code":"BE","region_name":"Berlin","city":"Berlin","postal_code":"10115","latitude":52.52,"longitude":13.405,"time_zone":"Europe/Berlin","accuracy_radius_km":20,"network":"81.2.69.0/24"}"#
    );
    assert_eq!(json(&main[1], "geo.city"), "Hamburg");
    assert_eq!(json(&main[1], "geo.network"), "2001:db8::/32");
    assert_eq!(json(&main[2], "geo.city"), "Linköping");
    assert_eq!(json(&main[2], "geo.network"), "89.160.20.128/25");
    assert_eq!(
        field(&main[3], "geo"),
        None,
        "a private address is not in the database"
    );
    assert_eq!(field(&main[4], "geo"), None);
    assert_eq!(main.len(), 5);
    let reasons: Vec<String> = dead.iter().map(|e| json(e, "reason")).collect();
    assert_eq!(
        reasons,
        [
            "`999.1.1.1` is not an IP address",
            "field `ip` is of type int, not a string"
        ]
    );
}

#[test]
fn asn_databases_give_the_network_operator() {
    let db = mmdb::build(
        "GeoLite2-ASN",
        vec![(
            ip("1.128.0.0"),
            11,
            map([
                ("autonomous_system_number", Data::U32(1221)),
                ("autonomous_system_organization", s("Telstra Pty Ltd")),
            ]),
        )],
    );
    let (_dir, cfg) = setup(&db, "target = \"net\"\n");
    let (main, _) = run(&cfg, &[r#"{"ip": "1.130.4.5"}"#]);
    assert_eq!(
        json(&main[0], "net"),
        r#"{"asn":1221,"as_org":"Telstra Pty Ltd","network":"1.128.0.0/11"}"#
    );
}

#[test]
fn a_replaced_database_is_used_from_the_next_batch() {
    let (dir, cfg) = setup(&city_db(), "check_every = \"5ms\"\n");
    let mut op = build(&cfg);
    let (main, _) = process(&mut *op, &[r#"{"ip": "81.2.69.1"}"#]);
    assert_eq!(json(&main[0], "geo.city"), "Berlin");

    let moved = mmdb::build(
        "GeoIP2-City",
        vec![(
            ip("81.2.69.0"),
            24,
            place("Munich", ("DE", "Germany"), "BY", (48.1, 11.6)),
        )],
    );
    let tmp = dir.path().join("next.mmdb");
    fs::write(&tmp, moved).unwrap();
    fs::rename(&tmp, dir.path().join("geo.mmdb")).unwrap();
    let mut city = String::new();
    for _ in 0..500 {
        let (main, dead) = process(&mut *op, &[r#"{"ip": "81.2.69.1"}"#]);
        assert_eq!(
            (main.len(), dead.len()),
            (1, 0),
            "no event lost while reloading"
        );
        city = json(&main[0], "geo.city");
        if city != "Berlin" {
            break;
        }
        thread::sleep(StdDuration::from_millis(10));
    }
    assert_eq!(city, "Munich");
}

#[test]
fn a_missing_or_damaged_database_stops_the_run_before_it_starts() {
    let (dir, cfg) = setup(b"definitely not a database", "");
    let cx = BuildContext::single("geo");
    let Err(BuildError::Config(err)) = cfg.prepare(&cx.node()) else {
        panic!("a damaged file was accepted");
    };
    assert!(
        err.starts_with("geo: cannot open the GeoIP database "),
        "{err}"
    );
    assert!(
        err.contains("not a readable MaxMind-format database"),
        "{err}"
    );
    fs::remove_file(dir.path().join("geo.mmdb")).unwrap();
    let Err(BuildError::Config(err)) = cfg.prepare(&cx.node()) else {
        panic!("a missing file was accepted");
    };
    assert!(err.contains("geo.mmdb"), "{err}");
}
