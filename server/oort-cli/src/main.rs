//! `oort`: the command-line client of Oort's gRPC API.
//!
//! This file only parses the command line, runs the command and turns its
//! outcome into an exit code; see [`error`] for the codes.

mod cli;
mod client;
mod commands;
mod error;
mod output;
mod rule_file;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::error::Error;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // clap itself exits with 2 on bad usage and 0 for --help/--version.
    let cli = Cli::parse();
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is_broken_pipe() => ExitCode::SUCCESS,
        Err(error) => {
            report(&error);
            error.exit_code()
        }
    }
}

/// `error: ...` (and a hint, if any) on stderr; stdout stays clean for `--json`.
fn report(error: &Error) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {error}");
    if let Some(hint) = error.hint() {
        let _ = writeln!(stderr, "{hint}");
    }
}
