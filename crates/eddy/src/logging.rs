//! Where the libraries' `tracing` events go: one line each on stderr,
//! at the level `EDDY_LOG` names (`error`, `warn`, `info` (default),
//! `debug`, `trace`, `off`).

use tracing::level_filters::LevelFilter;

/// The variable that sets the log level.
const LEVEL_VAR: &str = "EDDY_LOG";

/// Installs the stderr subscriber for the whole process. An unknown level
/// keeps the default and says so.
pub fn init() {
    let raw = std::env::var(LEVEL_VAR).ok();
    let parsed = raw.as_deref().map(|v| v.trim().parse::<LevelFilter>());
    let level = match &parsed {
        Some(Ok(level)) => *level,
        _ => LevelFilter::INFO,
    };
    let installed = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .with_max_level(level)
        .try_init()
        .is_ok();
    if installed {
        if let (Some(Err(_)), Some(raw)) = (parsed, raw) {
            tracing::warn!(
                value = %raw,
                "{LEVEL_VAR} is not one of error, warn, info, debug, trace, off; using info"
            );
        }
    }
}
