//! The `snip` binary: parse the command line, set up logging, run the library.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use snip::cli::{Cli, Command};
use snip::startup::Application;

fn main() -> ExitCode {
    let Cli { command } = Cli::parse();
    let args = match command {
        Command::Serve(args) => args,
        Command::Backup(args) => return backup(args),
        other => return snip::cli::run(other),
    };
    let settings = match args.load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("snip: {e:#}");
            return ExitCode::from(2);
        }
    };
    snip::telemetry::init_logging(settings.log_format, "info");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("snip: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "snip stopped");
            eprintln!("snip: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn backup(args: snip::config::BackupArgs) -> ExitCode {
    let source = match args.source() {
        Ok(source) => source,
        Err(e) => {
            eprintln!("snip backup: {e:#}");
            return ExitCode::from(2);
        }
    };
    match snip::backup::run(&source, &args.dest) {
        Ok(r) => {
            println!(
                "backed up {} to {} ({} links, {} bytes)",
                source.display(),
                r.dest.display(),
                r.links,
                r.bytes
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("snip backup: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: snip::config::Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    if let Some(key) = &app.generated_admin_key {
        eprintln!(
            "snip: created admin API key: {key}\n\
             snip: use it as 'Authorization: Bearer {key}'. It is shown only this once."
        );
    }
    if let Some(admin) = app.admin_addr() {
        println!("admin listener on http://{admin} (health details, metrics)");
    }
    let addr = app.local_addr();
    println!("listening on http://{addr}");
    std::io::stdout().flush()?;
    app.run_until_stopped(shutdown_signal()).await
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_ok() {
            return;
        }
        std::future::pending::<()>().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
