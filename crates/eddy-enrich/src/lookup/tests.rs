use std::fs;
use std::path::Path;
use std::thread;
use std::time::Duration as StdDuration;

use eddy_core::component::{BuildContext, BuildError, TransformFactory};
use eddy_core::{Event, Value};

use super::LookupConfig;
use crate::test_support::{build_as, config, field, process};

fn setup(table: &str, extra: &str) -> (tempfile::TempDir, LookupConfig) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("merchants.csv");
    fs::write(&path, table).unwrap();
    let cfg = lookup(&path, extra).unwrap();
    (dir, cfg)
}

fn lookup(path: &Path, extra: &str) -> Result<LookupConfig, String> {
    config(&format!(
        "[transforms.merchant]\ntype = \"lookup\"\nkey = \"merchant_id\"\ncolumn = \"id\"\n\
         file = {:?}\n{extra}",
        path.display().to_string()
    ))
}

const TABLE: &str = "id,name,risk\n7,Acme,0.2\nM-2,Globex,0.9\n";

fn build(cfg: &LookupConfig) -> Box<dyn eddy_core::Operator> {
    build_as(cfg, "merchant")
}

fn run(cfg: &LookupConfig, lines: &[&str]) -> (Vec<Event>, Vec<Event>) {
    process(&mut *build(cfg), lines)
}

fn json(e: &Event, path: &str) -> String {
    field(e, path).map(Value::to_string).unwrap_or_default()
}

fn prepare_error(cfg: &LookupConfig) -> String {
    match cfg.prepare(&BuildContext::single("merchant").node()) {
        Err(BuildError::Config(e)) => e,
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("prepared"),
    }
}

const EVENTS: [&str; 5] = [
    r#"{"merchant_id": 7}"#,
    r#"{"merchant_id": "M-2", "target": "t"}"#,
    r#"{"merchant_id": 7.0}"#,
    r#"{"merchant_id": "nobody"}"#,
    r#"{"other": 1}"#,
];

#[test]
fn rows_join_by_key_text_and_misses_are_kept_by_default() {
    let (_dir, cfg) = setup(TABLE, "target = \"m\"\n");
    let (main, dead) = run(&cfg, &EVENTS);
    assert_eq!(main.len(), 5);
    assert!(dead.is_empty());
    assert_eq!(json(&main[0], "m"), r#"{"id":7,"name":"Acme","risk":0.2}"#);
    assert_eq!(json(&main[1], "m.name"), "Globex");
    assert_eq!(json(&main[2], "m.name"), "Acme", "7.0 finds 7");
    assert_eq!(field(&main[3], "m"), None);
    assert_eq!(field(&main[4], "m"), None);
}

#[test]
fn misses_get_the_default_or_go_to_dead_letters() {
    let (_dir, cfg) = setup(
        TABLE,
        "on_miss = \"default\"\ndefault = \"{'name': 'unknown', 'asked': merchant_id}\"\n",
    );
    let (main, dead) = run(&cfg, &EVENTS[..4]);
    assert_eq!(
        json(&main[0], "merchant.name"),
        "Acme",
        "target defaults to the node's name"
    );
    assert_eq!(
        json(&main[3], "merchant"),
        r#"{"name":"unknown","asked":"nobody"}"#
    );
    assert!(dead.is_empty());

    let (_dir, cfg) = setup(TABLE, "on_miss = \"dead_letter\"\n");
    let (main, dead) = run(&cfg, &EVENTS);
    assert_eq!(main.len(), 3);
    let reasons: Vec<String> = dead.iter().map(|e| json(e, "reason")).collect();
    assert_eq!(reasons, ["no row for key nobody", "the event has no key"]);
}

#[test]
fn a_table_replaced_mid_run_is_picked_up_without_losing_events() {
    let (dir, cfg) = setup(TABLE, "check_every = \"5ms\"\n");
    let mut op = build(&cfg);
    let tmp = dir.path().join("next.csv");
    fs::write(&tmp, "id,name,risk\n7,Acme Renamed,0.3\n").unwrap();
    let mut seen = Vec::new();
    for i in 0..400 {
        if i == 3 {
            fs::rename(&tmp, dir.path().join("merchants.csv")).unwrap();
        }
        let (main, dead) = process(&mut *op, &[EVENTS[0], EVENTS[0]]);
        assert_eq!((main.len(), dead.len()), (2, 0), "every event passes");
        let names = (
            json(&main[0], "merchant.name"),
            json(&main[1], "merchant.name"),
        );
        assert_eq!(names.0, names.1, "one batch sees one table");
        seen.push(names.0);
        if seen.last().is_some_and(|n| n == "Acme Renamed") {
            break;
        }
        thread::sleep(StdDuration::from_millis(5));
    }
    assert_eq!(seen.first().map(String::as_str), Some("Acme"));
    assert_eq!(seen.last().map(String::as_str), Some("Acme Renamed"));
    // Half-written: a file without the key column is refused, the table stays.
    fs::write(dir.path().join("merchants.csv"), "name\nbroken\n").unwrap();
    thread::sleep(StdDuration::from_millis(100));
    let (main, _) = process(&mut *op, &[EVENTS[0]]);
    assert_eq!(json(&main[0], "merchant.name"), "Acme Renamed");
}

#[test]
fn settings_and_tables_that_cannot_work_are_refused_before_the_run() {
    let (dir, cfg) = setup("name\nx\n", "");
    assert_eq!(
        prepare_error(&cfg),
        format!(
            "merchant: cannot load the lookup table: {}: the header has no column `id` (it has `name`)",
            dir.path().join("merchants.csv").display()
        )
    );
    let cfg = lookup(Path::new("/nonexistent.csv"), "").unwrap();
    assert!(
        prepare_error(&cfg).contains("/nonexistent.csv"),
        "{}",
        prepare_error(&cfg)
    );
    let (_dir, cfg) = setup(TABLE, "on_miss = \"default\"\n");
    assert_eq!(
        prepare_error(&cfg),
        "merchant: on_miss = \"default\" needs `default`, the value a miss gets (CEL)"
    );
    // `eddy validate` says so too, at the table's line.
    let vcx = eddy_core::component::ValidateContext {
        limits: eddy_core::limits::Limits::default(),
    };
    let diags = cfg.validate(&vcx);
    assert_eq!(diags.len(), 1);
    assert!(diags[0].message.contains("needs `default`"), "{diags:?}");
    let cfg: LookupConfig =
        config("[transforms.merchant]\ntype = \"lookup\"\nkey = \"k\"\ncolumn = \"id\"\n").unwrap();
    assert_eq!(
        prepare_error(&cfg),
        "merchant: a lookup needs its table: set `file` or `postgres`"
    );
    let err = config::<LookupConfig>(
        "[transforms.merchant]\ntype = \"lookup\"\nkey = \"k\"\ncolumn = \"id\"\non_miss = \"drop\"\n",
    )
    .unwrap_err();
    assert!(err.contains("unknown variant `drop`"), "{err}");
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_tables_refresh_and_go_stale_when_the_server_is_gone() {
    let Some(pg) = eddy_testkit::postgres::Postgres::start() else {
        return;
    };
    pg.query(
        "CREATE TABLE merchants (id text PRIMARY KEY, name text, risk numeric, since date);\
         INSERT INTO merchants VALUES ('7', 'Acme', 0.2, '2020-01-31'), ('M-2', 'Globex', NULL, NULL)",
    );
    let cfg: LookupConfig = config(&format!(
        "[transforms.merchant]\ntype = \"lookup\"\nkey = \"merchant_id\"\ncolumn = \"id\"\n\
         postgres = {{ url = {:?}, query = \"SELECT * FROM merchants\", refresh = \"20ms\", \
         max_stale = \"1s\" }}\n",
        pg.url()
    ))
    .unwrap();
    let mut op = build(&cfg);
    let (main, _) = process(&mut *op, &EVENTS[..2]);
    assert_eq!(
        json(&main[0], "merchant"),
        r#"{"id":7,"name":"Acme","risk":0.2,"since":"2020-01-31"}"#
    );
    assert_eq!(
        json(&main[1], "merchant"),
        r#"{"id":"M-2","name":"Globex","risk":null,"since":null}"#
    );

    pg.query("UPDATE merchants SET name = 'Acme Ltd' WHERE id = '7'");
    let mut name = String::new();
    for _ in 0..300 {
        let (main, _) = process(&mut *op, &EVENTS[..1]);
        name = json(&main[0], "merchant.name");
        if name == "Acme Ltd" {
            break;
        }
        thread::sleep(StdDuration::from_millis(10));
    }
    assert_eq!(name, "Acme Ltd", "the refresh brings the update");

    drop(pg);
    thread::sleep(StdDuration::from_millis(1500));
    let (main, dead) = process(&mut *op, &EVENTS[..1]);
    assert!(main.is_empty());
    let reason = json(&dead[0], "reason");
    assert!(reason.contains("older than max_stale (1s)"), "{reason}");
}
