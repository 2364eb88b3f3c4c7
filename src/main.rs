//! Parses the command line and hands off; nothing else.

use clap::Parser;
use jitgate::cli::{self, Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve { config, log_format } => {
                jitgate::daemon::run(&config, log_format).await
            }
            Command::CheckConfig { config } => cli::check_config(&config),
            Command::Token { action } => cli::token(action),
            Command::Connect(args) => jitgate::proxy::tcp::connect::run(args).await,
            other => cli::client_command(cli.api, other).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
