//! Projection pushdown: a source decodes only the top-level fields the
//! pipeline reads, when every path its events take says which, and the
//! results are those of decoding every field.

use eddy_core::Sym;
use eddy_runtime::{Plan, RunOptions};

fn plan(text: &str) -> Plan {
    Plan::compile("test.toml", text, &[]).unwrap_or_else(|d| panic!("{d}"))
}

fn names(fields: Option<Vec<Sym>>) -> Option<Vec<String>> {
    fields.map(|f| {
        let mut n: Vec<String> = f.iter().map(|s| s.as_str().to_string()).collect();
        n.sort();
        n
    })
}

const SOURCE: &str = r#"
[sources.orders]
type = "file"
path = "in.ndjson"
event_time = { field = "ts", format = "epoch_ms" }

[transforms.paid]
type = "filter"
inputs = ["orders"]
condition = 'status == "paid" && has(customer.tier)'

[transforms.per_shop]
type = "window"
inputs = ["paid"]
key = "shop"
window = { tumbling = "1s" }
aggregates = { n = "count()", total = "sum(amount)", top = "max_by(item, amount)" }

[sinks.out]
type = "file"
inputs = ["per_shop"]
path = "out.ndjson"
"#;

#[test]
fn a_source_read_only_through_filters_and_windows_keeps_what_they_read() {
    let p = plan(SOURCE);
    let got = names(p.projection(0));
    assert_eq!(
        got,
        Some(
            ["amount", "customer", "item", "shop", "status"]
                .map(String::from)
                .to_vec()
        )
    );
}

#[test]
fn any_path_that_hands_events_on_whole_keeps_every_field() {
    let with = |extra: &str| names(plan(&format!("{SOURCE}\n{extra}")).projection(0));
    // A sink of the source's events.
    assert_eq!(
        with("[sinks.raw]\ntype = \"file\"\ninputs = [\"orders\"]\npath = \"raw.ndjson\""),
        None
    );
    // The filter's dead letters, or the window's late events.
    for output in [
        "paid.dead_letters",
        "per_shop.late",
        "per_shop.dead_letters",
    ] {
        let sink =
            format!("[sinks.kept]\ntype = \"file\"\ninputs = [\"{output}\"]\npath = \"k.ndjson\"");
        assert_eq!(with(&sink), None, "{output}");
    }
    // The source's own dead letters are undecodable lines: no matter.
    let bad =
        "[sinks.bad]\ntype = \"file\"\ninputs = [\"orders.dead_letters\"]\npath = \"bad.ndjson\"";
    assert!(with(bad).is_some());
    // A transform that does not say what it reads.
    let map = "[transforms.tagged]\ntype = \"map\"\ninputs = [\"orders\"]\nset = { x = \"1\" }\n\n[sinks.t]\ntype = \"blackhole\"\ninputs = [\"tagged\"]";
    assert_eq!(with(map), None);
}

/// The window's results are the same whether the source decodes every
/// field (a second sink reads its events whole) or only those read.
#[test]
fn projected_and_whole_decoding_give_the_same_results() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut lines = String::new();
    for i in 0..3_000i64 {
        let status = if i % 3 == 0 { "refunded" } else { "paid" };
        let tier = if i % 5 == 0 {
            String::new()
        } else {
            format!(r#""tier":"t{}""#, i % 4)
        };
        lines.push_str(&format!(
            r#"{{"ts":{},"shop":"s{}","status":"{status}","amount":{}.5,"item":"i{}","note":"{}","customer":{{{tier}}},"big":[1,{{"x":"y"}}]}}"#,
            1_700_000_000_000 + i * 7,
            i % 11,
            i % 97,
            i % 13,
            "x".repeat((i % 50) as usize)
        ));
        lines.push('\n');
    }
    std::fs::write(d.join("in.ndjson"), lines).unwrap();
    let text = SOURCE
        .replace("in.ndjson", &d.join("in.ndjson").display().to_string())
        .replace("out.ndjson", &d.join("out.ndjson").display().to_string());
    let whole = format!("{text}\n[sinks.raw]\ntype = \"blackhole\"\ninputs = [\"orders\"]\n");
    let results = |text: &str| {
        let p = plan(text);
        let report = eddy_runtime::run(&p, RunOptions::default()).unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let mut out: Vec<String> = std::fs::read_to_string(d.join("out.ndjson"))
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        out.sort();
        (p.projection(0).is_some(), out)
    };
    let (projected, a) = results(&text);
    let (not_projected, b) = results(&whole);
    assert!(projected && !not_projected);
    assert!(a.len() > 10, "{a:?}");
    assert_eq!(a, b);
}
