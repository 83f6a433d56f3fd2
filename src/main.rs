//! The `snip` binary: parse the command line, set up logging, run the library.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use snip::cli::{Cli, Command};
use snip::startup::Application;

/// mimalloc instead of glibc's malloc: a redirect makes several small allocations (the
/// request's and the response's header maps, the `Location` bytes), on which glibc spent about
/// 1,100 instructions per request and mimalloc about 600; the server's CPU per hot redirect
/// fell 5 % (docs/benchmarks.md, "2026-12-01 (late): mimalloc, …").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    // The handlers are installed before the address is printed: a SIGTERM sent as soon as it
    // appears must stop the server gracefully, not kill it.
    let stop = shutdown_signal()?;
    if let Some(key) = &app.generated_admin_key {
        // One write, so that a log collector reading stdout and stderr apart (podman, docker)
        // never splits the line with the key.
        let message = format!(
            "snip: created admin API key: {key}\n\
             snip: use it as 'Authorization: Bearer {key}'. It is shown only this once.\n"
        );
        std::io::stderr().write_all(message.as_bytes())?;
    }
    if let Some(admin) = app.admin_addr() {
        println!("admin listener on http://{admin} (health details, metrics)");
    }
    let addr = app.local_addr();
    println!("listening on http://{addr}");
    std::io::stdout().flush()?;
    // Under systemd (`Type=notify`) the unit is started only now; elsewhere this does nothing.
    notify_service_manager(sd_notify::NotifyState::Ready);
    app.run_until_stopped(async move {
        stop.await;
        notify_service_manager(sd_notify::NotifyState::Stopping);
    })
    .await
}

/// Tells systemd (when it started us with `NOTIFY_SOCKET`) about a state change; a failure is
/// logged, never fatal.
fn notify_service_manager(state: sd_notify::NotifyState) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!(error = %e, "could not notify the service manager");
    }
}

/// Resolves on SIGINT or SIGTERM; both handlers are installed when this returns.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
