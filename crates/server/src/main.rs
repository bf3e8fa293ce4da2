//! The `greenlight` binary: parse the command line, set up tracing, run.

use clap::Parser;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = greenlight::cli::Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match greenlight::cli::run(cli, &mut stdout) {
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("greenlight: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
