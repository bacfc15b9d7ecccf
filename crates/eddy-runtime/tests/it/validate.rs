//! `Plan::compile` reports every problem with its line and column.

use eddy_runtime::Plan;

/// Compiles `text` and returns the rendered diagnostics.
fn errors(text: &str) -> String {
    match Plan::compile("p.toml", text, &[]) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(d) => d.to_string(),
    }
}

const SOURCE: &str = "[sources.tx]\ntype = \"file\"\npath = \"tx.ndjson\"\n";

#[test]
fn a_valid_pipeline_compiles_in_topological_order() {
    let text = format!(
        "{SOURCE}\n[sinks.out]\ntype = \"stdout\"\ninputs = [\"big\"]\n\n[transforms.big]\ntype = \"filter\"\ninputs = [\"tx\"]\ncondition = \"amount > 10\"\n"
    );
    let plan = Plan::compile("p.toml", &text, &[])
        .map_err(|d| d.to_string())
        .unwrap();
    let names: Vec<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["tx", "big", "out"]);
    assert_eq!(
        plan.to_string(),
        "ok: 1 sources, 1 transforms, 1 sinks: tx(file), big(filter), out(stdout)"
    );
}

#[test]
fn unknown_input_names_the_closest_component() {
    let text = format!("{SOURCE}\n[sinks.out]\ntype = \"stdout\"\ninputs = [\"txx\"]\n");
    let e = errors(&text);
    assert!(e.contains("p.toml:7:11: unknown input `txx`"), "{e}");
    assert!(e.contains("hint: did you mean `tx`?"), "{e}");
}

#[test]
fn unknown_side_output_and_missing_port() {
    let text =
        format!("{SOURCE}\n[sinks.out]\ntype = \"stdout\"\ninputs = [\"tx.lat\", \"tx.late\"]\n");
    let e = errors(&text);
    assert!(
        e.contains("p.toml:7:11: `tx` (file) has no `.lat` output"),
        "{e}"
    );
    assert!(
        e.contains("hint: `file` offers: tx, tx.dead_letters"),
        "{e}"
    );
    assert!(
        e.contains("p.toml:7:21: `tx` (file) has no `.late` output"),
        "{e}"
    );
}

/// Outputs are what each node declares: the window's `late` is offered,
/// a misspelt one gets the closest name and the full list.
#[test]
fn declared_outputs_are_resolved_per_node() {
    let window = "\n[transforms.w]\ntype = \"window\"\ninputs = [\"tx\"]\n\
                  window = { tumbling = \"1m\" }\naggregates = { n = \"count()\" }\n";
    let ok = format!(
        "{SOURCE}{window}\n[sinks.out]\ntype = \"stdout\"\ninputs = [\"w\", \"w.late\", \"w.dead_letters\"]\n"
    );
    let plan = Plan::compile("p.toml", &ok, &[])
        .map_err(|d| d.to_string())
        .unwrap();
    let w = plan.nodes.iter().position(|n| n.name == "w").unwrap();
    let out = plan.nodes.iter().find(|n| n.name == "out").unwrap();
    let names: Vec<&str> = out
        .inputs
        .iter()
        .map(|i| {
            assert_eq!(i.node, w);
            plan.nodes[w].outputs.name(i.output).unwrap()
        })
        .collect();
    assert_eq!(names, ["main", "late", "dead_letters"]);

    let e = errors(&format!(
        "{SOURCE}{window}\n[sinks.out]\ntype = \"stdout\"\ninputs = [\"w.lat\", \"w.main\"]\n"
    ));
    assert!(
        e.contains("p.toml:13:11: `w` (window) has no `.lat` output"),
        "{e}"
    );
    assert!(
        e.contains("hint: did you mean `w.late`? `window` offers: w, w.dead_letters, w.late"),
        "{e}"
    );
    assert!(
        e.contains("p.toml:13:20: `w` (window) has no `.main` output"),
        "{e}"
    );
    assert!(e.contains("addressed by the name alone: `w`"), "{e}");
}

#[test]
fn a_sink_offers_only_its_dead_letters() {
    let text = format!(
        "{SOURCE}\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"tx\"]\n\n\
         [sinks.rejects]\ntype = \"stdout\"\ninputs = [\"out.dead_letters\"]\n"
    );
    let plan = Plan::compile("p.toml", &text, &[])
        .map_err(|d| d.to_string())
        .unwrap();
    assert_eq!(plan.nodes.len(), 3);
    let e = errors(&format!(
        "{text}\n[sinks.more]\ntype = \"stdout\"\ninputs = [\"out\", \"out.late\"]\n"
    ));
    assert!(
        e.contains("p.toml:15:11: `out` is a sink and has no main output"),
        "{e}"
    );
    assert!(e.contains("`out.dead_letters`"), "{e}");
    assert!(
        e.contains("p.toml:15:18: `out` (blackhole) has no `.late` output"),
        "{e}"
    );
}

#[test]
fn cycles_are_reported() {
    let text = format!(
        "{SOURCE}\n[transforms.a]\ntype = \"filter\"\ninputs = [\"tx\", \"b\"]\ncondition = \"true\"\n\n[transforms.b]\ntype = \"filter\"\ninputs = [\"a\"]\ncondition = \"true\"\n\n[sinks.out]\ntype = \"stdout\"\ninputs = [\"b\"]\n"
    );
    let e = errors(&text);
    assert!(
        e.contains("p.toml:10:13: inputs form a cycle: b -> a -> b"),
        "{e}"
    );
}

#[test]
fn a_name_used_twice_names_the_first_section() {
    // The first clash is skipped, so later components must still be found
    // by their own position in the file.
    let text = format!("{SOURCE}\n[transforms.tx]\ntype = \"filter\"\ninputs = [\"tx\"]\ncondition = \"true\"\n\n[sinks.y]\ntype = \"stdout\"\ninputs = [\"tx\"]\n\n[alerts.y]\ninputs = [\"tx\"]\n");
    let e = errors(&text);
    assert!(
        e.contains("p.toml:5:13: the name `tx` is already used in [sources]"),
        "{e}"
    );
    assert!(
        e.contains("p.toml:14:9: the name `y` is already used in [sinks]"),
        "{e}"
    );
}

#[test]
fn unknown_field_suggests_the_right_one() {
    let text = format!(
        "{SOURCE}\n[transforms.big]\ntype = \"filter\"\ninputs = [\"tx\"]\nconditon = \"amount > 1\"\n\n[sinks.out]\ntype = \"stdout\"\ninputs = [\"big\"]\n"
    );
    let e = errors(&text);
    assert!(e.contains("p.toml:8:1: unknown field `conditon`"), "{e}");
    assert!(e.contains("hint: did you mean `condition`?"), "{e}");
}

#[test]
fn unknown_type_and_missing_type() {
    let text = "[sources.tx]\ntype = \"fiel\"\npath = \"x\"\n\n[sinks.out]\ninputs = [\"tx\"]\n";
    let e = errors(text);
    assert!(e.contains("p.toml:2:8: unknown source type `fiel`"), "{e}");
    assert!(e.contains("hint: did you mean `file`?"), "{e}");
    assert!(e.contains("p.toml:5:8: `sinks.out` has no `type`"), "{e}");
}

#[test]
fn bad_duration_points_at_the_value() {
    let text = "[sources.tx]\ntype = \"file\"\npath = \"x\"\nevent_time = { field = \"ts\", max_out_of_orderness = \"5 parsecs\" }\n\n[sinks.out]\ntype = \"stdout\"\ninputs = [\"tx\"]\n";
    let e = errors(text);
    assert!(e.contains("p.toml:4:"), "{e}");
    assert!(e.contains("bad duration"), "{e}");
}

#[test]
fn bad_expression_points_at_the_string() {
    let text = format!(
        "{SOURCE}\n[transforms.big]\ntype = \"filter\"\ninputs = [\"tx\"]\ncondition = \"amount >\"\n\n[sinks.out]\ntype = \"stdout\"\ninputs = [\"big\"]\n"
    );
    let e = errors(&text);
    assert!(e.contains("p.toml:8:13: bad expression `amount >`"), "{e}");
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let text = "[sources.tx]\ntype = \"file\"\npaht = \"x\"\n\n[transforms.f]\ntype = \"filter\"\ninputs = [\"nope\"]\ncondition = \"(\"\n\n[sinks.out]\ntype = \"stdout\"\ninputs = [\"f\"]\n";
    let e = errors(text);
    assert!(e.contains("p.toml:3:1: unknown field `paht`"), "{e}");
    assert!(e.contains("p.toml:7:11: unknown input `nope`"), "{e}");
    assert!(e.contains("p.toml:8:13: bad expression"), "{e}");
}

#[test]
fn syntax_errors_have_positions() {
    let e = errors("[sources.tx]\ntype = \"file\"\npath = \n");
    assert!(e.starts_with("p.toml:3:"), "{e}");
}

#[test]
fn environment_overrides_apply_before_validation() {
    let text = format!("{SOURCE}\n[sinks.out]\ntype = \"stdout\"\ninputs = [\"tx\"]\n");
    let env = vec![("EDDY_SINKS__OUT__TYPE".to_string(), "blackhole".to_string())];
    let plan = Plan::compile("p.toml", &text, &env)
        .map_err(|d| d.to_string())
        .unwrap();
    assert_eq!(plan.nodes[1].kind, "blackhole");
    let env = vec![("EDDY_SOURCES__TX__PAHT".to_string(), "y".to_string())];
    let e = Plan::compile("p.toml", &text, &env)
        .err()
        .map(|d| d.to_string())
        .unwrap_or_default();
    assert!(e.contains("unknown field `paht`"), "{e}");
}

mod mangled {
    use super::*;
    use eddy_core::config::line_col;
    use eddy_testkit::fuzz::run as fuzz;
    use proptest::prelude::*;

    const VALID: &str = r#"[sources.tx]
type = "file"
path = "tx.ndjson"
event_time = { field = "ts", max_out_of_orderness = "5s" }

[transforms.w]
type = "window"
inputs = ["tx"]
key = "merchant"
window = { sliding = "1m", every = "10s" }
aggregates = { n = "count()", p = "quantile(amount, 0.9)" }

[sinks.out]
type = "stdout"
inputs = ["w", "w.late"]
"#;

    /// Diagnostics of a file that did not compile point inside it.
    fn check_positions(text: &str) {
        if let Err(d) = Plan::compile("p.toml", text, &[]) {
            assert!(!d.list.is_empty());
            for diag in &d.list {
                assert!(
                    diag.span.start <= text.len(),
                    "{:?} beyond {}",
                    diag.span,
                    text.len()
                );
                let (line, col) = line_col(text, diag.span.start);
                assert!(line >= 1 && col >= 1);
                assert!(!diag.message.is_empty());
            }
            // Rendering must not panic either.
            let _ = d.to_string();
        }
    }

    /// Option lines per component type, valid and hostile.
    const OPTIONS: &[(&str, &[&str])] = &[
        ("file", &["path = \"in.ndjson\"", "path = \"\"", "follow = true", "start_at = \"end\"",
                   "event_time = { field = \"ts\", max_out_of_orderness = \"99999999999999999d\" }",
                   "event_time = { field = \"ts\", format = \"epoch_s\", idle_timeout = \"0s\" }"]),
        ("simulator", &["rate = 100", "rate = -1", "rate = inf", "rate = nan", "events = 0",
                        "seed = 18446744073709551615", "scenarios = [{ name = \"burst\", intensity = 1e308 }]",
                        "categories = [\"nope\"]", "fast = true"]),
        ("nexmark", &["events = 10", "rate = 0", "events_per_second = 0", "only = \"bid\""]),
        ("filter", &["condition = \"amount > 1\"", "condition = \"1.0/0.0\"", "condition = \"a +\"",
                     "condition = \"(((((((((((((((((((((((((((((((((a)))))))))))))))))))))))))))))))))\""]),
        ("map", &["set = { \"a.b\" = \"1\" }", "set = { x = \"y *\" }", "rename = { a = \"b\" }",
                  "remove = [\"a\", \"a\"]"]),
        ("window", &["window = { tumbling = \"1m\" }", "window = { sliding = \"1h\", every = \"1ms\" }",
                     "window = { global = true, every = \"1s\" }", "window = { global = true, count = 0 }",
                     "window = { session = \"0s\" }", "aggregates = { n = \"count()\" }",
                     "aggregates = { q = \"quantile(x, 2)\", t = \"top_k(x, 0)\" }", "key = [\"a\", \"b.c\"]",
                     "allowed_lateness = \"1d\"", "ttl = \"1s\"", "emit = \"all\""]),
        ("stdout", &[]),
        ("blackhole", &["buffer = 0"]),
        ("parquet", &["path = \"lake\"", "url = \"file:///tmp/lake\"", "row_group_size = 0"]),
        ("postgres", &["url = \"postgres://u@127.0.0.1:1/db\"", "table = \"t\"", "mode = \"upsert\"",
                       "key = []", "pool_size = 0"]),
        ("http", &["url = \"http://127.0.0.1:1/x\"", "batch_size = 0", "retry = { attempts = 0 }"]),
        ("redis", &["url = \"redis://127.0.0.1:1\"", "kind = \"hash\"", "key = \"k:{a\""]),
    ];

    /// A pipeline assembled from random components, options and inputs.
    fn pipeline() -> impl Strategy<Value = String> {
        let component = (
            0..OPTIONS.len(),
            proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
            proptest::collection::vec((0usize..6, 0usize..4), 0..3),
        );
        proptest::collection::vec(component, 1..7).prop_map(|parts| {
            let mut text = String::from("[pipeline]\nworkers = 2\n");
            for (i, (kind, options, inputs)) in parts.iter().enumerate() {
                let (name, lines) = OPTIONS[*kind];
                let section = match name {
                    "file" if i % 2 == 0 => "sources",
                    "file" | "stdout" | "blackhole" | "parquet" | "postgres" | "http" | "redis" => {
                        "sinks"
                    }
                    "simulator" | "nexmark" => "sources",
                    _ => "transforms",
                };
                text.push_str(&format!("\n[{section}.c{i}]\ntype = \"{name}\"\n"));
                if section != "sources" {
                    let names: Vec<String> = inputs
                        .iter()
                        .map(|(n, port)| {
                            let suffix = ["", ".late", ".dead_letters", ".nope"][*port];
                            format!("\"c{n}{suffix}\"")
                        })
                        .collect();
                    text.push_str(&format!("inputs = [{}]\n", names.join(", ")));
                }
                let mut used: Vec<&str> = Vec::new();
                for o in options {
                    if lines.is_empty() {
                        break;
                    }
                    let line = lines[o.index(lines.len())];
                    let key = line.split(' ').next().unwrap_or("");
                    if !used.contains(&key) {
                        used.push(key);
                        text.push_str(line);
                        text.push('\n');
                    }
                }
            }
            text
        })
    }

    /// Random pipelines assembled from valid and hostile parts compile or
    /// report positioned diagnostics; nothing panics.
    #[test]
    fn fuzz_assembled_pipelines() {
        fuzz("fuzz_assembled_pipelines", pipeline, |text: String| {
            check_positions(&text)
        });
    }

    /// Arbitrary text, as a pipeline file.
    #[test]
    fn fuzz_arbitrary_pipeline_text() {
        fuzz(
            "fuzz_arbitrary_pipeline_text",
            || "\\PC{0,300}",
            |text: String| check_positions(&text),
        );
    }

    /// Any edit of a valid file either compiles or yields diagnostics
    /// that point inside the file, never a panic.
    #[test]
    fn fuzz_pipeline_edits() {
        fuzz(
            "fuzz_pipeline_edits",
            || {
                (
                    0usize..VALID.len(),
                    0usize..8,
                    "[a-z0-9\"\\[\\]{}=.,\n ]{0,4}",
                )
            },
            |(at, cut, insert)| {
                let mut at = at;
                while !VALID.is_char_boundary(at) {
                    at -= 1;
                }
                let mut end = (at + cut).min(VALID.len());
                while !VALID.is_char_boundary(end) {
                    end -= 1;
                }
                check_positions(&format!("{}{}{}", &VALID[..at], insert, &VALID[end..]));
            },
        );
    }
}

/// Regression (hardening): listing an input twice silently doubled every
/// record it carried.
#[test]
fn an_input_listed_twice_is_refused() {
    let e = errors(&format!(
        "{SOURCE}\n[sinks.out]\ntype = \"stdout\"\ninputs = [\"tx\", \"tx\"]\n"
    ));
    assert!(e.contains("p.toml:7:17: input `tx` is listed twice"), "{e}");
}

/// Regression (hardening): a `file` sink on its source's path truncated the
/// input to 0 bytes, and two sinks on one path interleaved their lines,
/// both with exit code 0.
#[test]
fn sinks_may_not_write_where_a_source_reads_or_another_sink_writes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::write(dir.path().join("in.ndjson"), "{}\n").unwrap();
    std::os::unix::fs::symlink(dir.path().join("in.ndjson"), dir.path().join("alias")).unwrap();
    let source = format!("[sources.tx]\ntype = \"file\"\npath = \"{d}/in.ndjson\"\n");
    let sink = |name: &str, path: &str, extra: &str| {
        format!("\n[sinks.{name}]\ntype = \"file\"\ninputs = [\"tx\"]\npath = \"{path}\"\n{extra}")
    };
    // The same file through a relative detour and through a symbolic link.
    for path in [format!("{d}/sub/../in.ndjson"), format!("{d}/alias")] {
        let e = errors(&format!("{source}{}", sink("out", &path, "")));
        assert!(e.contains("sink `out` writes"), "{e}");
        assert!(e.contains("which source `tx` reads"), "{e}");
    }
    let e = errors(&format!(
        "{source}{}{}",
        sink("a", &format!("{d}/out.ndjson"), ""),
        sink("b", &format!("{d}/./out.ndjson"), "")
    ));
    assert!(e.contains("sinks `a` and `b` both write"), "{e}");
    // Rotated files share their stem's prefix.
    let e = errors(&format!(
        "{source}{}{}",
        sink(
            "a",
            &format!("{d}/out.ndjson"),
            "rotate = { max_bytes = 1000 }"
        ),
        sink("b", &format!("{d}/out-x.ndjson"), "")
    ));
    assert!(e.contains("sinks `a` and `b` both write"), "{e}");
    // A Parquet directory holding the source file (a build with the sink).
    if cfg!(feature = "parquet") {
        let e = errors(&format!(
            "{source}\n[sinks.lake]\ntype = \"parquet\"\ninputs = [\"tx\"]\npath = \"{d}\"\n"
        ));
        assert!(e.contains("sink `lake` writes"), "{e}");
    }
    // Different files are fine.
    let ok = format!(
        "{source}{}{}",
        sink("a", &format!("{d}/a.ndjson"), ""),
        sink("b", &format!("{d}/b.ndjson"), "")
    );
    Plan::compile("p.toml", &ok, &[])
        .map_err(|d| d.to_string())
        .unwrap();
}

/// Regression (hardening): `workers = 100000` passed validation and took
/// 20 GB of memory; a huge sliding ratio made millions of windows per event.
#[test]
fn limits_are_checked_and_can_be_raised() {
    let sink = "\n[sinks.out]\ntype = \"stdout\"\ninputs = [\"w\"]\n";
    let window = "\n[transforms.w]\ntype = \"window\"\ninputs = [\"tx\"]\n\
                  window = { sliding = \"1h\", every = \"1ms\" }\naggregates = { n = \"count()\" }\n";
    let e = errors(&format!(
        "[pipeline]\nworkers = 100000\nbatch_size = 0\n\n{SOURCE}{window}{sink}"
    ));
    assert!(
        e.contains("p.toml:2:11: 100000 workers exceed the limit of 256"),
        "{e}"
    );
    assert!(e.contains("max_workers"), "{e}");
    assert!(
        e.contains("p.toml:3:14: `batch_size` must be within"),
        "{e}"
    );
    assert!(
        e.contains("every event would fall into 3600000 windows"),
        "{e}"
    );
    assert!(e.contains("max_windows_per_event"), "{e}");
    let raised = format!(
        "[pipeline]\nworkers = 300\n\n[pipeline.limits]\nmax_workers = 300\n\
         max_windows_per_event = 3600000\n\n{SOURCE}{window}{sink}"
    );
    let plan = Plan::compile("p.toml", &raised, &[])
        .map_err(|d| d.to_string())
        .unwrap();
    assert_eq!(plan.settings.limits.max_workers, 300);
    let e = errors(&format!(
        "[pipeline.limits]\nmax_wrokers = 3\n\n{SOURCE}{sink}"
    ));
    assert!(e.contains("did you mean `max_workers`?"), "{e}");
}

#[test]
fn checkpoint_settings_are_checked_with_positions() {
    let text = "[checkpoint]\nretain = 0\ndir = \"s3://bucket/x\"\nevery = \"1s\"\n\
                [sources.a]\ntype = \"nexmark\"\n[sinks.b]\ntype = \"blackhole\"\ninputs = [\"a\"]\n";
    let err = eddy_runtime::Plan::compile("p.toml", text, &[])
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("unknown field `every`"), "{err}");
    let text = text.replace("every = \"1s\"\n", "");
    let err = eddy_runtime::Plan::compile("p.toml", &text, &[])
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("p.toml:2:10: `retain` must be at least 1"),
        "{err}"
    );
    assert!(
        err.contains("p.toml:3:7: checkpoint storage `s3://`"),
        "{err}"
    );
}

/// A receiver without `inputs` reads the output its name has on every
/// `notify` node; one no route names is reported at its name.
#[test]
fn receivers_are_wired_to_the_routes_that_name_them() {
    let notify = "[alerts.cpu]\ninputs = [\"tx\"]\ncondition = \"amount > 10\"\n\n\
                  [alerts.notify]\ntype = \"notify\"\ninputs = [\"cpu\"]\nreceiver = \"oncall\"\n\
                  routes = [{ matchers = ['severity = \"critical\"'], receiver = \"pager\" }]\n\n\
                  [receivers.oncall]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n\n\
                  [receivers.pager]\ntype = \"pagerduty\"\nrouting_key = \"k\"\n";
    let plan = Plan::compile("p.toml", &format!("{SOURCE}\n{notify}"), &[])
        .map_err(|d| d.to_string())
        .unwrap();
    let node = |name: &str| plan.nodes.iter().position(|n| n.name == name).unwrap();
    for receiver in ["oncall", "pager"] {
        let inputs = &plan.nodes[node(receiver)].inputs;
        assert_eq!(inputs.len(), 1, "{receiver}");
        assert_eq!(inputs[0].node, node("notify"));
    }
    let e = errors(&format!(
        "{SOURCE}\n{notify}\n[receivers.chat]\ntype = \"slack\"\nurl = \"http://127.0.0.1:9/\"\n"
    ));
    assert!(
        e.contains("no `notify` route sends to receiver `chat`"),
        "{e}"
    );
    let e = errors(&format!(
        "{SOURCE}\n{notify}\n[receivers.sms]\ntype = \"pigeon\"\n"
    ));
    assert!(e.contains("unknown receiver type `pigeon`"), "{e}");
}
