//! `redislock`: a distributed flock(1) on Redis. The subcommands arrive with the CLI issue;
//! for now the binary says so and exits with the usage code.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "redislock {}: the command-line tool is not built yet; use the ac-redislock library",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}
