//! The `refcat` binary: parse the command line, run it, map errors to exit codes.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = refcat::cli::Cli::parse();
    let log_format = cli.log_format;
    refcat::cli::init_logging(cli.verbose, log_format);
    match cli.run().await {
        Ok(code) => std::process::ExitCode::from(code),
        Err(err) => {
            refcat::cli::report_failure(&err, log_format);
            std::process::ExitCode::from(refcat::cli::exit_code(&err))
        }
    }
}
