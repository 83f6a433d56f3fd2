//! The `snip` binary: parse the command line, set up logging, run the library.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use snip::config::{Cli, Command};
use snip::startup::Application;

fn main() -> ExitCode {
    let Cli { command } = Cli::parse();
    let args = match command {
        Command::Serve(args) => args,
        Command::Import(args) => return import(args),
        Command::Backup(args) => return backup(args),
        Command::Keys(snip::config::KeysCommand::Create(args)) => return create_key(args),
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

fn import(args: snip::config::ImportArgs) -> ExitCode {
    if let Err(e) = args.database() {
        eprintln!("snip import: {e:#}");
        return ExitCode::from(2);
    }
    snip::telemetry::init_logging(snip::config::LogFormat::Pretty, "warn");
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(snip::import::run(&args)));
    match result {
        Ok(r) if r.refused => {
            eprintln!(
                "snip import: nothing imported: {} lines rejected (listed above) and --strict \
                 was given",
                r.rejected
            );
            ExitCode::FAILURE
        }
        Ok(r) => {
            println!(
                "imported {} links, {} codes already taken, {} lines rejected",
                r.imported, r.taken, r.rejected
            );
            if r.rejected > 0 {
                eprintln!(
                    "snip import: warning: {} lines rejected (listed above) and skipped; \
                     --strict imports nothing when any line is rejected",
                    r.rejected
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("snip import: {e:#}");
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

/// `snip keys create`: a key written straight into the store, printed once on stdout.
fn create_key(args: snip::config::KeysCreateArgs) -> ExitCode {
    let (role, name, database) = match args
        .role_and_name()
        .and_then(|(role, name)| Ok((role, name, snip::config::Database::parse(&args.database)?)))
    {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("snip keys create: {e:#}");
            return ExitCode::from(2);
        }
    };
    let secret = snip::domain::ApiKeySecret::generate();
    let created = match &database {
        snip::config::Database::Sqlite(path) => {
            snip::store::sqlite::create_key_beside_server(path, &name, role, &secret.hash())
        }
        snip::config::Database::Postgres(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| {
                runtime.block_on(async {
                    let options =
                        snip::store::StoreOptions::one_shot(std::time::Duration::from_secs(10), 1);
                    let store = snip::store::open(&database, &options).await?;
                    Ok(store.create_key(name.clone(), role, secret.hash()).await?)
                })
            }),
    };
    match created {
        Ok(key) => {
            eprintln!(
                "created {} key {} ({:?}); its secret is printed once, below",
                role.as_str(),
                key.id,
                key.name
            );
            println!("{}", secret.expose());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("snip keys create: {e:#}");
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
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
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
