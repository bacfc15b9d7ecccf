//! `eddy bench websocket`: how the live feed fans out to many clients.
//!
//! One `eddy run` process (this executable) serves a pipeline whose `http`
//! source `feed` takes `--rate` events a second, each posted on its own and
//! carrying the wall-clock time it was posted. `--clients` WebSocket
//! clients, in this process, subscribe to `node:feed`, so every event
//! reaches every client: `rate × clients` deliveries a second. Each client
//! measures, per event, the time from its post to its arrival (ingest,
//! engine, hub, WebSocket: the whole path), checks the sequence numbers for
//! gaps, and notices if the server closes it. Printed every 10 s: the
//! deliveries a second, the latency percentiles of those 10 s, the
//! server's resident memory and the clients still open; at the end, the
//! percentiles over the whole run and the memory from the first minute's
//! end to the last sample.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::Message;

use super::alerting::{await_serving, resident_mib};

/// Arguments of `eddy bench websocket`.
#[derive(Args)]
pub struct WebsocketArgs {
    /// WebSocket clients, all subscribed to the feed.
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// Messages a second fanned out to every client.
    #[arg(long, default_value_t = 10)]
    rate: u64,
    /// How long to measure once every client is subscribed, in minutes.
    #[arg(long, default_value_t = 1.0)]
    minutes: f64,
    /// Clients connecting at once while the run starts.
    #[arg(long, default_value_t = 100)]
    connect_concurrency: usize,
}

/// What the clients measured, shared by all of them.
#[derive(Default)]
struct Tally {
    /// Latency of the current 10 s, in µs.
    interval: Mutex<Option<Histogram<u64>>>,
    /// Latency over the whole measurement, in µs.
    total: Mutex<Option<Histogram<u64>>>,
    deliveries: AtomicU64,
    /// Events a client never received (a gap in its sequence).
    missed: AtomicU64,
    /// Clients subscribed and reading.
    open: AtomicUsize,
    /// Clients the server closed or whose connection broke.
    closed: AtomicUsize,
    /// Whether latencies count yet (not while clients still connect).
    measuring: std::sync::atomic::AtomicBool,
}

impl Tally {
    fn record(&self, micros: &[u64]) {
        if !self.measuring.load(Relaxed) {
            return;
        }
        self.deliveries.fetch_add(micros.len() as u64, Relaxed);
        for hist in [&self.interval, &self.total] {
            let mut h = hist.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(h) = h.as_mut() {
                for &us in micros {
                    h.saturating_record(us.max(1));
                }
            }
        }
    }

    /// The interval's histogram, replaced by an empty one.
    fn take_interval(&self) -> Option<Histogram<u64>> {
        let mut h = self.interval.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = h.as_ref().map(Histogram::new_from);
        std::mem::replace(&mut *h, fresh)
    }
}

/// Runs `eddy bench websocket`.
pub fn run(args: &WebsocketArgs) -> anyhow::Result<ExitCode> {
    if args.clients == 0 || args.rate == 0 || args.connect_concurrency == 0 {
        bail!("--clients, --rate and --connect-concurrency must be above 0");
    }
    let dir = std::env::temp_dir().join(format!("eddy-bench-websocket-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = dir.join("websocket.toml");
    std::fs::write(
        &config,
        format!(
            r#"[pipeline]
name = "bench_websocket"
workers = 1
data_dir = "{d}/data"

[server]
listen = "127.0.0.1:{port}"

[sources.feed]
type = "http"

[sinks.out]
type = "blackhole"
inputs = ["feed"]
"#,
            d = dir.display()
        ),
    )?;
    let mut child = super::RunChild::start(&config)?;
    let result = await_serving(&mut child.0, port).and_then(|()| drive(args, &child.0, port));
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    Ok(ExitCode::SUCCESS)
}

fn drive(args: &WebsocketArgs, child: &std::process::Child, port: u16) -> anyhow::Result<()> {
    let tally = Arc::new(Tally {
        interval: Mutex::new(Some(latency_histogram()?)),
        total: Mutex::new(Some(latency_histogram()?)),
        ..Tally::default()
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!(
        "{} clients, {} messages/s each ({} deliveries/s), measured for {} min",
        args.clients,
        args.rate,
        args.clients as u64 * args.rate,
        args.minutes
    );
    let connecting = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(args.connect_concurrency));
    for _ in 0..args.clients {
        let (tally, gate) = (tally.clone(), gate.clone());
        runtime.spawn(async move {
            let permit = gate.acquire_owned().await;
            let socket = subscribe(port).await;
            drop(permit);
            match socket {
                Ok(socket) => read(socket, &tally).await,
                Err(e) => {
                    tally.closed.fetch_add(1, Relaxed);
                    eprintln!("a client could not subscribe: {e}");
                }
            }
        });
    }
    while tally.open.load(Relaxed) + tally.closed.load(Relaxed) < args.clients {
        if connecting.elapsed() > Duration::from_secs(300) {
            bail!(
                "only {} of {} clients subscribed within 5 min",
                tally.open.load(Relaxed),
                args.clients
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "{} clients subscribed in {:.1} s ({} failed)",
        tally.open.load(Relaxed),
        connecting.elapsed().as_secs_f64(),
        tally.closed.load(Relaxed)
    );
    let closed_at_start = tally.closed.load(Relaxed);
    tally.measuring.store(true, Relaxed);
    println!(
        "{:>6} {:>14} {:>9} {:>9} {:>9} {:>10} {:>8}",
        "at (s)", "deliveries/s", "p50 ms", "p95 ms", "p99 ms", "RSS (MiB)", "open"
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("http://127.0.0.1:{port}/api/v1/ingest/feed");
    let every = Duration::from_secs_f64(1.0 / args.rate as f64);
    let run_for = Duration::from_secs_f64(args.minutes * 60.0);
    let begun = Instant::now();
    let (mut next_post, mut next_sample) = (begun, begun + Duration::from_secs(10));
    let mut delivered_before = 0;
    let mut samples: Vec<(f64, f64)> = Vec::new();
    let mut seq = 0u64;
    while begun.elapsed() < run_for {
        let now = Instant::now();
        if now >= next_post {
            seq += 1;
            let body = format!("{{\"seq\":{seq},\"sent_us\":{}}}\n", wall_us());
            let answer = agent
                .post(&url)
                .header("content-type", "application/x-ndjson")
                .send(body)
                .context("cannot post an event")?;
            if answer.status().as_u16() != 202 {
                bail!("the ingest endpoint answered {}", answer.status());
            }
            next_post += every;
        }
        if now >= next_sample {
            let at = begun.elapsed().as_secs_f64();
            let delivered = tally.deliveries.load(Relaxed);
            let rate = (delivered - delivered_before) as f64 / 10.0;
            delivered_before = delivered;
            let rss = resident_mib(child.id()).unwrap_or(f64::NAN);
            let ms = |h: &Option<Histogram<u64>>, q: f64| {
                h.as_ref()
                    .map_or(f64::NAN, |h| h.value_at_quantile(q) as f64 / 1000.0)
            };
            let h = tally.take_interval();
            println!(
                "{at:>6.0} {rate:>14.0} {:>9.2} {:>9.2} {:>9.2} {rss:>10.1} {:>8}",
                ms(&h, 0.5),
                ms(&h, 0.95),
                ms(&h, 0.99),
                tally.open.load(Relaxed)
            );
            samples.push((at, rss));
            next_sample += Duration::from_secs(10);
        }
        std::thread::sleep(
            next_post
                .min(next_sample)
                .saturating_duration_since(Instant::now()),
        );
    }
    // The last messages are on their way.
    std::thread::sleep(Duration::from_secs(1));
    tally.measuring.store(false, Relaxed);
    let total = tally
        .total
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    let expected = seq * args.clients as u64;
    if let Some(h) = total {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "post to delivery over {:.0} s: {} of {expected} deliveries ({:.0}/s), p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            begun.elapsed().as_secs_f64(),
            h.len(),
            h.len() as f64 / begun.elapsed().as_secs_f64(),
            ms(0.5),
            ms(0.95),
            ms(0.99),
            h.max() as f64 / 1000.0
        );
    }
    println!(
        "clients closed while measuring: {}; events missed by clients still open: {}",
        tally.closed.load(Relaxed) - closed_at_start,
        tally.missed.load(Relaxed)
    );
    report_memory(&samples);
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Connects and subscribes to `node:feed`; returns once the server said
/// subscribed.
async fn subscribe(port: u16) -> anyhow::Result<Socket> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    let url = format!("ws://127.0.0.1:{port}/api/v1/ws");
    // A small read buffer: the default 128 KiB one is cleared on each
    // read, which would make the clients, not the server, the bottleneck.
    let config =
        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096);
    let (mut socket, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
    socket
        .send(Message::text(r#"{"subscribe":"node:feed"}"#))
        .await?;
    while let Some(message) = socket.next().await {
        if let Message::Text(text) = message? {
            if text.contains("\"subscribed\"") {
                return Ok(socket);
            }
            bail!("the server answered {text}");
        }
    }
    bail!("the server closed the connection")
}

/// Reads the feed until the connection ends: per event, its latency and
/// whether its sequence number follows the last.
async fn read(mut socket: Socket, tally: &Tally) {
    tally.open.fetch_add(1, Relaxed);
    // Every client subscribes before the first event (sequence 1).
    let mut last_seq = 0u64;
    let mut micros = Vec::new();
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let now = wall_us();
        let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        micros.clear();
        for e in doc["events"].as_array().into_iter().flatten() {
            let (Some(seq), Some(sent)) = (e["seq"].as_u64(), e["sent_us"].as_u64()) else {
                continue;
            };
            tally
                .missed
                .fetch_add(seq.saturating_sub(last_seq + 1), Relaxed);
            last_seq = seq;
            micros.push(now.saturating_sub(sent));
        }
        tally.record(&micros);
    }
    tally.open.fetch_sub(1, Relaxed);
    tally.closed.fetch_add(1, Relaxed);
}

/// A histogram of 1 µs to 1 min (slower deliveries count as 1 min).
fn latency_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

/// Microseconds since the Unix epoch.
fn wall_us() -> u64 {
    eddy_core::time::now_ns() / 1_000
}

/// The server's memory from the first sample a minute in to the last.
fn report_memory(samples: &[(f64, f64)]) {
    let warm: Vec<&(f64, f64)> = samples.iter().filter(|(at, _)| *at >= 60.0).collect();
    match (warm.first(), warm.last()) {
        (Some(&&(from, first)), Some(&&(to, last))) if to > from => {
            let low = warm.iter().map(|s| s.1).fold(f64::INFINITY, f64::min);
            let high = warm.iter().map(|s| s.1).fold(0.0, f64::max);
            println!(
                "server memory: {first:.1} MiB at {from:.0} s, {last:.1} MiB at {to:.0} s ({:+.1} MiB, {:+.2} MiB/min; {low:.1} to {high:.1} MiB between)",
                last - first,
                (last - first) / ((to - from) / 60.0)
            );
        }
        _ => println!("server memory: run over a minute (--minutes) to see its trend"),
    }
}
