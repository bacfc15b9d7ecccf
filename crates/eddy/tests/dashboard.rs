//! The dashboard in a real headless browser: `eddy demo` serves it, and
//! Chromium (over WebDriver) sees the connection go live, every node of
//! the pipeline in the graph with its backpressure, the charts move, and
//! dead letters arrive with their reasons. Screenshots at desktop
//! and phone sizes are saved under the test's target directory. And
//! `eddy alerts list` against the same demo.

mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use eddy_testkit::browser::Browser;
use serde_json::Value;

/// `eddy demo` serving on a free port, killed when dropped.
struct Demo {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Demo {
    fn start() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let mut child = support::eddy()
            .args(["demo", "--port", "0", "--duration", "120"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (url, _log) = support::served_at(&mut child);
        Demo {
            child,
            url,
            _dir: dir,
        }
    }

    /// `GET /api/v1/alerts/history` of one alert.
    fn history(&self, fingerprint: &str) -> Value {
        let url = format!(
            "{}/api/v1/alerts/history?fingerprint={fingerprint}",
            self.url
        );
        let text = ureq::get(url)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Evaluates `script` until it returns `true`.
fn eventually(b: &Browser, what: &str, script: &str) {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if b.eval(script) == Value::Bool(true) {
            return;
        }
        assert!(Instant::now() < until, "never: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn artefact(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn the_demo_dashboard_goes_live_shows_every_node_and_its_charts_move() {
    let Some(browser) = Browser::start(1280, 800) else {
        return;
    };
    let demo = Demo::start();
    let nodes: Value = serde_json::from_str(
        &ureq::get(format!("{}/api/v1/pipeline", demo.url))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    let names: Vec<String> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.len() > 5, "{names:?}");

    browser.goto(&demo.url);
    eventually(
        &browser,
        "the feed is live",
        "return document.getElementById('conn').textContent === 'live';",
    );
    // The feed can go live before the pipeline's nodes are drawn.
    eventually(
        &browser,
        "the nodes are drawn",
        &format!(
            "return document.querySelectorAll('tr.node').length === {};",
            names.len()
        ),
    );
    let shown = browser
        .eval("return [...document.querySelectorAll('tr.node')].map(tr => tr.dataset.node);");
    assert_eq!(
        shown,
        serde_json::json!(names),
        "the graph shows every node"
    );

    // The throughput chart gains points, and a window's trend chart and
    // top keys appear once windows fire (the demo's fire every 2 s).
    let points = "return typeof rates === 'undefined' ? 0 : rates.t.length;";
    let before = browser.eval(points).as_u64().unwrap();
    eventually(
        &browser,
        "the throughput chart moves",
        &format!("return rates.t.length >= {} + 3;", before),
    );
    eventually(
        &browser,
        "the window trend and top keys are drawn",
        "return trendPlot !== null && document.querySelectorAll('#top tr').length > 0 \
         && document.querySelectorAll('.uplot canvas').length >= 2;",
    );
    let drawn = browser
        .eval("return trendPlot.data[0].length;")
        .as_u64()
        .unwrap();
    eventually(
        &browser,
        "the trend gains windows",
        &format!("return trendPlot !== null && trendPlot.data[0].length > {drawn};"),
    );
    // The demo's alert rules fire within seconds (the budget crisis).
    eventually(
        &browser,
        "open alerts are listed",
        "return document.querySelectorAll('#alerts tr').length > 0 \
         && document.getElementById('alertcount').textContent !== '';",
    );
    // The demo's schema drift (from 8 s) sends transactions whose amount
    // is text to the dead-letter panel, with the reason.
    eventually(
        &browser,
        "dead letters are listed with their reason",
        "return [...document.querySelectorAll('#dead tr.deadletter')].some(tr => tr.textContent.includes('needs a number'));",
    );
    // Every node shows its backpressure; the demo reads no Kafka topic.
    eventually(
        &browser,
        "the backpressure column is filled",
        "return [...document.querySelectorAll('tr.node')].every(tr => / %$/.test(tr.children[6].textContent));",
    );
    assert_eq!(
        browser.eval("return document.getElementById('lag').textContent;"),
        "no Kafka source"
    );
    browser.screenshot(&artefact("dashboard-1280x800.png"));

    // Acknowledge a firing alert from the page: the row says so, and the
    // API's history records who.
    let fingerprint = browser.eval(
        "const b = document.querySelector('button.ack'); b.click(); return b.dataset.fingerprint;",
    );
    let fingerprint = fingerprint
        .as_str()
        .expect("a firing alert with an ack button");
    eventually(
        &browser,
        "the row shows the acknowledgement",
        "return [...document.querySelectorAll('#alerts span.acked')].some(s => s.textContent.trim() === 'acked by dashboard');",
    );
    let history = demo.history(fingerprint);
    assert_eq!(history["history"][0]["status"], "acknowledged", "{history}");
    assert_eq!(history["history"][0]["by"], "dashboard");

    // Its row opens its history on the page.
    browser.eval(&format!(
        "document.querySelector('button.resolve[data-fingerprint=\"{fingerprint}\"]').closest('tr').click(); return true;"
    ));
    eventually(
        &browser,
        "the alert's history is shown",
        "return [...document.querySelectorAll('#history td')].some(td => td.textContent === 'acknowledged');",
    );

    // A silence made with the form is listed, then ended from the page.
    browser.eval(
        "document.getElementById('matcher').value = 'alertname = \"nothing_like_this\"'; \
         document.getElementById('silencewhy').value = 'maintenance'; \
         document.querySelector('#silenceform button').click(); return true;",
    );
    eventually(
        &browser,
        "the silence is listed as active",
        "return [...document.querySelectorAll('#silences tr')].some(tr => tr.textContent.startsWith('active') && tr.textContent.includes('maintenance'));",
    );
    browser.eval("document.querySelector('button.unsilence').click(); return true;");
    eventually(
        &browser,
        "the silence has ended",
        "return [...document.querySelectorAll('#silences tr')].some(tr => tr.textContent.startsWith('expired'));",
    );

    // Resolve it from the page: the rule resolves it, naming the page.
    browser.eval(&format!(
        "document.querySelector('button.resolve[data-fingerprint=\"{fingerprint}\"]').click(); return true;"
    ));
    support::wait_until(Duration::from_secs(20), "the resolution by hand", || {
        demo.history(fingerprint)["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["status"] == "resolved" && h["cause"] == "resolved by dashboard")
    });

    // A phone: nothing wider than the screen.
    browser.resize(390, 844);
    eventually(
        &browser,
        "the phone layout fits its width",
        "return document.documentElement.scrollWidth <= window.innerWidth;",
    );
    browser.screenshot(&artefact("dashboard-390x844.png"));
    let png = std::fs::read(artefact("dashboard-390x844.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
}

/// `eddy alerts list` against the demo: its alert rules fire within
/// seconds (the budget crisis), and the filter and status reach the server.
#[test]
fn alerts_list_shows_the_demo_s_open_alerts() {
    let demo = Demo::start();
    let list = |extra: &[&str]| {
        let out = support::eddy()
            .args(["alerts", "list", "--url", &demo.url])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    support::wait_until(Duration::from_secs(30), "a critical budget alert", || {
        list(&["--status", "firing", "--json"])
            .1
            .contains("\"alertname\":\"budget_utilization_critical\"")
    });
    let (ok, json, _) = list(&["--json", "--filter", "severity == \"critical\""]);
    assert!(ok);
    let severities: Vec<String> = json
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["severity"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        !severities.is_empty() && severities.iter().all(|s| s == "critical"),
        "{json}"
    );
    let (ok, table, err) = list(&[]);
    assert!(ok, "{err}");
    assert!(
        table.starts_with("SEVERITY") && table.contains("budget of "),
        "{table}"
    );
    assert!(err.contains("open alert(s)"), "{err}");
    let (ok, _, err) = list(&["--status", "resolved"]);
    assert!(
        !ok && err.contains("`status` is `firing` or `pending`"),
        "{err}"
    );
}
