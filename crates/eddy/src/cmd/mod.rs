//! One module per subcommand.

pub mod bench;
pub mod demo;
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

/// Compiles pipeline text with the process environment's `EDDY_` overrides.
pub fn compile(name: &str, text: &str) -> Result<Plan, String> {
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("EDDY_"))
        .collect();
    Plan::compile(name, text, &env).map_err(|d| d.to_string())
}
