//! `eddy bench alerting`: how fast an alert reaches a webhook, and whether
//! memory stays flat with many alerts open.
//!
//! One `eddy run` process (this executable) ingests events over HTTP:
//! `--rate` events/s keep `--alerts` alerts firing (one per id, repeated
//! every `repeat_interval`), and `--probes` times a second a new id raises
//! an alert of its own (resolved a second later). A local webhook receiver
//! takes the notifications. Printed: the latency of each probe from the
//! moment it is posted to the moment its notification arrives (`group_wait`
//! is 0, so this is the pipeline: ingest, rule, routing, delivery), as
//! percentiles, beside the floor: the same receiver's latency for posts
//! sent to it directly; and the process's resident memory every 10 s with
//! the number of alerts firing, then its change from the first minute's
//! end (every alert open, start-up over) to the last sample.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ExitCode};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use hdrhistogram::Histogram;
use serde_json::Value;

/// Arguments of `eddy bench alerting`.
#[derive(Args)]
pub struct AlertingArgs {
    /// Alerts kept firing.
    #[arg(long, default_value_t = 10_000)]
    alerts: u64,
    /// Events per second keeping them firing.
    #[arg(long, default_value_t = 2_000)]
    rate: u64,
    /// Probe alerts raised per second (their latency is measured).
    #[arg(long, default_value_t = 10)]
    probes: u64,
    /// How long to run, in minutes.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Worker threads of the measured run.
    #[arg(long, short, default_value_t = 2)]
    workers: usize,
}

/// What the webhook receiver saw.
#[derive(Default)]
struct Seen {
    /// Probe number → when its first notification arrived.
    probes: HashMap<u64, Instant>,
    /// Direct post number → when it arrived (the floor).
    direct: HashMap<u64, Instant>,
    /// Ids of the steady alerts whose latest notification said firing.
    firing: HashSet<String>,
    notifications: u64,
}

type Shared = Arc<Mutex<Seen>>;

fn lock(seen: &Shared) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `eddy bench alerting`.
pub fn run(args: &AlertingArgs) -> anyhow::Result<ExitCode> {
    if args.alerts == 0 || args.rate == 0 || args.probes == 0 {
        bail!("--alerts, --rate and --probes must be above 0");
    }
    let dir = std::env::temp_dir().join(format!("eddy-bench-alerting-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let seen: Shared = Arc::default();
    let hook = TcpListener::bind("127.0.0.1:0").context("cannot listen for the webhook")?;
    let hook_port = hook.local_addr()?.port();
    {
        let seen = seen.clone();
        std::thread::spawn(move || accept(hook, seen));
    }
    let floor = direct_floor(hook_port, &seen)?;
    let api_port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config = write_config(&dir, args, api_port, hook_port)?;
    let mut child = super::RunChild::start(&config)?;
    let result = drive(args, &mut child.0, api_port, &seen, &floor);
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    Ok(ExitCode::SUCCESS)
}

fn write_config(
    dir: &Path,
    args: &AlertingArgs,
    api_port: u16,
    hook_port: u16,
) -> anyhow::Result<std::path::PathBuf> {
    let d = dir.display();
    let path = dir.join("alerting.toml");
    std::fs::write(
        &path,
        format!(
            r#"[pipeline]
name = "bench_alerting"
workers = {workers}
data_dir = "{d}/data"

[server]
listen = "127.0.0.1:{api_port}"

[sources.events]
type = "http"

{steady}
{probe}
[alerts.notify]
type = "notify"
inputs = ["steady", "probe"]
receiver = "hook"
group_by = ["alertname", "id"]
group_wait = "0s"
group_interval = "10s"
repeat_interval = "2m"

[receivers.hook]
type = "webhook"
url = "http://127.0.0.1:{hook_port}/hook"
"#,
            workers = args.workers,
            steady = rule("steady", "high", "1h"),
            probe = rule("probe", "critical", "1s"),
        ),
    )?;
    Ok(path)
}

/// An alert rule per id over the events of `kind`.
fn rule(kind: &str, severity: &str, resolve_after: &str) -> String {
    format!(
        r#"[alerts.{kind}]
inputs = ["events"]
condition = 'kind == "{kind}"'
key = "id"
severity = "{severity}"
resolve_after = "{resolve_after}"
labels = {{ id = "{{id}}" }}
annotations = {{ id = "{{id}}" }}
"#
    )
}

/// Posts the events and samples memory until `--minutes` passed.
fn drive(
    args: &AlertingArgs,
    child: &mut Child,
    port: u16,
    seen: &Shared,
    floor: &HashMap<u64, Instant>,
) -> anyhow::Result<()> {
    let url = format!("http://127.0.0.1:{port}/api/v1/ingest/events");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    await_serving(child, port)?;
    let post = |body: String| -> anyhow::Result<()> {
        let answer = agent
            .post(&url)
            .header("content-type", "application/x-ndjson")
            .send(body)
            .context("cannot post events")?;
        match answer.status().as_u16() {
            202 => Ok(()),
            other => bail!("the ingest endpoint answered {other}"),
        }
    };
    println!(
        "{} alerts kept firing by {} events/s, {} probe alerts/s, {} worker(s), {} min",
        args.alerts, args.rate, args.probes, args.workers, args.minutes
    );
    println!(
        "{:>8} {:>10} {:>8} {:>14}",
        "at (s)", "RSS (MiB)", "firing", "notifications"
    );
    let run_for = Duration::from_secs_f64(args.minutes * 60.0);
    let begun = Instant::now();
    let tick = Duration::from_millis(50);
    let per_tick = (args.rate / 20).max(1);
    let probe_every = Duration::from_secs_f64(1.0 / args.probes as f64);
    let (mut next_tick, mut next_probe) = (begun, begun);
    let mut next_sample = begun + Duration::from_secs(10);
    let (mut cursor, mut probe) = (0u64, 0u64);
    let mut sent: HashMap<u64, Instant> = HashMap::new();
    let mut samples: Vec<(f64, f64, usize)> = Vec::new();
    while begun.elapsed() < run_for {
        if let Some(status) = child.try_wait()? {
            bail!("eddy run ended early: {status}");
        }
        let now = Instant::now();
        if now >= next_probe {
            sent.insert(probe, Instant::now());
            post(format!("{{\"kind\":\"probe\",\"id\":\"p{probe}\"}}\n"))?;
            probe += 1;
            next_probe += probe_every;
        }
        if now >= next_tick {
            let mut body = String::with_capacity(per_tick as usize * 32);
            for _ in 0..per_tick {
                body.push_str(&format!(
                    "{{\"kind\":\"steady\",\"id\":\"s{}\"}}\n",
                    cursor % args.alerts
                ));
                cursor += 1;
            }
            post(body)?;
            next_tick += tick;
        }
        if now >= next_sample {
            let rss = resident_mib(child.id()).unwrap_or(f64::NAN);
            let (firing, notifications) = {
                let s = lock(seen);
                (s.firing.len(), s.notifications)
            };
            let at = begun.elapsed().as_secs_f64();
            println!("{at:>8.0} {rss:>10.1} {firing:>8} {notifications:>14}");
            samples.push((at, rss, firing));
            next_sample += Duration::from_secs(10);
        }
        let wake = next_tick.min(next_probe).min(next_sample);
        std::thread::sleep(wake.saturating_duration_since(Instant::now()));
    }
    // The last probes' notifications are on their way.
    std::thread::sleep(Duration::from_secs(1));
    report_latency("webhook directly (the floor)", floor, &lock(seen).direct)?;
    report_latency("event to webhook through Eddy", &sent, &lock(seen).probes)?;
    report_memory(&samples, args.alerts as usize);
    Ok(())
}

/// Waits until `child` (an `eddy run`) accepts connections on `port`.
pub(super) fn await_serving(child: &mut Child, port: u16) -> anyhow::Result<()> {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait()? {
            bail!("eddy run ended before serving: {status}");
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("eddy run did not serve on port {port} within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Posts 200 notifications straight to the receiver, 5 ms apart; returns
/// when each was sent.
fn direct_floor(port: u16, seen: &Shared) -> anyhow::Result<HashMap<u64, Instant>> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("http://127.0.0.1:{port}/direct");
    let mut sent = HashMap::new();
    for n in 0..200u64 {
        let body = format!(r#"{{"alerts":[{{"status":"firing","annotations":{{"id":"d{n}"}}}}]}}"#);
        sent.insert(n, Instant::now());
        agent
            .post(&url)
            .header("content-type", "application/json")
            .send(body)
            .context("cannot post to the receiver")?;
        std::thread::sleep(Duration::from_millis(5));
    }
    lock(seen).notifications = 0;
    Ok(sent)
}

fn report_latency(
    what: &str,
    sent: &HashMap<u64, Instant>,
    got: &HashMap<u64, Instant>,
) -> anyhow::Result<()> {
    let mut hist = Histogram::<u64>::new(3)?;
    for (n, at) in got {
        if let Some(sent) = sent.get(n) {
            hist.record(at.saturating_duration_since(*sent).as_micros() as u64)?;
        }
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{what} ({} of {} arrived): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        hist.len(),
        sent.len(),
        ms(0.5),
        ms(0.95),
        ms(0.99),
        hist.max() as f64 / 1000.0
    );
    Ok(())
}

/// Memory from the first sample a minute in with every alert firing (the
/// start-up's transient memory gone by then) to the last, with the range
/// between.
fn report_memory(samples: &[(f64, f64, usize)], alerts: usize) {
    let warm: Vec<&(f64, f64, usize)> = samples
        .iter()
        .filter(|(at, _, firing)| *at >= 60.0 && *firing >= alerts)
        .collect();
    match (warm.first(), warm.last()) {
        (Some(&&(from, first, _)), Some(&&(to, last, _))) if to > from => {
            let low = warm.iter().map(|s| s.1).fold(f64::INFINITY, f64::min);
            let high = warm.iter().map(|s| s.1).fold(0.0, f64::max);
            println!(
                "memory with all {alerts} alerts firing: {first:.1} MiB at {from:.0} s, {last:.1} MiB at {to:.0} s ({:+.1} MiB, {:+.2} MiB/min; {low:.1} to {high:.1} MiB between)",
                last - first,
                (last - first) / ((to - from) / 60.0)
            )
        }
        _ => println!(
            "memory: every alert firing for two samples after the first minute is needed; run longer (--minutes)"
        ),
    }
}

/// The resident memory of process `pid` (`VmRSS`), in MiB.
pub(super) fn resident_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

/// Accepts webhook connections, one thread each.
fn accept(listener: TcpListener, seen: Shared) {
    for stream in listener.incoming().flatten() {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let _ = serve(stream, &seen);
        });
    }
}

/// Answers each request on one connection `200` and records what it says.
fn serve(stream: TcpStream, seen: &Shared) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let arrived = Instant::now();
        writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")?;
        if let Ok(doc) = serde_json::from_slice::<Value>(&body) {
            record(seen, &doc, arrived);
        }
    }
}

/// Notes a notification: a probe's first arrival, a steady alert's state.
fn record(seen: &Shared, doc: &Value, arrived: Instant) {
    let mut s = lock(seen);
    s.notifications += 1;
    for alert in doc["alerts"].as_array().into_iter().flatten() {
        let id = alert["annotations"]["id"].as_str().unwrap_or_default();
        let firing = alert["status"] == "firing";
        if let Some(n) = id.strip_prefix('d').and_then(|n| n.parse::<u64>().ok()) {
            s.direct.insert(n, arrived);
        } else if let Some(n) = id.strip_prefix('p').and_then(|n| n.parse::<u64>().ok()) {
            if firing {
                s.probes.entry(n).or_insert(arrived);
            }
        } else if firing {
            s.firing.insert(id.to_string());
        } else {
            s.firing.remove(id);
        }
    }
}
