//! Typed settings, layered defaults → config file → `SNIP_*` environment → flags.
//!
//! clap reads flags and their environment variables (flags win); every value it leaves unset is
//! taken from the optional TOML file, then from the defaults here. The result is one validated
//! [`Settings`] that the rest of the crate reads and never re-parses.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;

/// The store `serve` (and the offline commands) use when none is given.
pub const DEFAULT_DATABASE: &str = "sqlite://snip-data/snip.db";

/// Flags of `snip backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The store to copy (same syntax as `serve --database`; SQLite only: on PostgreSQL use
    /// `pg_dump` or `pg_basebackup`).
    #[arg(
        long,
        env = "SNIP_DATABASE",
        default_value = "sqlite://snip-data/snip.db"
    )]
    pub database: String,
    /// The file to write; it must not exist yet.
    pub dest: PathBuf,
}

impl BackupArgs {
    /// The SQLite file to copy; anything else is a bad flag.
    pub fn source(&self) -> anyhow::Result<PathBuf> {
        match Database::parse(&self.database)? {
            Database::Sqlite(path) => Ok(path),
            Database::Postgres(_) => bail!(
                "snip backup copies the embedded store; back up PostgreSQL with pg_dump or \
                 pg_basebackup (see docs/operations.md)"
            ),
        }
    }
}

/// Flags of `snip serve`. Every field is optional so that the config file and defaults can fill
/// what neither a flag nor a variable set.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeArgs {
    /// TOML config file; its keys are the flag names without `--`. Precedence: flags, then
    /// environment variables, then this file, then the defaults shown here.
    #[arg(long, env = "SNIP_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to bind (`HOST:PORT`); port 0 picks a free port. [default: 127.0.0.1:8080]
    #[arg(long, env = "SNIP_LISTEN")]
    pub listen: Option<String>,
    /// Store: `sqlite://RELATIVE/PATH`, `sqlite:///ABSOLUTE/PATH` or `postgres://…`.
    /// [default: sqlite://snip-data/snip.db]
    #[arg(long, env = "SNIP_DATABASE")]
    pub database: Option<String>,
    /// Public origin (`https://sn.ip`, no path) used to build `short_url`. [default:
    /// http://<bound address>]
    #[arg(long, env = "SNIP_BASE_URL")]
    pub base_url: Option<String>,
    /// An API key (at least 32 characters) ensured to exist with the admin role at start-up.
    /// Without it, a store with no active key gets one generated and printed once on stderr.
    #[arg(long, env = "SNIP_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// How often buffered click counts are written (`250ms`, `5s`). [default: 1s]
    #[arg(long, env = "SNIP_CLICK_FLUSH_INTERVAL")]
    pub click_flush_interval: Option<String>,
    /// How often each link's buffered clicks are folded into the statistics tables (its hours,
    /// breakdowns and visitors); until then they are journalled. [default: 60s]
    #[arg(long, env = "SNIP_CLICK_FOLD_INTERVAL")]
    pub click_fold_interval: Option<String>,
    /// Log format. [default: pretty on a terminal, else json]
    #[arg(long, env = "SNIP_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// How clicks are counted. [default: buffered]
    #[arg(long, env = "SNIP_CLICK_MODE")]
    pub click_mode: Option<ClickMode>,
    /// PostgreSQL read replicas for the redirect path (repeatable, or comma-separated).
    #[arg(long, env = "SNIP_DATABASE_REPLICAS", value_delimiter = ',')]
    pub database_replica: Option<Vec<String>>,
    /// Redis shared second-level cache between instances (`redis://…`).
    #[arg(long, env = "SNIP_REDIS")]
    pub redis: Option<String>,
    /// PostgreSQL only: how click flushes commit (`local` = `one`, `quorum`, `all`, or `off`).
    /// [default: local]
    #[arg(long, env = "SNIP_CLICK_DURABILITY")]
    pub click_durability: Option<ClickDurability>,
    /// PostgreSQL only: how writes commit, `LEVEL` for links and keys or `links=LEVEL,clicks=LEVEL`
    /// (one, quorum, all). [default: the server's synchronous_commit for links and keys, one
    /// for clicks]
    #[arg(long, env = "SNIP_WRITE_CONSISTENCY")]
    pub write_consistency: Option<String>,
    /// How long an instance may serve a cached redirect without re-reading it while change
    /// notifications from other instances flow (the backstop when they do not).
    /// [default: 60s]
    #[arg(long, env = "SNIP_CACHE_TTL")]
    pub cache_ttl: Option<String>,
    /// PostgreSQL connections per pool (primary, and each replica). [default: 16]
    #[arg(long, env = "SNIP_DATABASE_POOL_SIZE")]
    pub database_pool_size: Option<usize>,
    /// Embedded store: reader threads, each with its own connection: the reads that can wait on
    /// the disk at once (more for a store larger than memory on a disk that serves many reads in
    /// parallel). [default: 4]
    #[arg(long, env = "SNIP_SQLITE_READERS")]
    pub sqlite_readers: Option<usize>,
    /// CIDRs whose X-Forwarded-For / Forwarded headers are believed (comma-separated).
    #[arg(long, env = "SNIP_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,
    /// Request header carrying an ISO country code set by a trusted CDN/proxy (e.g. CF-IPCountry).
    #[arg(long, env = "SNIP_COUNTRY_HEADER")]
    pub country_header: Option<String>,
    /// MaxMind-format (.mmdb) country database.
    #[arg(long, env = "SNIP_GEOIP_DB")]
    pub geoip_db: Option<PathBuf>,
    /// Age after which hourly click counts are rolled up into daily ones. [default: 35d]
    #[arg(long, env = "SNIP_HOURLY_STATS_RETENTION")]
    pub hourly_stats_retention: Option<String>,
    /// Status of a redirect. [default: 302]
    #[arg(long, env = "SNIP_REDIRECT_STATUS",
          value_parser = clap::builder::TypedValueParser::map(
              clap::builder::PossibleValuesParser::new(["301", "302", "307", "308"]),
              |s| s.parse::<u16>().expect("one of the possible values")))]
    pub redirect_status: Option<u16>,
    /// Length of random codes, 1–32. [default: 7]
    #[arg(long, env = "SNIP_CODE_LENGTH")]
    pub code_length: Option<usize>,
    /// Entries in the in-process redirect cache; 0 disables it. [default: 100000]
    #[arg(long, env = "SNIP_CACHE_CAPACITY")]
    pub cache_capacity: Option<usize>,
    /// How long an unknown code is remembered as unknown. [default: 5s]
    #[arg(long, env = "SNIP_NEGATIVE_CACHE_TTL")]
    pub negative_cache_ttl: Option<String>,
    /// API requests per second per API key (burst of the same size); 0 turns limiting off.
    /// [default: 1000]
    #[arg(long, env = "SNIP_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// How long a request waits for the store before answering 503. [default: 5s]
    #[arg(long, env = "SNIP_STORE_TIMEOUT")]
    pub store_timeout: Option<String>,
    /// How long graceful shutdown waits for in-flight requests. [default: 10s]
    #[arg(long, env = "SNIP_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Option<String>,
    /// Time a client has to send a request's headers, from the connection's start or the end
    /// of its previous response (so also the keep-alive idle timeout); then the connection is
    /// closed. [default: 10s]
    #[arg(long, env = "SNIP_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<String>,
    /// Time a client has to send a whole request body (API requests); then 408.
    /// [default: 10s]
    #[arg(long, env = "SNIP_REQUEST_BODY_TIMEOUT")]
    pub request_body_timeout: Option<String>,
    /// Largest request line plus headers, in bytes (at least 8192); more is answered 431.
    /// [default: 16384]
    #[arg(long, env = "SNIP_MAX_HEADER_BYTES")]
    pub max_header_bytes: Option<usize>,
    /// A second address (`HOST:PORT`, meant for a private network) serving `/health` with its
    /// details to anyone, `/health/live`, `/health/ready` and `/metrics`; `/metrics` then leaves
    /// the public listener.
    #[arg(long, env = "SNIP_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,
    /// File of destination hosts and domains to refuse (one per line, `#` comments; a domain
    /// covers its subdomains): new links to them answer 422, existing ones 410. Reloaded on
    /// SIGHUP and by `POST /api/v1/deny-list/reload`.
    #[arg(long, env = "SNIP_DENY_LIST")]
    pub deny_list: Option<PathBuf>,
    /// `Referrer-Policy` sent with redirects: `no-referrer`, `origin`, `strict-origin`,
    /// `same-origin`, `strict-origin-when-cross-origin`, … or `none` to send none and let the
    /// browser's own policy decide. [default: none]
    #[arg(long, env = "SNIP_REDIRECT_REFERRER_POLICY")]
    pub redirect_referrer_policy: Option<String>,
    /// Failed authentications (unknown or revoked API keys) allowed per client address and
    /// minute; past it, that address gets 429 until the minute is over. 0 turns it off.
    /// [default: 20]
    #[arg(long, env = "SNIP_FAILED_AUTH_LIMIT")]
    pub failed_auth_limit: Option<u32>,
    /// QR images rendered at once, on threads that never serve redirects; more requests wait
    /// (up to 5 s, then 503). [default: half the CPU cores, at least 1]
    #[arg(long, env = "SNIP_QR_CONCURRENCY")]
    pub qr_concurrency: Option<usize>,
    /// Client connections served at once; more are answered 503 and closed. Lowered at start
    /// to what the open-file limit allows (with a warning). [default: 10000]
    #[arg(long, env = "SNIP_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
}

/// Limits on what one client connection can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time allowed to send a request's headers, counted from the connection's start or from
    /// the end of the previous response (so it is also the keep-alive idle timeout).
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers) in bytes; more is answered 431.
    pub max_header_bytes: usize,
    /// Open connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
}

/// The smallest header cap hyper can work with (its read buffer's minimum).
pub const MIN_HEADER_BYTES: usize = 8192;

/// How clicks reach the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClickMode {
    /// Counted in memory, written in batches every flush interval (the buffered view counter).
    Buffered,
    /// Each click committed before its redirect is answered (an exact counter).
    Exact,
    /// No click statistics (privacy, or to measure what counting costs). Clicks of links with
    /// `max_clicks` are still buffered and flushed, so their limits stay exact across restarts.
    Off,
}

impl ClickMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ClickMode::Buffered => "buffered",
            ClickMode::Exact => "exact",
            ClickMode::Off => "off",
        }
    }
}

/// Where the links live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// The embedded store: a file path.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (URL form; several hosts allowed).
    Postgres(Dsn),
}

impl Database {
    pub fn parse(raw: &str) -> anyhow::Result<Database> {
        if is_postgres_url(raw) {
            return Ok(Database::Postgres(Dsn::new(raw)));
        }
        sqlite_path(raw).map(Database::Sqlite)
    }

    /// The embedded store's file (`None` for PostgreSQL, which keeps no data on this machine).
    pub fn local_file(&self) -> Option<&std::path::Path> {
        match self {
            Database::Sqlite(path) => Some(path),
            Database::Postgres(_) => None,
        }
    }

    /// The backend's name, for health checks and logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgres",
        }
    }
}

fn is_postgres_url(raw: &str) -> bool {
    raw.starts_with("postgres://") || raw.starts_with("postgresql://")
}

/// How click writes commit on PostgreSQL (`synchronous_commit` of their transactions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClickDurability {
    /// Flushed to the primary's disk, not waiting for standbys (the level ONE).
    #[value(alias = "one")]
    #[serde(alias = "one")]
    Local,
    /// Asynchronous commit: the last flushes may be lost if the primary crashes.
    Off,
    /// On the synchronous standbys' disks too (`synchronous_commit=on`).
    Quorum,
    /// Applied on the synchronous standbys (`synchronous_commit=remote_apply`).
    All,
}

/// The design's tunable consistency levels (ONE, QUORUM, ALL) of a write on PostgreSQL, as the
/// `synchronous_commit` its transaction commits with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Consistency {
    /// On the primary's disk (`local`): lost if the primary's disk is, or on a failover to a
    /// standby that had not received it.
    One,
    /// On the disks of the synchronous standbys the server names (`on`): survives the loss of
    /// the primary.
    Quorum,
    /// Applied on the synchronous standbys (`remote_apply`): a read from one of them sees it.
    All,
}

impl Consistency {
    /// The `synchronous_commit` value of this level.
    pub fn synchronous_commit(self) -> &'static str {
        match self {
            Consistency::One => "local",
            Consistency::Quorum => "on",
            Consistency::All => "remote_apply",
        }
    }
}

impl From<Consistency> for ClickDurability {
    fn from(c: Consistency) -> Self {
        match c {
            Consistency::One => ClickDurability::Local,
            Consistency::Quorum => ClickDurability::Quorum,
            Consistency::All => ClickDurability::All,
        }
    }
}

/// `--write-consistency` (`LEVEL` for links and keys, or a list of `links=LEVEL`,
/// `clicks=LEVEL`) with `--click-durability`: the level of link and key writes (`None`: the
/// server's `synchronous_commit`) and how click flushes commit.
fn consistency(
    raw: Option<&str>,
    clicks: Option<ClickDurability>,
) -> anyhow::Result<(Option<Consistency>, ClickDurability)> {
    use clap::ValueEnum;
    let (mut links, mut click_level) = (None, None);
    for part in raw.unwrap_or_default().split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        let (kind, level) = part.split_once('=').unwrap_or(("links", part));
        let level = Consistency::from_str(level.trim(), true).map_err(|_| {
            anyhow::anyhow!("--write-consistency: {level:?} is not a level (one, quorum, all)")
        })?;
        match kind.trim() {
            "links" => links = Some(level),
            "clicks" => click_level = Some(level),
            other => anyhow::bail!("--write-consistency: {other:?} is not a kind (links, clicks)"),
        }
    }
    let clicks = match (click_level, clicks) {
        (Some(_), Some(_)) => anyhow::bail!(
            "--write-consistency clicks=… and --click-durability both set how clicks commit: keep one"
        ),
        (Some(level), None) => level.into(),
        (None, set) => set.unwrap_or(ClickDurability::Local),
    };
    Ok((links, clicks))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object a line.
    Json,
}

/// A connection URL (PostgreSQL, Redis): its `Debug` and `Display` hide the password, so
/// that no log line, error or `{:?}` of the settings shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Dsn(String);

impl Dsn {
    pub fn new(url: impl Into<String>) -> Self {
        Dsn(url.into())
    }

    /// The URL itself, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password replaced by `***` (only its scheme, or `…`, when it does not
    /// parse as a URL: it may hold a password in another form).
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            Ok(_) => self.0.clone(),
            Err(_) => match self.0.split_once("://") {
                Some((scheme, _)) => format!("{scheme}://…"),
                None => "…".into(),
            },
        }
    }
}

impl std::fmt::Debug for Dsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl std::fmt::Display for Dsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A secret whose `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Validated settings of a running server.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    pub database: Database,
    /// PostgreSQL read replicas (URLs) for the redirect path.
    pub database_replicas: Vec<Dsn>,
    pub database_pool_size: usize,
    /// SQLite reader threads.
    pub sqlite_readers: usize,
    /// Redis URL of the shared second-level cache.
    pub redis: Option<Dsn>,
    pub click_durability: ClickDurability,
    /// PostgreSQL: the level link and key writes commit at (`None`: the server's setting).
    pub write_consistency: Option<Consistency>,
    /// Staleness bound of cached redirects when change notifications may have been missed.
    pub cache_ttl: Duration,
    /// Proxies whose forwarding headers are believed (parsed once, here).
    pub trusted_proxies: crate::analytics::client::TrustedProxies,
    pub country_header: Option<String>,
    pub geoip_db: Option<PathBuf>,
    pub hourly_stats_retention: Duration,
    /// Explicit public origin; `None` means "derive from the bound address".
    pub base_url: Option<url::Url>,
    pub admin_key: Option<Secret>,
    pub click_flush_interval: Duration,
    pub click_fold_interval: Duration,
    pub log_format: LogFormat,
    pub click_mode: ClickMode,
    pub redirect_status: u16,
    pub code_length: usize,
    pub cache_capacity: usize,
    pub negative_cache_ttl: Duration,
    pub rate_limit: u32,
    pub store_timeout: Duration,
    pub shutdown_timeout: Duration,
    /// Header-read (and keep-alive idle) timeout, header cap and connection cap.
    pub connections: ConnectionLimits,
    pub request_body_timeout: Duration,
    pub qr_concurrency: usize,
    pub failed_auth_limit: u32,
    /// `Referrer-Policy` of redirects, when one is sent.
    pub redirect_referrer_policy: Option<&'static str>,
    pub deny_list: Option<PathBuf>,
    /// The operators' listener (`--admin-listen`), if any.
    pub admin_listen: Option<String>,
}

fn duration(name: &str, value: Option<String>, default: &str) -> anyhow::Result<Duration> {
    let raw = value.unwrap_or_else(|| default.to_string());
    humantime::parse_duration(&raw).with_context(|| format!("--{name}: invalid duration {raw:?}"))
}

impl ServeArgs {
    /// Fills unset values from the config file (if any), then validates into [`Settings`].
    pub fn load(self) -> anyhow::Result<Settings> {
        let merged = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                let file: ServeArgs = toml::from_str(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?;
                self.or(file)
            }
            None => self,
        };
        merged.resolve()
    }

    /// `self` wins field by field; `other` fills the gaps.
    fn or(self, other: ServeArgs) -> ServeArgs {
        ServeArgs {
            config: self.config,
            listen: self.listen.or(other.listen),
            database: self.database.or(other.database),
            base_url: self.base_url.or(other.base_url),
            admin_key: self.admin_key.or(other.admin_key),
            click_flush_interval: self.click_flush_interval.or(other.click_flush_interval),
            click_fold_interval: self.click_fold_interval.or(other.click_fold_interval),
            log_format: self.log_format.or(other.log_format),
            click_mode: self.click_mode.or(other.click_mode),
            database_replica: self.database_replica.or(other.database_replica),
            redis: self.redis.or(other.redis),
            click_durability: self.click_durability.or(other.click_durability),
            write_consistency: self.write_consistency.or(other.write_consistency),
            cache_ttl: self.cache_ttl.or(other.cache_ttl),
            database_pool_size: self.database_pool_size.or(other.database_pool_size),
            sqlite_readers: self.sqlite_readers.or(other.sqlite_readers),
            trusted_proxies: self.trusted_proxies.or(other.trusted_proxies),
            country_header: self.country_header.or(other.country_header),
            geoip_db: self.geoip_db.or(other.geoip_db),
            hourly_stats_retention: self.hourly_stats_retention.or(other.hourly_stats_retention),
            redirect_status: self.redirect_status.or(other.redirect_status),
            code_length: self.code_length.or(other.code_length),
            cache_capacity: self.cache_capacity.or(other.cache_capacity),
            negative_cache_ttl: self.negative_cache_ttl.or(other.negative_cache_ttl),
            rate_limit: self.rate_limit.or(other.rate_limit),
            store_timeout: self.store_timeout.or(other.store_timeout),
            shutdown_timeout: self.shutdown_timeout.or(other.shutdown_timeout),
            header_read_timeout: self.header_read_timeout.or(other.header_read_timeout),
            request_body_timeout: self.request_body_timeout.or(other.request_body_timeout),
            max_header_bytes: self.max_header_bytes.or(other.max_header_bytes),
            max_connections: self.max_connections.or(other.max_connections),
            qr_concurrency: self.qr_concurrency.or(other.qr_concurrency),
            failed_auth_limit: self.failed_auth_limit.or(other.failed_auth_limit),
            redirect_referrer_policy: self
                .redirect_referrer_policy
                .or(other.redirect_referrer_policy),
            deny_list: self.deny_list.or(other.deny_list),
            admin_listen: self.admin_listen.or(other.admin_listen),
        }
    }

    fn resolve(self) -> anyhow::Result<Settings> {
        let (database, database_replicas, redis) =
            store_urls(self.database, self.database_replica, self.redis)?;
        check_admin_key(self.admin_key.as_deref())?;
        let base_url = self.base_url.map(|raw| parse_base_url(&raw)).transpose()?;
        let connections = connection_limits(
            self.header_read_timeout,
            self.max_header_bytes,
            self.max_connections,
        )?;
        let default_qr = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
        let (write_consistency, click_durability) =
            consistency(self.write_consistency.as_deref(), self.click_durability)?;
        let pool_size = within("database-pool-size", self.database_pool_size, 16, 1..=1000)?;
        let flush_interval = positive("click-flush-interval", self.click_flush_interval, "1s")?;
        let body_timeout = positive("request-body-timeout", self.request_body_timeout, "10s")?;
        if let Some(file) = &self.deny_list {
            // A bad deny list is a bad flag: exit 2 before anything is opened.
            crate::deny::DenyList::load(Some(file)).context("--deny-list")?;
        }
        let (listen, admin_listen) = listeners(self.listen, self.admin_listen)?;
        let (trusted_proxies, country_header) =
            analytics_sources(self.trusted_proxies, self.country_header, &self.geoip_db)?;
        Ok(Settings {
            listen,
            database,
            database_replicas,
            database_pool_size: pool_size,
            sqlite_readers: within("sqlite-readers", self.sqlite_readers, 4, 1..=64)?,
            redis,
            click_durability,
            write_consistency,
            cache_ttl: positive("cache-ttl", self.cache_ttl, "60s")?,
            base_url,
            admin_key: self.admin_key.map(Secret::new),
            click_flush_interval: flush_interval,
            click_fold_interval: positive("click-fold-interval", self.click_fold_interval, "60s")?,
            log_format: self.log_format.unwrap_or_else(LogFormat::for_stderr),
            click_mode: self.click_mode.unwrap_or(ClickMode::Buffered),
            redirect_status: redirect_status(self.redirect_status)?,
            code_length: within("code-length", self.code_length, 7, 1..=32)?,
            cache_capacity: self.cache_capacity.unwrap_or(100_000),
            negative_cache_ttl: duration("negative-cache-ttl", self.negative_cache_ttl, "5s")?,
            rate_limit: self.rate_limit.unwrap_or(1000),
            store_timeout: positive("store-timeout", self.store_timeout, "5s")?,
            shutdown_timeout: duration("shutdown-timeout", self.shutdown_timeout, "10s")?,
            connections,
            request_body_timeout: body_timeout,
            qr_concurrency: within("qr-concurrency", self.qr_concurrency, default_qr, 1..=1024)?,
            failed_auth_limit: self.failed_auth_limit.unwrap_or(20),
            redirect_referrer_policy: referrer_policy(self.redirect_referrer_policy.as_deref())?,
            deny_list: self.deny_list,
            admin_listen,
            trusted_proxies,
            country_header,
            geoip_db: self.geoip_db,
            hourly_stats_retention: retention(self.hourly_stats_retention)?,
        })
    }
}

impl LogFormat {
    /// Unless chosen: pretty for a person at a terminal, JSON for a log collector.
    fn for_stderr() -> LogFormat {
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            LogFormat::Pretty
        } else {
            LogFormat::Json
        }
    }
}

fn redirect_status(value: Option<u16>) -> anyhow::Result<u16> {
    let status = value.unwrap_or(302);
    if ![301, 302, 307, 308].contains(&status) {
        bail!("--redirect-status must be 301, 302, 307 or 308, not {status}");
    }
    Ok(status)
}

fn retention(value: Option<String>) -> anyhow::Result<Duration> {
    let retention = duration("hourly-stats-retention", value, "35d")?;
    if retention < Duration::from_secs(86_400) {
        bail!("--hourly-stats-retention must be at least one day");
    }
    Ok(retention)
}

fn connection_limits(
    header_read_timeout: Option<String>,
    max_header_bytes: Option<usize>,
    max_connections: Option<usize>,
) -> anyhow::Result<ConnectionLimits> {
    let max_connections = max_connections.unwrap_or(10_000);
    if max_connections == 0 {
        bail!("--max-connections must be at least 1");
    }
    Ok(ConnectionLimits {
        header_read_timeout: positive("header-read-timeout", header_read_timeout, "10s")?,
        max_header_bytes: within(
            "max-header-bytes",
            max_header_bytes,
            16 * 1024,
            MIN_HEADER_BYTES..=1024 * 1024,
        )?,
        max_connections,
    })
}

/// `--listen` and `--admin-listen` (empty: none), checked.
fn listeners(
    listen: Option<String>,
    admin_listen: Option<String>,
) -> anyhow::Result<(String, Option<String>)> {
    let admin_listen = admin_listen.filter(|a| !a.is_empty());
    if let Some(admin) = &admin_listen {
        check_listen(admin).context("--admin-listen")?;
    }
    let listen = listen.unwrap_or_else(|| "127.0.0.1:8080".into());
    check_listen(&listen)?;
    Ok((listen, admin_listen))
}

/// `--NAME`'s duration (`default` when unset), which must be more than zero.
fn positive(name: &str, value: Option<String>, default: &str) -> anyhow::Result<Duration> {
    let d = duration(name, value, default)?;
    if d.is_zero() {
        bail!("--{name} must be greater than zero");
    }
    Ok(d)
}

/// `--NAME` (`default` when unset), which must lie in `range`.
fn within(
    name: &str,
    value: Option<usize>,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> anyhow::Result<usize> {
    let v = value.unwrap_or(default);
    if !range.contains(&v) {
        bail!(
            "--{name} must be between {} and {}, not {v}",
            range.start(),
            range.end()
        );
    }
    Ok(v)
}

/// `--database` (with its default), `--database-replica` and `--redis`, checked.
fn store_urls(
    database: Option<String>,
    replicas: Option<Vec<String>>,
    redis: Option<String>,
) -> anyhow::Result<(Database, Vec<Dsn>, Option<Dsn>)> {
    let database = Database::parse(&database.unwrap_or_else(|| DEFAULT_DATABASE.into()))?;
    let replicas: Vec<Dsn> = replicas
        .unwrap_or_default()
        .into_iter()
        .filter(|r| !r.trim().is_empty())
        .map(Dsn::new)
        .collect();
    if !replicas.is_empty() {
        if !matches!(database, Database::Postgres(_)) {
            bail!("--database-replica needs a postgres:// --database");
        }
        for r in &replicas {
            if !is_postgres_url(r.expose()) {
                bail!("--database-replica must be a postgres:// URL, not {r}");
            }
        }
    }
    let redis = redis.filter(|r| !r.trim().is_empty()).map(Dsn::new);
    if let Some(r) = &redis
        && !(r.expose().starts_with("redis://") || r.expose().starts_with("rediss://"))
    {
        bail!("--redis must be a redis:// URL, not {r}");
    }
    Ok((database, replicas, redis))
}

fn check_admin_key(key: Option<&str>) -> anyhow::Result<()> {
    if let Some(key) = key
        && key.chars().count() < MIN_ADMIN_KEY_CHARS
    {
        bail!(
            "--admin-key must be at least {MIN_ADMIN_KEY_CHARS} characters long (an admin key \
             is guessable otherwise); generate one with: echo \
             snip_$(head -c 24 /dev/urandom | base64 | tr -dc A-Za-z0-9)"
        );
    }
    Ok(())
}

/// `--trusted-proxies` and `--country-header`, checked; `--geoip-db` is loaded once here, so
/// that a bad path or header name is a bad flag (exit 2, nothing written) rather than a failure
/// after the store was opened. The server loads it again for its own use: a few MB read twice
/// at start-up, where keeping the loaded reader in (cloneable) settings would put an `Arc` on
/// the click path.
fn analytics_sources(
    trusted_proxies: Option<Vec<String>>,
    country_header: Option<String>,
    geoip_db: &Option<PathBuf>,
) -> anyhow::Result<(crate::analytics::client::TrustedProxies, Option<String>)> {
    let trusted = crate::analytics::client::TrustedProxies::parse(
        &trusted_proxies.unwrap_or_default().join(","),
    )
    .map_err(|e| anyhow::anyhow!("--trusted-proxies: {e}"))?;
    let country_header = country_header.filter(|h| !h.is_empty());
    crate::analytics::geo::Geo::new(country_header.as_deref(), geoip_db.as_deref())?;
    Ok((trusted, country_header))
}

/// The policies of the Referrer Policy specification; `none` (the default) sends no header.
const REFERRER_POLICIES: [&str; 8] = [
    "no-referrer",
    "no-referrer-when-downgrade",
    "origin",
    "origin-when-cross-origin",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
    "unsafe-url",
];

fn referrer_policy(raw: Option<&str>) -> anyhow::Result<Option<&'static str>> {
    match raw {
        None | Some("none") => Ok(None),
        Some(value) => REFERRER_POLICIES
            .iter()
            .find(|p| **p == value)
            .map(|p| Some(*p))
            .with_context(|| {
                format!(
                    "--redirect-referrer-policy must be none or one of {}, not {value:?}",
                    REFERRER_POLICIES.join(", ")
                )
            }),
    }
}

/// The shortest `--admin-key` accepted: generated keys have 32 random base62 characters after
/// `snip_`; a chosen one must not be much weaker.
pub const MIN_ADMIN_KEY_CHARS: usize = 32;

/// `--listen` must be `HOST:PORT` (an IP address or a name, and a port number): anything else
/// is refused before the store is touched, rather than failing at bind time.
fn check_listen(listen: &str) -> anyhow::Result<()> {
    if listen.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let valid = listen.rsplit_once(':').is_some_and(|(host, port)| {
        port.parse::<u16>().is_ok()
            && !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    });
    if !valid {
        bail!("--listen must be HOST:PORT (e.g. 127.0.0.1:8080 or 0.0.0.0:0), not {listen:?}");
    }
    Ok(())
}

/// Maps `sqlite://rel/path` and `sqlite:///abs/path` to a filesystem path.
fn sqlite_path(database: &str) -> anyhow::Result<PathBuf> {
    let Some(rest) = database.strip_prefix("sqlite://") else {
        bail!("--database must start with sqlite:// or postgres:// (got {database:?})");
    };
    if rest.is_empty() || rest == "/" {
        bail!("--database sqlite:// needs a file path");
    }
    Ok(PathBuf::from(rest))
}

fn parse_base_url(raw: &str) -> anyhow::Result<url::Url> {
    let url = url::Url::parse(raw).with_context(|| format!("--base-url: invalid URL {raw:?}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        bail!("--base-url must be an http(s) origin such as https://sn.ip");
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        bail!("--base-url must be an origin without path, query or fragment");
    }
    Ok(url)
}

/// The origin (`scheme://host[:port]`) of a base URL, without the trailing slash.
pub fn origin_string(url: &url::Url) -> String {
    url.as_str().trim_end_matches('/').to_string()
}

/// The default public origin when `--base-url` is not given: the bound address.
pub fn base_url_for(addr: SocketAddr) -> url::Url {
    url::Url::parse(&format!("http://{addr}")).expect("a socket address is a valid origin")
}

#[cfg(test)]
mod tests;
