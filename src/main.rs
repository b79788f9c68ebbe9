//! The `refcat` binary: parse the command line, run it, map errors to exit codes.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = refcat::cli::Cli::parse();
    refcat::cli::init_logging(cli.verbose, cli.log_format);
    match cli.run().await {
        Ok(code) => std::process::ExitCode::from(code),
        Err(err) => {
            eprintln!("refcat: {err:#}");
            std::process::ExitCode::from(refcat::cli::exit_code(&err))
        }
    }
}
