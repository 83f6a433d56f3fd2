//! A snip server in this process for the examples under `bench/` (`stats_year`, `dashboard`):
//! `serve` on a port of loopback with the given database and admin key, stopped through the
//! returned sender (the task ends once it has stopped).

use clap::Parser;
use snip::cli::{Cli, Command};
use snip::startup::Application;

/// Starts `snip serve` on `127.0.0.1:0` with `database`, the admin key `key` and `extra`
/// flags; returns its base URL, the stop signal and the task that runs it.
pub async fn start(
    database: &str,
    key: &str,
    extra: &[&str],
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let mut argv = vec![
        "snip",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database",
        database,
        "--admin-key",
        key,
        "--log-format",
        "json",
    ];
    argv.extend_from_slice(extra);
    let cli = Cli::try_parse_from(argv).expect("valid flags");
    let Command::Serve(args) = cli.command else {
        unreachable!("serve was parsed")
    };
    let app = Application::build(args.load().expect("valid settings"))
        .await
        .expect("the server starts");
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        app.run_until_stopped(async {
            let _ = stopped.await;
        })
        .await
        .expect("the server runs");
    });
    (base, stop, task)
}
