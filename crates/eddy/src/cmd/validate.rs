//! `eddy validate FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// Arguments of `eddy validate`.
#[derive(Args)]
pub struct ValidateArgs {
    /// The pipeline file.
    file: PathBuf,
}

/// Prints the plan summary (exit 0) or every problem (exit 2).
pub fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    match super::load_plan(&args.file)? {
        Ok(plan) => {
            println!("{}: {plan}", args.file.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(diags) => {
            eprint!("{diags}");
            Ok(ExitCode::from(2))
        }
    }
}
