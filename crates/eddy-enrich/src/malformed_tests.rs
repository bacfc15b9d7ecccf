//! Every text transform on texts that are empty, huge, or odd Unicode:
//! each event leaves as a result or a dead letter, none panics or is lost.

use eddy_core::component::TransformFactory;

use crate::entities::EntitiesConfig;
use crate::language::LanguageConfig;
use crate::redact::transform::RedactConfig;
use crate::sentiment::transform::SentimentConfig;
use crate::test_support::{config, run};
use crate::topics::TopicsConfig;

fn texts() -> Vec<String> {
    let megabyte: String = "Outage again!!! €3k lost, mail ops@example.com 😡 "
        .chars()
        .cycle()
        .take(1 << 20)
        .collect();
    [
        "",
        " ",
        "\u{0}\u{1}\u{7f}",
        "😀😀😀 👍🏽 ❤️‍🔥",
        "שלום עולם مرحبا بالعالم",
        "e\u{301}\u{301}\u{301} combining marks",
        "!!!???...,,,;;;",
        "ALL CAPS NO MEANING BUT VERY LOUD",
        "4111 1111 1111 1111 DE89370400440532013000 +44 20 7946 0958",
        "\u{feff}text after a byte order mark",
    ]
    .into_iter()
    .map(String::from)
    .chain([megabyte])
    .collect()
}

fn check(name: &str, cfg: &dyn TransformFactory) {
    let lines: Vec<String> = texts()
        .iter()
        .map(|t| serde_json::json!({ "text": t, "channel": "c" }).to_string())
        .collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (main, dead) = run(cfg, &lines);
    assert_eq!(main.len() + dead.len(), lines.len(), "{name} lost events");
}

#[test]
fn odd_texts_give_a_result_or_a_dead_letter() {
    let field = "field = \"text\"\n";
    check(
        "sentiment",
        &config::<SentimentConfig>(&format!("[transforms.t]\ntype = \"sentiment\"\n{field}"))
            .unwrap(),
    );
    check(
        "entities",
        &config::<EntitiesConfig>(&format!(
            "[transforms.t]\ntype = \"entities\"\n{field}gazetteers = {{ tech = [\"Kafka\"] }}\n"
        ))
        .unwrap(),
    );
    check(
        "language",
        &config::<LanguageConfig>(&format!("[transforms.t]\ntype = \"language\"\n{field}"))
            .unwrap(),
    );
    check(
        "topics",
        &config::<TopicsConfig>(&format!(
            "[transforms.t]\ntype = \"topics\"\n{field}order = \"arrival\"\n"
        ))
        .unwrap(),
    );
    check(
        "redact",
        &config::<RedactConfig>("[transforms.t]\ntype = \"redact\"\n").unwrap(),
    );
}
