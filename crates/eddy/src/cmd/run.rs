//! `eddy run FILE`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use eddy_runtime::{Plan, Restore, RunOptions};

use crate::progress::Progress;

/// Arguments of `eddy run`.
#[derive(Args)]
pub struct RunArgs {
    /// The pipeline file.
    file: PathBuf,
    /// Stop after this many seconds (flushing open windows).
    #[arg(long, value_parser = super::parse_seconds)]
    duration: Option<Duration>,
    /// Worker threads (default: `[pipeline] workers`, else the number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Do not print progress lines.
    #[arg(long, short)]
    quiet: bool,
    /// Resume from this checkpoint or savepoint directory (`.../chk-<id>`)
    /// instead of the newest complete one (needs `[checkpoint]`).
    #[arg(long, value_name = "PATH")]
    from_checkpoint: Option<PathBuf>,
    /// Resume even if some checkpointed state no longer fits the pipeline
    /// (a removed or changed operator): that state is dropped.
    #[arg(long)]
    allow_non_restored_state: bool,
}

/// How `execute` runs a plan beyond the plan itself.
#[derive(Default)]
pub struct Execution {
    /// Worker threads (default: `[pipeline] workers`, else the cores).
    pub workers: Option<usize>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Print progress lines.
    pub progress: bool,
    /// Which checkpoint to resume from.
    pub restore: Restore,
    /// Drop checkpointed state that no longer fits.
    pub allow_non_restored_state: bool,
    /// Serve the API and dashboard here (overrides `[server] listen`).
    pub serve: Option<std::net::SocketAddr>,
}

/// How long a savepoint on Ctrl-C may take before the run stops without one.
const SAVEPOINT_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the pipeline; exit 2 on config errors, 1 if the run reported errors.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let plan = match super::load_plan(&args.file)? {
        Ok(plan) => plan,
        Err(diags) => {
            eprint!("{diags}");
            return Ok(ExitCode::from(2));
        }
    };
    if args.from_checkpoint.is_some() && plan.checkpoint.is_none() {
        eprintln!(
            "error: --from-checkpoint needs a `[checkpoint]` table in {}",
            args.file.display()
        );
        eprintln!("  hint: add `[checkpoint]` (its defaults suit most pipelines) so the run can resume and keep taking checkpoints");
        return Ok(ExitCode::from(2));
    }
    execute(
        &plan,
        Execution {
            workers: args.workers,
            duration: args.duration,
            progress: !args.quiet,
            restore: args.from_checkpoint.map_or(Restore::Latest, Restore::From),
            allow_non_restored_state: args.allow_non_restored_state,
            serve: None,
        },
    )
}

/// Runs a compiled plan with progress on stderr and a final summary.
pub fn execute(plan: &Plan, how: Execution) -> anyhow::Result<ExitCode> {
    // The root span of an exported trace: the whole run.
    let span = tracing::info_span!(
        "eddy.run",
        pipeline = %plan.name,
        events_read = tracing::field::Empty,
        errors = tracing::field::Empty,
    );
    let _run = span.enter();
    let workers = how.workers.or(plan.settings.workers);
    if let Some(problem) =
        workers.and_then(|w| eddy_core::config::check_workers(w, &plan.settings.limits))
    {
        eprintln!("error: {problem}");
        eprintln!(
            "  hint: {}",
            eddy_core::limits::Limits::raise_hint("max_workers")
        );
        return Ok(ExitCode::from(2));
    }
    let signalled = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, signalled.clone())
            .context("cannot install the Ctrl-C handler")?;
    }
    let mut opts = RunOptions {
        restore: how.restore,
        allow_non_restored_state: how.allow_non_restored_state,
        ..RunOptions::default()
    };
    if let Some(w) = workers {
        opts.workers = w;
    }
    opts.duration = how.duration;
    let listen = how.serve.or(plan.server.as_ref().map(|s| s.listen));
    let http_sources: Vec<&str> = plan
        .nodes
        .iter()
        .filter(|n| {
            n.kind == "http" && matches!(n.factory, eddy_runtime::registry::Factory::Source(_))
        })
        .map(|n| n.name.as_str())
        .collect();
    if let (Some(name), None) = (http_sources.first(), listen) {
        eprintln!("error: source `{name}` (type = \"http\") receives events through the server, which this pipeline does not start");
        eprintln!("  hint: add `[server]` with `listen = \"127.0.0.1:8080\"`, then post to /api/v1/ingest/{name}");
        return Ok(ExitCode::from(2));
    }
    let access = match access(plan) {
        Ok(access) => access,
        Err(problem) => {
            eprintln!("error: {problem}");
            return Ok(ExitCode::from(2));
        }
    };
    let tls = match plan.server.as_ref().and_then(|s| s.tls.as_ref()) {
        Some(t) => match eddy_server::Tls::from_pem_files(&t.certificate, &t.key) {
            Ok(tls) => Some(tls),
            Err(problem) => {
                eprintln!("error: [server] tls: {problem}");
                return Ok(ExitCode::from(2));
            }
        },
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let rules: Vec<String> = plan
        .nodes
        .iter()
        .filter(|n| n.kind == "rule")
        .map(|n| n.name.clone())
        .collect();
    let hub = match listen {
        Some(_) if !rules.is_empty() => {
            // The alert history outlives the run, beside its other data.
            let path = std::path::Path::new(plan.settings.data_dir.as_deref().unwrap_or("data"))
                .join(format!("alert-history-{}.ndjson", plan.name));
            let hub = eddy_server::Hub::new()
                .with_alert_rules(rules)
                .with_history_file(&path)
                .with_context(|| format!("cannot keep the alert history in {}", path.display()))?;
            Some(Arc::new(hub))
        }
        Some(_) => Some(Arc::new(eddy_server::Hub::new())),
        None => None,
    };
    if let Some(hub) = &hub {
        opts.publisher = Some(hub.clone());
    }
    let running = match eddy_runtime::start(plan, opts) {
        Ok(running) => running,
        Err(e @ eddy_runtime::RunError::Restore { .. }) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e).context("cannot start the pipeline"),
    };
    if let Some(from) = running.restored_from() {
        eprintln!("resuming from {}", from.display());
    }
    let finished = Arc::new(AtomicBool::new(false));
    let server = match (listen, hub) {
        (Some(listen), Some(hub)) => {
            let queues = http_sources
                .iter()
                .filter_map(|&n| {
                    let queue = running
                        .prepared(n)?
                        .get::<eddy_core::ingest::IngestQueue>()?;
                    Some((n.to_string(), queue))
                })
                .collect();
            let controls = plan
                .nodes
                .iter()
                .filter(|n| n.kind == "notify")
                .filter_map(|n| {
                    let control = running
                        .prepared(&n.name)?
                        .get::<eddy_alerts::notify::AlertControl>()?;
                    Some((n.name.clone(), control))
                })
                .collect();
            let rules = plan
                .nodes
                .iter()
                .filter_map(|n| {
                    let control = running
                        .prepared(&n.name)?
                        .get::<eddy_alerts::rule::RuleControl>()?;
                    Some((n.name.clone(), control))
                })
                .collect();
            let status =
                eddy_server::Status::new(plan, running.metrics().clone(), finished.clone())
                    .with_ingest(queues)
                    .with_alert_controls(controls)
                    .with_rule_controls(rules);
            let guard = if access.keys.is_empty() {
                "no authentication: keep it on a trusted address".to_string()
            } else {
                format!("{} API keys; only /healthz is open", access.keys.len())
            };
            match eddy_server::Server::start_with(listen, Arc::new(status), hub, access, tls) {
                Ok(server) => {
                    eprintln!(
                        "serving the dashboard and API at {scheme}://{} ({guard})",
                        server.addr()
                    );
                    Some(server)
                }
                Err(e) => {
                    eprintln!("warning: cannot serve on {listen}: {e}; running without the dashboard (choose another address: `--port`, `[server] listen`)");
                    None
                }
            }
        }
        _ => None,
    };
    let mut meter = Progress::new(running.metrics().clone());
    while !running.is_finished() {
        std::thread::sleep(Duration::from_millis(200));
        if signalled.swap(false, Ordering::SeqCst) {
            // With durable checkpoints, stop with a savepoint (open windows
            // stay open, to be resumed); otherwise flush and stop.
            if running.checkpoint_dir().is_some() {
                eprintln!("taking a savepoint before stopping …");
                match running.stop_with_savepoint(SAVEPOINT_TIMEOUT) {
                    Some(path) => eprintln!("savepoint: {}", path.display()),
                    None => eprintln!("no savepoint could be taken; stopping with a flush"),
                }
            } else {
                running.stop();
            }
        }
        if how.progress {
            meter.maybe_print();
        }
    }
    finished.store(true, Ordering::SeqCst);
    let report = running.wait();
    drop(server);
    span.record("events_read", report.metrics.source_events() as i64);
    span.record("errors", report.errors.total() as i64);
    eprintln!("{}", meter.summary(&report));
    for warning in unrouted_dead_letters(plan, &report) {
        eprintln!("warning: {warning}");
    }
    for e in &report.errors {
        eprintln!("error: {e}");
    }
    if report.errors.dropped() > 0 {
        eprintln!(
            "error: … and {} more errors (every one is counted in the node's errors)",
            report.errors.dropped()
        );
    }
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Who the server admits: the `[server]` keys, read from their
/// environment variables, and the rate limit.
fn access(plan: &Plan) -> Result<eddy_server::Access, String> {
    let Some(server) = &plan.server else {
        return Ok(eddy_server::Access::default());
    };
    let mut keys = Vec::with_capacity(server.api_keys.len());
    for k in &server.api_keys {
        let key = std::env::var(&k.key_env).unwrap_or_default();
        if key.trim().len() < 16 {
            return Err(format!(
                "[server] API key `{}`: the environment variable `{}` must hold the key (at least 16 characters)",
                k.name, k.key_env
            ));
        }
        keys.push(eddy_server::ApiKey {
            name: k.name.clone(),
            key: key.trim().to_string(),
            role: k.role,
            channels: k.channels.clone(),
        });
    }
    let rate = server.rate_limit.map(|r| (r.per_second, r.burst));
    if let Some((per_second, burst)) = rate {
        if per_second <= 0.0 || burst < 1.0 {
            return Err(
                "[server] rate_limit: `per_second` must be above 0 and `burst` at least 1".into(),
            );
        }
    }
    let audit = match &server.audit_log {
        Some(path) => Some(Arc::new(eddy_server::AuditLog::open(path).map_err(
            |e| format!("[server] audit_log: cannot open {}: {e}", path.display()),
        )?)),
        None => None,
    };
    let jwt = match &server.jwt {
        Some(j) => {
            let key = match (&j.secret_env, &j.public_key) {
                (Some(var), None) => {
                    let secret = std::env::var(var).unwrap_or_default();
                    if secret.len() < 32 {
                        return Err(format!(
                            "[server] jwt: the environment variable `{var}` must hold the HS256 secret (at least 32 bytes)"
                        ));
                    }
                    eddy_server::jwt::JwtKey::Hs256(secret.into_bytes())
                }
                (None, Some(path)) => {
                    let pem = std::fs::read(path).map_err(|e| {
                        format!("[server] jwt: cannot read `public_key` {}: {e}", path.display())
                    })?;
                    eddy_server::jwt::JwtKey::rs256_from_pem(&pem).map_err(|e| {
                        format!("[server] jwt: `public_key` {}: {e}", path.display())
                    })?
                }
                _ => {
                    return Err("[server] jwt: give either `secret_env` (HS256) or `public_key` (a PEM file, RS256)".into())
                }
            };
            Some(eddy_server::JwtSettings {
                key,
                issuer: j.issuer.clone(),
                audience: j.audience.clone(),
                role_claim: j.role_claim.clone(),
                leeway_secs: j.leeway_seconds.max(0),
            })
        }
        None => None,
    };
    Ok(eddy_server::Access {
        keys,
        rate,
        audit,
        jwt,
    })
}

/// Dead letters that no node reads: counted, but kept nowhere. Each is
/// worth a warning, since the run otherwise ends as if nothing was lost.
fn unrouted_dead_letters(plan: &Plan, report: &eddy_runtime::RunReport) -> Vec<String> {
    use eddy_core::Output;
    plan.nodes
        .iter()
        .enumerate()
        .filter(|&(i, _)| {
            !plan
                .nodes
                .iter()
                .any(|n| n.inputs.iter().any(|input| input.node == i && input.output == Output::DEAD_LETTERS))
        })
        .filter_map(|(_, n)| {
            let dead = report.metrics.node(&n.name)?.out_id(Output::DEAD_LETTERS);
            (dead > 0).then(|| {
                format!(
                    "{dead} dead letters from `{0}` were not kept: no node reads `{0}.dead_letters` (add a sink with inputs = [\"{0}.dead_letters\"])",
                    n.name
                )
            })
        })
        .collect()
}
