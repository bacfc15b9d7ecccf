//! Eddy's HTTP server: health and readiness, Prometheus metrics, the REST
//! API, the WebSocket live feed and the dashboard.
//!
//! The engine stays headless: the server reads a run through [`Status`] (its
//! shape and live counters) and the [`Hub`] (the run's `Publisher`, which
//! keeps each node's recent output and feeds subscribers).
//!
//! | path | what |
//! | --- | --- |
//! | `GET /` | the dashboard |
//! | `GET /healthz` | `200` while the process serves |
//! | `GET /readyz` | `200`, or `503` naming each part that is not well |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /api/v1/pipeline` | the pipeline, its nodes, rates and checkpoints |
//! | `GET /api/v1/nodes/{node}/recent` | a node's newest output (`output`, `limit`, `filter`) |
//! | `GET /api/v1/alerts` | the open alerts (`status`, `filter`) |
//! | `POST /api/v1/alerts/{fingerprint}/ack` | acknowledge an alert (operator) |
//! | `POST /api/v1/alerts/{fingerprint}/resolve` | resolve an alert by hand (operator) |
//! | `GET`/`POST /api/v1/silences`, `DELETE /api/v1/silences/{id}` | silences (writing: operator) |
//! | `POST /api/v1/ingest/{source}` | events into an `http` source |
//! | `GET /api/v1/openapi.json` | the OpenAPI 3 description of the API |
//! | `GET /api/v1/ws` | the WebSocket feed (see `ws`) |
//!
//! It runs on its own thread with a small multi-threaded tokio runtime, so
//! it never takes a worker's core for long.
#![warn(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod alerting;
mod api;
pub mod audit;
pub mod auth;
pub mod hub;
pub mod jwt;
mod prometheus;
pub mod status;
pub mod tls;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use audit::AuditLog;
pub use auth::{Access, ApiKey, Role};
pub use hub::Hub;
pub use jwt::JwtSettings;
pub use status::Status;
pub use tls::Tls;

/// What the handlers share.
pub(crate) struct Shared {
    pub(crate) status: Arc<Status>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) access: Access,
    pub(crate) limiter: auth::Limiter,
}

/// A running server; dropping it (or [`Server::stop`]) shuts it down.
pub struct Server {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How often the rates are sampled and the `metrics` channel published.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

impl Server {
    /// Binds `listen` (port 0 picks a free port) and serves `status` and
    /// `hub` to those `access` admits, from a thread of its own.
    pub fn start(
        listen: SocketAddr,
        status: Arc<Status>,
        hub: Arc<Hub>,
        access: Access,
    ) -> std::io::Result<Server> {
        Server::start_with(listen, status, hub, access, None)
    }

    /// [`Server::start`], serving HTTPS with `tls` when given.
    pub fn start_with(
        listen: SocketAddr,
        status: Arc<Status>,
        hub: Arc<Hub>,
        access: Access,
        tls: Option<Tls>,
    ) -> std::io::Result<Server> {
        let listener = std::net::TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("eddy-server")
            .enable_all()
            .build()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let history = hub.clone();
        let shared = Arc::new(Shared {
            status,
            hub,
            access,
            limiter: auth::Limiter::default(),
        });
        let thread = std::thread::Builder::new()
            .name("eddy-server".into())
            .spawn(move || {
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "server: cannot listen");
                            return;
                        }
                    };
                    let sampler = tokio::spawn(sample(shared.clone()));
                    let app = api::router(shared);
                    let app = app.into_make_service_with_connect_info::<SocketAddr>();
                    let stop = async move {
                        let _ = rx.await;
                    };
                    let served = match tls {
                        None => {
                            axum::serve(listener, app)
                                .with_graceful_shutdown(stop)
                                .await
                        }
                        Some(tls) => match tls::TlsListener::new(listener, tls) {
                            Ok(listener) => {
                                // Tapped, because axum gives handlers the
                                // client's address for tapped listeners.
                                use axum::serve::ListenerExt;
                                axum::serve(listener.tap_io(|_| {}), app)
                                    .with_graceful_shutdown(stop)
                                    .await
                            }
                            Err(e) => Err(e),
                        },
                    };
                    sampler.abort();
                    if let Err(e) = served {
                        tracing::error!(error = %e, "server stopped");
                    }
                });
                // Open WebSocket connections end with the runtime.
                rt.shutdown_timeout(Duration::from_secs(1));
                history.save_history();
            })?;
        Ok(Server {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits for the server's thread.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Samples the rates and publishes the `metrics` channel each second;
/// records in the alert history which alerts the `notify` nodes began or
/// stopped suppressing.
async fn sample(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tick.tick().await;
        for (_, control) in shared.status.alert_controls() {
            for change in control.take_changes() {
                shared.hub.record(serde_json::json!({
                    "fingerprint": change.fingerprint,
                    "alertname": change.alertname,
                    "status": if change.by.is_some() { "suppressed" } else { "unsuppressed" },
                    "cause": change.by,
                    "at": eddy_core::time::format_rfc3339(change.at),
                }));
            }
        }
        shared.hub.save_history();
        shared.status.sample();
        let snapshot = shared.status.snapshot(shared.hub.connections());
        shared.hub.send("metrics", hub::Body::Json(snapshot));
    }
}
