//! Where the libraries' `tracing` events go: one line each on stderr,
//! at the level `EDDY_LOG` names (`error`, `warn`, `info` (default),
//! `debug`, `trace`, `off`), as text or, with `--log-format json`, as one
//! JSON object per line (`timestamp`, `level`, `fields.message` and the
//! event's other fields) for log collectors.

use clap::ValueEnum;
use tracing::level_filters::LevelFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Plain text, one line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The variable that sets the log level.
const LEVEL_VAR: &str = "EDDY_LOG";

/// Installs the stderr subscriber for the whole process. An unknown level
/// keeps the default and says so.
pub fn init(format: LogFormat) {
    let raw = std::env::var(LEVEL_VAR).ok();
    let parsed = raw.as_deref().map(|v| v.trim().parse::<LevelFilter>());
    let level = match &parsed {
        Some(Ok(level)) => *level,
        _ => LevelFilter::INFO,
    };
    let text = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .with_max_level(level);
    let installed = match format {
        LogFormat::Text => text.try_init(),
        LogFormat::Json => text.json().try_init(),
    }
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
