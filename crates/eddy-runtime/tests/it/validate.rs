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
        e.contains("p.toml:7:11: unknown output `.lat` in input `tx.lat`"),
        "{e}"
    );
    assert!(
        e.contains("p.toml:7:21: `tx` (file) has no `.late` output"),
        "{e}"
    );
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any edit of a valid file either compiles or yields diagnostics
        /// that point inside the file, never a panic.
        #[test]
        fn edits_compile_or_report_positions(at in 0usize..VALID.len(), cut in 0usize..8, insert in "[a-z0-9\"\\[\\]{}=.,\n ]{0,4}") {
            let mut at = at;
            while !VALID.is_char_boundary(at) {
                at -= 1;
            }
            let mut end = (at + cut).min(VALID.len());
            while !VALID.is_char_boundary(end) {
                end -= 1;
            }
            let text = format!("{}{}{}", &VALID[..at], insert, &VALID[end..]);
            if let Err(d) = Plan::compile("p.toml", &text, &[]) {
                prop_assert!(!d.list.is_empty());
                for diag in &d.list {
                    prop_assert!(diag.span.start <= text.len(), "{:?} beyond {}", diag.span, text.len());
                    let (line, col) = line_col(&text, diag.span.start);
                    prop_assert!(line >= 1 && col >= 1);
                    prop_assert!(!diag.message.is_empty());
                }
            }
        }
    }
}
