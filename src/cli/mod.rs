//! The `snip` command line: the server's commands (`serve`, `backup`, offline `import` and
//! `key create`) and a client of a running server's API (`link`, `key`, `import`, `export`,
//! `login`), with shell completions and a man page.
//!
//! The client sends and reads the API's own types (`crate::http::links::CreateRequest`,
//! `crate::http::views::LinkView`, …): there is no second copy of the JSON shapes.

pub mod client;
pub mod commands;
pub mod export;
pub mod import;
pub mod output;
pub mod profile;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{BackupArgs, ServeArgs};

/// Command line of the `snip` binary.
#[derive(Debug, Parser)]
#[command(
    name = "snip",
    version,
    about = "A fast, reliable URL shortener: the server, and a client of its API",
    after_help = "Exit codes: 0 done, 1 failed, 2 usage or input refused, 3 not authorised, \
                  4 not found, 5 conflict, 6 rate limited, 69 server unavailable, 78 unsafe \
                  or unreadable config file, 130 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server until SIGINT/SIGTERM.
    Serve(Box<ServeArgs>),
    /// Manage links on a server.
    #[command(subcommand)]
    Link(LinkCommand),
    /// Manage API keys on a server (admin key), or create one directly in a store.
    #[command(subcommand, alias = "keys")]
    Key(KeyCommand),
    /// Import links from a file: snip's CSV or TSV, or another shortener's export.
    Import(ImportArgs),
    /// Write every link the key may see as CSV or JSON lines.
    Export(ExportArgs),
    /// Save a server and key for later commands (in the user's config directory, mode 0600).
    Login(LoginArgs),
    /// Forget the saved server and key.
    Logout,
    /// Copy the embedded store to a new file, consistently, while the server may run.
    Backup(BackupArgs),
    /// Check that a server is ready to serve redirects (`GET /health/ready`): exit 0 when it
    /// is, 69 when not. Meant for container health checks: by default it asks the address
    /// `serve` listens on (`SNIP_LISTEN`, else 127.0.0.1:8080).
    Health(HealthArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff): `snip man > snip.1`.
    Man,
}

/// Where the server is and which key to use (flags, then `SNIP_SERVER`/`SNIP_KEY`, then the
/// file `snip login` wrote).
#[derive(Debug, Clone, Default, Args)]
pub struct Connection {
    /// The server's base URL, e.g. https://sn.ip
    #[arg(long, env = "SNIP_SERVER")]
    pub server: Option<String>,
    /// The API key
    #[arg(long, env = "SNIP_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Seconds to wait for each answer of the server.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

/// How results are written.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct Format {
    /// One JSON document on stdout (the API's shapes).
    #[arg(long, conflicts_with = "jsonl")]
    pub json: bool,
    /// One JSON object per line (lists and imports).
    #[arg(long)]
    pub jsonl: bool,
}

#[derive(Debug, Subcommand)]
pub enum LinkCommand {
    /// Create a short link.
    Create {
        /// The destination (http or https).
        url: String,
        /// A custom code (3 to 64 of A-Z a-z 0-9 _ -); random when absent.
        #[arg(long)]
        code: Option<String>,
        #[arg(long)]
        title: Option<String>,
        /// A tag (repeat for more).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// When the link stops redirecting: RFC 3339 (2027-01-01T00:00:00Z) or a duration
        /// from now (30d, 12h).
        #[arg(long)]
        expires: Option<String>,
        /// Counted clicks after which the link stops redirecting.
        #[arg(long)]
        max_clicks: Option<i64>,
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        format: Format,
    },
    /// List links, newest first (follows the pages).
    List {
        /// Only links whose code, destination or title contains this.
        #[arg(long)]
        search: Option<String>,
        /// Only links with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// At most this many links (0: all).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        format: Format,
    },
    /// Show one link.
    Show(CodeArgs),
    /// Change a link.
    Edit(EditArgs),
    /// Disable a link (it answers 410 until enabled).
    Disable(CodeArgs),
    /// Enable a disabled link.
    Enable(CodeArgs),
    /// Delete a link (its code is never reissued).
    Rm(CodeArgs),
    /// Click statistics: totals, a chart of the series, top referrers, countries, browsers.
    Stats {
        code: String,
        /// Range start (RFC 3339, or a duration before now: 7d); 30 days before --to.
        #[arg(long)]
        from: Option<String>,
        /// Range end (RFC 3339, or a duration before now); now.
        #[arg(long)]
        to: Option<String>,
        /// `hour` or `day`.
        #[arg(long, value_parser = ["hour", "day"])]
        interval: Option<String>,
        /// Count bots in the series and tables.
        #[arg(long)]
        include_bots: bool,
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        format: Format,
    },
    /// The link's QR code: drawn in the terminal, or saved with --out (.svg or .png).
    Qr {
        code: String,
        /// Write the image here (its extension picks SVG or PNG).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Width and height of the image in pixels (32 to 2048).
        #[arg(long, default_value_t = 512)]
        size: u32,
        #[command(flatten)]
        conn: Connection,
    },
}

/// Flags of `snip link edit`.
#[derive(Debug, Args)]
pub struct EditArgs {
    pub code: String,
    #[arg(long)]
    pub url: Option<String>,
    #[arg(long, conflicts_with = "no_title")]
    pub title: Option<String>,
    /// Remove the title.
    #[arg(long)]
    pub no_title: bool,
    /// Replace the tags (repeat for more).
    #[arg(long = "tag", conflicts_with = "no_tags")]
    pub tags: Vec<String>,
    /// Remove every tag.
    #[arg(long)]
    pub no_tags: bool,
    /// RFC 3339 or a duration from now (30d, 12h).
    #[arg(long, conflicts_with = "no_expiry")]
    pub expires: Option<String>,
    /// Never expire.
    #[arg(long)]
    pub no_expiry: bool,
    #[arg(long, conflicts_with = "no_max_clicks")]
    pub max_clicks: Option<i64>,
    /// No click limit.
    #[arg(long)]
    pub no_max_clicks: bool,
    #[command(flatten)]
    pub conn: Connection,
    #[command(flatten)]
    pub format: Format,
}

/// A command on one link.
#[derive(Debug, Args)]
pub struct CodeArgs {
    pub code: String,
    #[command(flatten)]
    pub conn: Connection,
    #[command(flatten)]
    pub format: Format,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key; its secret is printed once. With --database, written straight into a
    /// store (works while the server runs: the way back in when every admin key is lost).
    Create {
        /// `admin` or `user`.
        #[arg(long, value_parser = ["admin", "user"])]
        role: String,
        /// A name for the key, 1 to 100 printable characters.
        #[arg(long, default_value = "created with snip key create")]
        name: String,
        /// Write into this store (same syntax as `serve --database`) instead of asking a
        /// server.
        #[arg(long)]
        database: Option<String>,
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        format: Format,
    },
    /// List keys (without secrets).
    List {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        format: Format,
    },
    /// Revoke a key (its links stay).
    Revoke {
        id: String,
        /// Revoke it even when it is the last active admin key.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        format: Format,
    },
}

/// Flags of `snip import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file; `-` reads standard input.
    pub file: PathBuf,
    /// What the file is: tsv (CODE<TAB>URL lines), csv (snip's CSV, a header naming the
    /// columns), or another shortener's export: shlink, yourls, kutt, bitly.
    #[arg(long, default_value = "tsv", value_parser = ["tsv", "csv", "shlink", "yourls", "kutt", "bitly"])]
    pub from: String,
    /// Write straight into this store (same syntax as `serve --database`; no key needed)
    /// instead of through a server's API.
    #[arg(long, env = "SNIP_DATABASE")]
    pub database: Option<String>,
    /// Rejected rows are written here as CSV (line, reason, row) [default: FILE.rejected.csv,
    /// or snip-import.rejected.csv for standard input].
    #[arg(long)]
    pub rejected: Option<PathBuf>,
    /// Import nothing, and exit 1, when any row breaks a rule (checked before writing).
    #[arg(long)]
    pub strict: bool,
    /// Links per batch: per request over the API (at most 1000, and within 64 KiB; default
    /// 500), per transaction into a store (default 50000).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Never show a progress bar (it is shown only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub conn: Connection,
    #[command(flatten)]
    pub format: Format,
}

/// Flags of `snip export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// `csv` (re-importable with `snip import --from csv`, safe to open in a spreadsheet)
    /// or `jsonl` (the API's link objects).
    #[arg(long, default_value = "csv", value_parser = ["csv", "jsonl"])]
    pub format: String,
    /// Add each link's all-time clicks (the `clicks` column).
    #[arg(long)]
    pub with_stats: bool,
    /// Write here instead of standard output.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Never show a progress bar (it is shown only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub conn: Connection,
}

/// Flags of `snip login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The server's base URL.
    #[arg(long)]
    pub server: String,
    /// The API key; read from standard input when absent (so it stays out of the shell's
    /// history).
    #[arg(long)]
    pub key: Option<String>,
    /// Seconds to wait for the server's answer.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

/// Flags of `snip health`.
#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// The server's base URL. [default: http://ADDRESS from SNIP_LISTEN (0.0.0.0 and :: are
    /// asked on loopback), else http://127.0.0.1:8080]
    #[arg(long)]
    pub server: Option<String>,
    /// Only check that the process answers (`/health/live`), not that it can serve.
    #[arg(long)]
    pub live: bool,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
}

/// Runs a command other than `serve`; the process's exit code.
pub fn run(command: Command) -> std::process::ExitCode {
    commands::run(command)
}
