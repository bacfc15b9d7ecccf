//! The sink against a real PostgreSQL server (eddy-testkit); each test
//! starts its own. Without PostgreSQL installed they return early (under
//! `CI=true` they fail instead).

use std::sync::Arc;
use std::time::Duration;

use eddy_core::component::{BuildContext, SinkFactory};
use eddy_core::metrics::ComponentMetrics;
use eddy_core::{Event, Fields, Sink, Sym, Value};
use eddy_testkit::postgres::Postgres;

use super::PostgresConfig;

fn config(pg: &Postgres, extra: &str) -> PostgresConfig {
    let text = format!("url = {:?}\n{extra}", pg.url());
    toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn build(cfg: &PostgresConfig) -> (Box<dyn Sink>, Arc<ComponentMetrics>) {
    let cx = BuildContext::single("db");
    let metrics = cx.metrics.clone();
    let sink = cfg.build(&cx).unwrap_or_else(|e| panic!("{e}"));
    (sink, metrics)
}

fn result(i: i64, n: Value) -> Event {
    let mut f = Fields::default();
    let start = 1_700_000_000_000 + (i / 100) * 60_000;
    f.push(
        Sym::intern("window_start"),
        Value::str(&eddy_core::time::format_rfc3339(start)),
    );
    f.push(Sym::intern("user"), Value::str(&format!("u{}", i % 100)));
    f.push(Sym::intern("n"), n);
    f.push(Sym::intern("avg"), Value::Float(i as f64 / 4.0));
    Event::new(start, f)
}

#[test]
fn create_table_derives_column_types_from_the_first_batch() {
    let Some(pg) = Postgres::start() else { return };
    let mut f = Fields::default();
    f.push(
        Sym::intern("window_start"),
        Value::str("2024-05-01T10:00:00Z"),
    );
    f.push(Sym::intern("user"), Value::str("ann"));
    f.push(Sym::intern("n"), Value::Int(3));
    f.push(Sym::intern("avg"), Value::Float(1.25));
    f.push(Sym::intern("ok"), Value::Bool(true));
    f.push(
        Sym::intern("tags"),
        Value::List(Arc::new(vec![Value::str("a")])),
    );
    let cfg = config(
        &pg,
        "table = \"analytics_results\"\ncreate_table = true\nmode = \"upsert\"\nkey = [\"window_start\", \"user\"]",
    );
    let (mut sink, _) = build(&cfg);
    sink.write(&[Event::new(0, f)]).unwrap();
    sink.flush().unwrap();
    assert!(sink.take_dead_letters().is_empty());
    let types = pg.query(
        "SELECT column_name, data_type FROM information_schema.columns \
         WHERE table_name = 'analytics_results' ORDER BY ordinal_position",
    );
    assert_eq!(
        types.lines().collect::<Vec<_>>(),
        [
            "window_start|timestamp with time zone",
            "user|text",
            "n|bigint",
            "avg|double precision",
            "ok|boolean",
            "tags|jsonb"
        ]
    );
    let pk = pg.query(
        "SELECT string_agg(a.attname, ',' ORDER BY array_position(i.indkey, a.attnum)) \
         FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
         WHERE i.indrelid = 'analytics_results'::regclass AND i.indisprimary",
    );
    assert_eq!(pk.trim(), "window_start,user");
    let row = pg.query(
        "SELECT extract(epoch FROM window_start)::bigint, \"user\", n, avg, ok, tags FROM analytics_results",
    );
    assert_eq!(row.trim(), "1714557600|ann|3|1.25|t|[\"a\"]");
}

#[test]
fn values_convert_to_the_tables_types_and_misfits_become_dead_letters() {
    let Some(pg) = Postgres::start() else { return };
    pg.query(
        "CREATE TABLE t (window_start timestamptz, \"user\" varchar(10), n integer, \
         avg numeric, small smallint, meta json, note text DEFAULT 'none')",
    );
    let cfg = config(&pg, "table = \"public.t\"");
    let (mut sink, metrics) = build(&cfg);
    let mut events: Vec<Event> = (0..5).map(|i| result(i, Value::Int(i))).collect();
    events[2] = result(2, Value::str("three"));
    let mut f = events[4].fields.clone();
    f.push(Sym::intern("small"), Value::Int(70_000));
    events[4] = Event::new(0, f);
    let mut f = events[3].fields.clone();
    f.push(
        Sym::intern("meta"),
        Value::Map(Arc::new(events[1].fields.clone())),
    );
    events[3] = Event::new(0, f);
    sink.write(&events).unwrap();
    sink.flush().unwrap();
    let dead = sink.take_dead_letters();
    let reasons: Vec<String> = dead
        .iter()
        .map(|d| {
            d.get(Sym::intern("reason"))
                .map(|v| v.to_string())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "column `n` (integer) cannot hold string value \"three\": incompatible",
            "column `small` (smallint) cannot hold int value \"70000\": not a whole number in range"
        ]
    );
    assert_eq!(metrics.total("records_out"), 3);
    assert_eq!(metrics.total("dead_letters"), 2);
    let rows = pg.query("SELECT \"user\", n, avg, note, meta->>'user' FROM t ORDER BY n");
    assert_eq!(
        rows.lines().collect::<Vec<_>>(),
        ["u0|0|0|none|", "u1|1|0.25|none|", "u3|3|0.75|none|u1"]
    );

    // A field the table lacks is a schema error for the whole batch.
    let mut f = events[0].fields.clone();
    f.push(Sym::intern("surprise"), Value::Int(1));
    sink.write(&[Event::new(0, f)]).unwrap();
    sink.flush().unwrap();
    let dead = sink.take_dead_letters();
    let reason = dead[0].get(Sym::intern("reason")).map(|v| v.to_string());
    assert_eq!(
        reason.as_deref(),
        Some("table \"public\".\"t\" has no column `surprise` for the events' field `surprise`")
    );
}

#[test]
fn a_missing_table_or_column_stops_the_sink_at_start() {
    let Some(pg) = Postgres::start() else { return };
    let err = |cfg: &PostgresConfig| match cfg.build(&BuildContext::single("db")) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("built a sink for a broken table"),
    };
    let missing = err(&config(&pg, "table = \"nope\""));
    assert!(
        missing.contains("table \"nope\" does not exist"),
        "{missing}"
    );
    pg.query("CREATE TABLE t (a bigint)");
    let column = err(&config(
        &pg,
        "table = \"t\"\ncolumns = { a = \"bigint\", b = \"text\" }",
    ));
    assert!(
        column.contains("column `b` does not exist in table \"t\""),
        "{column}"
    );
    let key = err(&config(
        &pg,
        "table = \"t\"\nmode = \"upsert\"\nkey = [\"k\"]",
    ));
    assert!(key.contains("key column `k`"), "{key}");
}

#[test]
fn upsert_keeps_the_last_value_per_key_and_replays_change_nothing() {
    let Some(pg) = Postgres::start() else { return };
    pg.query(
        "CREATE TABLE r (window_start timestamptz, \"user\" text, n bigint, avg float8, \
         PRIMARY KEY (window_start, \"user\"))",
    );
    let cfg = config(
        &pg,
        "table = \"r\"\nmode = \"upsert\"\nkey = [\"window_start\", \"user\"]\nbatch_size = 2500\npool_size = 2",
    );
    let (mut sink, metrics) = build(&cfg);
    assert_eq!(metrics.total("connected"), 2);
    // Batches of 2000 and 2500 are split over the two connections.
    // 2000 results over 20 windows × 100 users; then the same keys again
    // with new counts, twice within one batch.
    let first: Vec<Event> = (0..2000).map(|i| result(i, Value::Int(i))).collect();
    sink.write(&first).unwrap();
    sink.flush().unwrap();
    let second: Vec<Event> = (0..2000)
        .flat_map(|i| [result(i, Value::Int(-1)), result(i, Value::Int(i * 10))])
        .collect();
    sink.write(&second).unwrap();
    sink.flush().unwrap();
    assert!(sink.take_dead_letters().is_empty());
    let summary = "SELECT count(*), sum(n), md5(string_agg(r::text, ',' ORDER BY window_start, \"user\")) FROM r";
    let before = pg.query(summary);
    let want_sum: i64 = (0..2000).map(|i| i * 10).sum();
    assert!(before.starts_with(&format!("2000|{want_sum}|")), "{before}");
    sink.write(&second).unwrap();
    sink.flush().unwrap();
    assert_eq!(pg.query(summary), before, "a replay changes nothing");
}

#[test]
fn a_server_restart_is_retried_until_every_row_is_there() {
    let Some(mut pg) = Postgres::start() else {
        return;
    };
    pg.query("CREATE TABLE a (window_start timestamptz, \"user\" text, n bigint, avg float8)");
    let cfg = config(
        &pg,
        "table = \"a\"\nbatch_size = 500\nretry = { attempts = 0, initial_backoff = \"20ms\", max_backoff = \"200ms\" }\n\
         circuit_breaker = { failure_threshold = 2, reset_timeout = \"100ms\" }",
    );
    let (mut sink, metrics) = build(&cfg);
    let m = metrics.clone();
    let writer = std::thread::spawn(move || {
        let metrics = m;
        for b in 0..40 {
            let batch: Vec<Event> = (b * 500..(b + 1) * 500)
                .map(|i| result(i, Value::Int(i)))
                .collect();
            sink.write(&batch).unwrap();
            std::thread::sleep(Duration::from_millis(25));
        }
        sink.flush().unwrap();
        let connected = metrics.total("connected");
        (sink.take_dead_letters().len(), connected)
    });
    // Watches the breaker while the server is away.
    let m = metrics.clone();
    let watcher = std::thread::spawn(move || {
        let mut opened = 0;
        for _ in 0..400 {
            opened = opened.max(m.total("circuit_open"));
            std::thread::sleep(Duration::from_millis(5));
        }
        opened
    });
    std::thread::sleep(Duration::from_millis(200));
    pg.restart_after(Duration::from_millis(500));
    let (dead, connected) = writer.join().unwrap();
    assert_eq!(
        watcher.join().unwrap(),
        1,
        "the circuit opened during the outage"
    );
    assert_eq!(dead, 0);
    assert_eq!(connected, 1, "reconnected");
    assert_eq!(
        metrics.total("connected"),
        0,
        "closed when the sink is dropped"
    );
    assert!(metrics.total("failures") >= 1, "the outage was seen");
    assert!(metrics.total("retries") >= 1);
    assert_eq!(metrics.total("circuit_open"), 0, "closed again");
    // At-least-once: a batch whose COPY committed just before the server
    // went down may be written twice; every row is there.
    let rows = pg.query("SELECT count(DISTINCT n), min(n), max(n) FROM a");
    assert_eq!(rows.trim(), "20000|0|19999");
}

#[test]
fn tls_connects_verified_and_a_clear_text_sink_is_refused() {
    let Some(pg) = Postgres::start() else { return };
    let ca = pg.enable_tls();
    // The server now refuses TCP connections without TLS.
    let clear = config(&pg, "table = \"secure\"\ncreate_table = true");
    let refused = clear
        .build(&BuildContext::single("db"))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(refused.contains("no encryption"), "{refused}");
    let tls = config(
        &pg,
        &format!(
            "table = \"secure\"\ncreate_table = true\ntls = true\ntls_ca = {:?}",
            ca.display().to_string()
        ),
    );
    let (mut sink, metrics) = build(&tls);
    let events: Vec<Event> = (0..50).map(|i| result(i, Value::Int(i))).collect();
    sink.write(&events).unwrap();
    sink.flush().unwrap();
    assert!(sink.take_dead_letters().is_empty());
    assert_eq!(metrics.total("records_out"), 50);
    assert_eq!(pg.query("SELECT count(*) FROM secure").trim(), "50");
    // Without the CA the self-signed certificate is not trusted.
    let untrusted = config(
        &pg,
        "table = \"secure\"\ntls = true\nretry = { attempts = 1 }\nbatch_size = 1",
    );
    let cx = BuildContext::single("db");
    match untrusted.build(&cx) {
        Err(e) => assert!(e.to_string().contains("certificate"), "{e}"),
        Ok(mut sink) => {
            sink.write(&[result(99, Value::Int(99))]).unwrap();
            sink.flush().unwrap();
            let dead = sink.take_dead_letters();
            assert_eq!(dead.len(), 1);
            assert_eq!(cx.metrics.total("records_out"), 0);
        }
    }
    assert_eq!(pg.query("SELECT count(*) FROM secure").trim(), "50");
}

/// An exactly-once instance `worker` of `workers`.
fn build_staged(cfg: &PostgresConfig, worker: usize, workers: usize) -> Box<dyn Sink> {
    let mut cx = BuildContext::single("db");
    cx.node.exactly_once = true;
    cx.node.workers = workers;
    cx.worker = worker;
    cfg.build(&cx).unwrap_or_else(|e| panic!("{e}"))
}

fn keyed(k: i64, n: i64) -> Event {
    let mut f = Fields::default();
    f.push(Sym::intern("k"), Value::str(&format!("k{k}")));
    f.push(Sym::intern("n"), Value::Int(n));
    Event::new(n, f)
}

/// One step of an exactly-once run.
#[derive(Clone, Debug)]
enum Step {
    Write(Vec<Event>),
    PreCommit(u64),
    Commit(u64),
}

/// Three checkpoints of two writes each; upsert keys repeat across them.
fn script(worker: i64) -> Vec<Step> {
    let mut steps = Vec::new();
    for c in 1..=3u64 {
        for w in 0..2i64 {
            let base = worker * 1000 + c as i64 * 100 + w * 10;
            steps.push(Step::Write(
                (0..5)
                    .map(|i| keyed(worker * 10 + (base + i) % 7, base + i))
                    .collect(),
            ));
        }
        steps.push(Step::PreCommit(c));
        steps.push(Step::Commit(c));
    }
    steps
}

/// Runs `steps` on instance `worker`, dropping the sink before step
/// `crash` (if any) and resuming from the last completed checkpoint as the
/// runtime would: replaying the input after it. `completed_at_commit`:
/// whether the checkpoint counts as completed when its commit is reached
/// (the crash hit between storing it and committing).
fn run(cfg: &PostgresConfig, steps: &[Step], crash: Option<usize>, completed_at_commit: bool) {
    let mut sink = build_staged(cfg, 0, 1);
    sink.recover(None).unwrap();
    let mut completed = 0u64;
    let mut i = 0;
    let mut crashed = false;
    while i < steps.len() {
        if crash == Some(i) && !crashed {
            crashed = true;
            if let Step::Commit(n) = steps[i] {
                if completed_at_commit {
                    completed = n;
                }
            }
            drop(sink);
            sink = build_staged(cfg, 0, 1);
            sink.recover((completed > 0).then_some(completed)).unwrap();
            // Replay from the first write after checkpoint `completed`.
            i = steps
                .iter()
                .position(|s| matches!(s, Step::Commit(n) if *n == completed))
                .map_or(0, |p| p + 1);
            continue;
        }
        match &steps[i] {
            Step::Write(events) => sink.write(events).unwrap(),
            Step::PreCommit(n) => sink.pre_commit(*n).unwrap(),
            Step::Commit(n) => {
                completed = *n;
                sink.commit(*n).unwrap();
            }
        }
        i += 1;
    }
    assert!(sink.take_dead_letters().is_empty());
}

fn exactly_once_under_crashes(mode: &str, create: &str, rows: &str) {
    let Some(pg) = Postgres::start() else { return };
    pg.query(create);
    let cfg = config(&pg, &format!("table = \"t\"\n{mode}\nbatch_size = 3"));
    let steps = script(0);
    run(&cfg, &steps, None, false);
    let want = pg.query(rows);
    assert!(want.lines().count() > 5, "{want}");
    for crash in 0..steps.len() {
        for completed_at_commit in [false, true] {
            pg.query("TRUNCATE t; DELETE FROM t__eddy_stage");
            run(&cfg, &steps, Some(crash), completed_at_commit);
            assert_eq!(
                pg.query(rows),
                want,
                "crash before step {crash} ({completed_at_commit})"
            );
            assert_eq!(pg.query("SELECT count(*) FROM t__eddy_stage").trim(), "0");
        }
    }
}

#[test]
fn append_exactly_once_survives_a_crash_at_every_step() {
    exactly_once_under_crashes(
        "",
        "CREATE TABLE t (k text, n bigint)",
        "SELECT k, n FROM t ORDER BY k, n",
    );
}

#[test]
fn upsert_exactly_once_survives_a_crash_at_every_step() {
    exactly_once_under_crashes(
        "mode = \"upsert\"\nkey = [\"k\"]",
        "CREATE TABLE t (k text PRIMARY KEY, n bigint)",
        "SELECT k, n FROM t ORDER BY k",
    );
}

#[test]
fn staged_rows_stay_invisible_until_commit_and_a_declined_checkpoint_is_published_next() {
    let Some(pg) = Postgres::start() else { return };
    pg.query("CREATE TABLE t (k text, n bigint, note text DEFAULT 'none')");
    let cfg = config(&pg, "table = \"t\"\nbatch_size = 2");
    let mut sink = build_staged(&cfg, 0, 1);
    sink.recover(None).unwrap();
    sink.write(&(0..5).map(|i| keyed(i, i)).collect::<Vec<_>>())
        .unwrap();
    sink.pre_commit(1).unwrap();
    // Checkpoint 1 fails: no commit(1).
    sink.write(&(5..8).map(|i| keyed(i, i)).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(pg.query("SELECT count(*) FROM t").trim(), "0");
    sink.pre_commit(2).unwrap();
    assert_eq!(pg.query("SELECT count(*) FROM t").trim(), "0");
    assert_eq!(
        pg.query("SELECT eddy_checkpoint, count(*) FROM t__eddy_stage GROUP BY 1 ORDER BY 1"),
        "1|5\n2|3\n"
    );
    sink.commit(2).unwrap();
    assert_eq!(
        pg.query("SELECT count(*), sum(n), min(note) FROM t").trim(),
        format!("8|{}|none", (0..8).sum::<i64>())
    );
    sink.commit(2).unwrap();
    assert_eq!(pg.query("SELECT count(*) FROM t").trim(), "8", "idempotent");
}

#[test]
fn two_workers_publish_only_their_own_rows() {
    let Some(pg) = Postgres::start() else { return };
    pg.query("CREATE TABLE t (k text, n bigint)");
    let cfg = config(&pg, "table = \"t\"\nbatch_size = 2");
    let mut w0 = build_staged(&cfg, 0, 2);
    let mut w1 = build_staged(&cfg, 1, 2);
    w0.recover(None).unwrap();
    w1.recover(None).unwrap();
    w0.write(&[keyed(0, 0), keyed(0, 1), keyed(0, 2)]).unwrap();
    w1.write(&[keyed(1, 10), keyed(1, 11)]).unwrap();
    w0.pre_commit(1).unwrap();
    w1.pre_commit(1).unwrap();
    w0.commit(1).unwrap();
    assert_eq!(pg.query("SELECT count(*) FROM t").trim(), "3");
    // Worker 1 crashes after its pre-commit: checkpoint 1 completed, so
    // recovery publishes its rows; what it wrote after is discarded.
    w1.write(&[keyed(1, 99)]).unwrap();
    w1.flush().unwrap();
    drop(w1);
    let mut w1 = build_staged(&cfg, 1, 2);
    w1.recover(Some(1)).unwrap();
    assert_eq!(
        pg.query("SELECT string_agg(n::text, ',' ORDER BY n) FROM t")
            .trim(),
        "0,1,2,10,11"
    );
    assert_eq!(pg.query("SELECT count(*) FROM t__eddy_stage").trim(), "0");
}

/// A publish still running on the server when the next one starts (a
/// killed process's commit, a retry after a lost answer) must not publish
/// the rows twice: the second waits for the first and then finds nothing.
#[test]
fn a_concurrent_publish_of_the_same_rows_inserts_them_once() {
    let Some(pg) = Postgres::start() else { return };
    pg.query("CREATE TABLE t (k text, n bigint)");
    let cfg = config(&pg, "table = \"t\"\nbatch_size = 2");
    let mut sink = build_staged(&cfg, 0, 1);
    sink.recover(None).unwrap();
    sink.write(&(0..6).map(|i| keyed(i, i)).collect::<Vec<_>>())
        .unwrap();
    sink.pre_commit(1).unwrap();
    // The other publisher: the same statement, held open for a second.
    let table = super::schema::TableName {
        schema: None,
        name: "t".into(),
    };
    let columns = ["\"k\"".to_string(), "\"n\"".to_string()];
    let moved = super::stage::publish_sql(&table, &columns, None)
        .moved
        .replace("$1", "'test/db'")
        .replace("$2", "0")
        .replace("$3", "1")
        .replace("$4", "1");
    std::thread::scope(|s| {
        let other = s.spawn(|| pg.query(&format!("BEGIN; {moved}; SELECT pg_sleep(1); COMMIT;")));
        std::thread::sleep(Duration::from_millis(300));
        sink.commit(1).unwrap();
        other.join().unwrap();
    });
    assert_eq!(
        pg.query("SELECT count(*), count(DISTINCT k) FROM t").trim(),
        "6|6"
    );
    assert_eq!(pg.query("SELECT count(*) FROM t__eddy_stage").trim(), "0");
}

/// Instances of one sink start together and all find the table and its
/// staging table missing: each creates them, and none may fail on the
/// catalog (that batch would be dead-lettered and lost to the output).
/// The race is narrow, so it is run on many fresh tables.
#[test]
fn instances_creating_the_same_tables_at_once_lose_no_batch() {
    let Some(pg) = Postgres::start() else { return };
    const WORKERS: usize = 6;
    const TABLES: usize = 25;
    for t in 0..TABLES {
        let cfg = config(
            &pg,
            &format!("table = \"made{t}\"\ncreate_table = true\nmode = \"upsert\"\nkey = [\"k\"]"),
        );
        let start = std::sync::Barrier::new(WORKERS);
        std::thread::scope(|s| {
            for w in 0..WORKERS {
                let (cfg, start) = (&cfg, &start);
                s.spawn(move || {
                    let mut sink = build_staged(cfg, w, WORKERS);
                    sink.write(&[keyed(w as i64, 1)]).unwrap();
                    start.wait();
                    sink.pre_commit(1).unwrap();
                    let dead = sink.take_dead_letters();
                    assert!(dead.is_empty(), "table {t}, worker {w}: {dead:?}");
                    sink.commit(1).unwrap();
                });
            }
        });
        let rows = pg.query(&format!("SELECT count(*) FROM made{t}"));
        assert_eq!(rows.trim(), WORKERS.to_string(), "table {t}");
    }
}
