//! Parses the command line and hands off; nothing else.

use clap::{CommandFactory, FromArgMatches};
use jitgate::cli::{self, Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let api = match (cli.command.api(), matches.subcommand()) {
        (Some(sub), Some((_, sub_m))) => {
            Some(cli::effective_api_args(&cli.api, &matches, sub, sub_m))
        }
        _ => None,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            cli::note(&format!("error: cannot start the async runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async move {
        match (cli.command, api) {
            (Command::Serve { config, log_format }, _) => {
                jitgate::daemon::run(&config, log_format).await
            }
            (Command::CheckConfig { config }, _) => cli::check_config(&config),
            (Command::Token { action }, _) => cli::token(action),
            (Command::Connect(args), _) => jitgate::proxy::tcp::connect::run(args.into()).await,
            (Command::Completions { shell }, _) => cli::completions(shell),
            (Command::Man { command }, _) => cli::man(command.as_deref()),
            (other, Some(api)) => cli::client_command(api, other).await,
            (_, None) => Err(anyhow::anyhow!(
                "internal: a client command without API options"
            )),
        }
    });
    match result {
        Ok(code) => code,
        // The reader of stdout went away (`| head`): nothing more to say.
        Err(e) if e.downcast_ref::<cli::StdoutClosed>().is_some() => ExitCode::SUCCESS,
        Err(e) => {
            cli::note(&format!("error: {e:#}"));
            ExitCode::from(1)
        }
    }
}
