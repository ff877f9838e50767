//! `redislock`: a distributed flock(1) on Redis. See `redislock --help` and the README.

mod child;
mod cli;
mod commands;
mod duration;
mod exit;
mod output;
mod report;
mod run;
mod signals;
mod spinner;
mod status;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            report::print_error(&err);
            return exit::Exit::Backend.into();
        }
    };
    runtime.block_on(commands::dispatch(cli)).into()
}
