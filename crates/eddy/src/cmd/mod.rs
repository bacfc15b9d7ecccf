//! One module per subcommand.

pub mod alerts;
pub mod bench;
pub mod checkpoints;
pub mod demo;
pub mod detect;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod run;
pub mod validate;

use std::path::Path;

use anyhow::Context;
use eddy_runtime::Plan;

/// Reads and compiles a pipeline file; `Err(text)` carries the rendered
/// diagnostics (`FILE:LINE:COL: message` + hint lines), including a file that
/// is not UTF-8. A leading byte-order mark is ignored.
pub fn load_plan(path: &Path) -> anyhow::Result<Result<Plan, String>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read pipeline file {}", path.display()))?;
    let name = path.display().to_string();
    Ok(match eddy_core::config::config_text(&name, &bytes) {
        Ok(text) => compile(&name, text),
        Err(diags) => Err(diags.to_string()),
    })
}

/// Longest `--duration` accepted, in seconds (about 31 years): beyond it a
/// run is unbounded in all but name, and the clock arithmetic would overflow.
const MAX_DURATION_SECS: f64 = 1e9;

/// Parses a `--duration` in seconds: a finite, non-negative number.
pub fn parse_seconds(text: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(0.0..=MAX_DURATION_SECS).contains(&secs) {
        return Err(format!(
            "`{text}` is not a number of seconds between 0 and {MAX_DURATION_SECS:e}; \
             leave --duration out to run until the sources end or Ctrl-C"
        ));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Compiles pipeline text with the process environment's `EDDY_` overrides.
pub fn compile(name: &str, text: &str) -> Result<Plan, String> {
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("EDDY_"))
        .collect();
    Plan::compile(name, text, &env).map_err(|d| d.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_finite_non_negative_seconds() {
        assert_eq!(
            parse_seconds("1.5"),
            Ok(std::time::Duration::from_millis(1500))
        );
        assert_eq!(parse_seconds("0"), Ok(std::time::Duration::ZERO));
        for bad in ["inf", "NaN", "-1", "1e20", "-0.5", "soon", ""] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }
}
