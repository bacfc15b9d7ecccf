//! `eddy bench nexmark --serve --clients N`: the same run with the server
//! on and `N` WebSocket clients watching it as dashboards do (the
//! `metrics` channel and the query's results), to measure what serving
//! costs the engine. `--subscribe-all` subscribes them to every node's
//! output instead, the raw events included: the worst case.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use eddy_runtime::{Plan, RunOptions, RunReport};

/// Runs `plan` with the server on a free loopback port and `clients`
/// subscribers; returns the report and the messages the clients read.
pub fn run(
    plan: &Plan,
    mut opts: RunOptions,
    clients: usize,
    all: bool,
) -> anyhow::Result<(RunReport, u64)> {
    let hub = Arc::new(eddy_server::Hub::new());
    opts.publisher = Some(hub.clone());
    let running = eddy_runtime::start(plan, opts).context("benchmark run failed")?;
    let finished = Arc::new(AtomicBool::new(false));
    let status = eddy_server::Status::new(plan, running.metrics().clone(), finished.clone());
    let server = eddy_server::Server::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Arc::new(status),
        hub,
        eddy_server::Access::default(),
    )
    .context("cannot start the server")?;
    // The results: what the sink `out` reads.
    let results = plan
        .nodes
        .iter()
        .find(|n| n.name == "out")
        .and_then(|n| n.inputs.first())
        .map(|i| plan.nodes[i.node].name.clone());
    let channels: Vec<String> = if all {
        plan.nodes
            .iter()
            .map(|n| format!("node:{}", n.name))
            .collect()
    } else {
        std::iter::once("metrics".to_string())
            .chain(results.map(|r| format!("node:{r}")))
            .collect()
    };
    let readers: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, channels, finished) = (server.addr(), channels.clone(), finished.clone());
            std::thread::spawn(move || read_feed(addr, &channels, &finished))
        })
        .collect();
    let report = running.wait();
    finished.store(true, Ordering::SeqCst);
    let messages = readers.into_iter().map(|r| r.join().unwrap_or(0)).sum();
    server.stop();
    Ok((report, messages))
}

/// One client: subscribes to `channels` and reads until `finished`;
/// returns the messages read.
fn read_feed(addr: SocketAddr, channels: &[String], finished: &AtomicBool) -> u64 {
    let Ok(stream) = std::net::TcpStream::connect(addr) else {
        return 0;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let url = format!("ws://{addr}/api/v1/ws");
    // A small read buffer, as a dashboard's would be: the default 128 KiB
    // one is cleared on every read, which would bill the clients' own
    // work to the engine sharing their cores.
    let config = tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096);
    let Ok((mut ws, _)) =
        tungstenite::client::client_with_config(url.as_str(), stream, Some(config))
    else {
        return 0;
    };
    for c in channels {
        let request = format!("{{\"subscribe\":\"{c}\"}}");
        if ws.send(tungstenite::Message::Text(request.into())).is_err() {
            return 0;
        }
    }
    let mut read = 0;
    while !finished.load(Ordering::Relaxed) {
        match ws.read() {
            Ok(tungstenite::Message::Text(_)) => read += 1,
            Ok(tungstenite::Message::Close(_)) => break,
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    read
}
