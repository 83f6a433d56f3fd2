//! `snip import`: bulk-load links from `CODE<TAB>URL` lines, validated exactly like the API
//! validates them, in large durable transactions. For migrations from other shorteners and for
//! seeding benchmark stores with millions of links without millions of HTTP calls.
//!
//! The whole input is read and validated first, into a temporary spool file (memory stays
//! small whatever the input size), and only then is the store opened: an unreadable input, or
//! a rejected line under `--strict`, leaves no store behind and changes nothing.

use std::io::{BufRead, BufReader, BufWriter, Seek, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::ImportArgs;
use crate::domain::{ApiKeySecret, Destination, Role, ShortCode};
use crate::store::{Store, StoreOptions};

const BATCH: usize = 50_000;

/// Name of the key that owns links imported into a store that has no admin key yet. It is
/// revoked as soon as it is created: it can never authenticate; admins see and manage its
/// links, and the first `snip serve` still generates an admin key.
pub const PLACEHOLDER_OWNER: &str = "snip import";

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub imported: u64,
    /// Lines whose code was already taken (kept as it was).
    pub taken: u64,
    /// Lines that failed validation (reported on stderr with their line number).
    pub rejected: u64,
    /// `--strict` and some line was rejected: the store was not opened, nothing was imported.
    pub refused: bool,
}

/// Runs an import; links are owned by the oldest active admin key (or by a revoked placeholder
/// key when the store has none yet).
pub async fn run(args: &ImportArgs) -> anyhow::Result<ImportReport> {
    let database = args.database()?;
    let input: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(
            std::fs::File::open(&args.file)
                .with_context(|| format!("opening {}", args.file.display()))?,
        ))
    };
    let mut report = ImportReport::default();
    let mut spool = BufWriter::new(tempfile::tempfile().context("creating a spool file")?);
    let mut valid = 0u64;
    for (n, line) in input.lines().enumerate() {
        let line = line.with_context(|| format!("reading line {}", n + 1))?;
        match parse_line(&line) {
            Ok(None) => {}
            Ok(Some((code, url))) => {
                writeln!(spool, "{}\t{}", code.as_str(), url.as_str())
                    .context("writing the spool file")?;
                valid += 1;
            }
            Err(why) => {
                report.rejected += 1;
                eprintln!("line {}: {why}", n + 1);
            }
        }
    }
    if args.strict && report.rejected > 0 {
        report.refused = true;
        return Ok(report);
    }
    let mut spool = spool.into_inner().context("writing the spool file")?;
    spool.rewind().context("reading the spool file")?;
    if valid == 0 && !database_exists(&database) {
        return Ok(report);
    }

    // Large batches: a long timeout for each.
    let options = StoreOptions::one_shot(Duration::from_secs(120), 2);
    let store: Arc<dyn Store> = crate::store::open(&database, &options).await?;
    let owner = owner(store.as_ref()).await?;
    let mut batch = Vec::with_capacity(BATCH);
    for line in BufReader::new(spool).lines() {
        let line = line.context("reading the spool file")?;
        // Validated on the way in; the spool holds the normalised `CODE<TAB>URL` only.
        let (code, url) = line
            .split_once('\t')
            .and_then(|(code, url)| Some((code, Destination::from_trusted(url)?)))
            .context("the spool file holds an unreadable line")?;
        batch.push((ShortCode::from_trusted(code.to_string()), url));
        if batch.len() == BATCH {
            flush(store.as_ref(), &mut batch, owner, &mut report).await?;
        }
    }
    flush(store.as_ref(), &mut batch, owner, &mut report).await?;
    Ok(report)
}

/// Whether an import with nothing to write would have to open (and so create) the store.
fn database_exists(database: &crate::config::Database) -> bool {
    database.local_file().is_none_or(|path| path.exists())
}

/// The oldest active admin key, or a new, revoked placeholder key when there is none.
async fn owner(store: &dyn Store) -> anyhow::Result<i64> {
    if let Some(admin) = store
        .list_keys()
        .await
        .context("listing API keys")?
        .into_iter()
        .find(|k| k.role == Role::Admin)
    {
        return Ok(admin.row_id);
    }
    let placeholder = store
        .create_key(
            PLACEHOLDER_OWNER.into(),
            Role::Admin,
            ApiKeySecret::generate().hash(),
        )
        .await
        .context("creating the owner of imported links")?;
    store
        .revoke_key(&placeholder.id, true)
        .await
        .context("revoking the owner of imported links")?;
    Ok(placeholder.row_id)
}

async fn flush(
    store: &dyn Store,
    batch: &mut Vec<(ShortCode, Destination)>,
    owner: i64,
    report: &mut ImportReport,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let n = batch.len() as u64;
    let inserted = store
        .import_links(std::mem::take(batch), owner)
        .await
        .context("writing a batch of links")?;
    report.imported += inserted;
    report.taken += n - inserted;
    Ok(())
}

/// `Ok(None)` for blank and comment lines.
fn parse_line(line: &str) -> Result<Option<(ShortCode, Destination)>, String> {
    let line = line.trim_end_matches('\r');
    if line.trim().is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (code, url) = line.split_once('\t').ok_or("expected CODE<TAB>URL")?;
    let code = ShortCode::parse_custom(code).map_err(|e| e.to_string())?;
    let url = Destination::parse(url, &[]).map_err(|e| e.to_string())?;
    Ok(Some((code, url)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    #[test]
    fn lines_are_validated_like_the_api() {
        assert!(parse_line("abc\thttps://example.com/").unwrap().is_some());
        assert!(parse_line("# comment").unwrap().is_none());
        assert!(parse_line("   ").unwrap().is_none());
        assert!(parse_line("abc https://example.com/").is_err());
        assert!(parse_line("api\thttps://example.com/").is_err());
        assert!(parse_line("abc\tjavascript:alert(1)").is_err());
    }

    #[tokio::test]
    async fn an_import_inserts_new_codes_and_skips_taken_ones() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("snip.db");
        let store = SqliteStore::open(&db, Duration::from_secs(5)).unwrap();
        store
            .create_key("admin".into(), Role::Admin, vec![1, 2, 3])
            .await
            .unwrap();
        drop(store);
        let file = dir.path().join("links.tsv");
        std::fs::write(
            &file,
            "abc\thttps://a.example/\nabd\thttps://b.example/\nabc\thttps://c.example/\nbad line\n",
        )
        .unwrap();
        let args = ImportArgs {
            database: format!("sqlite://{}", db.display()),
            file,
            strict: false,
        };
        let report = run(&args).await.unwrap();
        assert_eq!(
            report,
            ImportReport {
                imported: 2,
                taken: 1,
                rejected: 1,
                refused: false,
            }
        );
        let store = SqliteStore::open(&db, Duration::from_secs(5)).unwrap();
        let link = store.get_link("abc").await.unwrap().unwrap();
        assert_eq!(link.url, "https://a.example/");
    }

    #[tokio::test]
    async fn an_import_into_a_new_store_needs_no_admin_key_and_leaves_none_usable() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("new/snip.db");
        let file = dir.path().join("links.tsv");
        std::fs::write(&file, "abc\thttps://a.example/\n").unwrap();
        let args = ImportArgs {
            database: format!("sqlite://{}", db.display()),
            file,
            strict: false,
        };
        assert_eq!(run(&args).await.unwrap().imported, 1);
        let store = SqliteStore::open(&db, Duration::from_secs(5)).unwrap();
        assert!(store.get_link("abc").await.unwrap().is_some());
        // The owner is revoked: `serve` still sees a store without keys and generates one.
        assert_eq!(store.count_keys().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_strict_import_with_a_bad_line_opens_no_store() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("snip.db");
        let file = dir.path().join("links.tsv");
        std::fs::write(&file, "abc\thttps://a.example/\napi\thttps://b.example/\n").unwrap();
        let args = ImportArgs {
            database: format!("sqlite://{}", db.display()),
            file,
            strict: true,
        };
        let report = run(&args).await.unwrap();
        assert!(report.refused);
        assert_eq!((report.imported, report.rejected), (0, 1));
        assert!(
            !db.exists(),
            "no store is created when a strict import refuses"
        );
    }

    #[tokio::test]
    async fn an_unreadable_input_opens_no_store() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("snip.db");
        let args = ImportArgs {
            database: format!("sqlite://{}", db.display()),
            file: dir.path().join("missing.tsv"),
            strict: false,
        };
        assert!(run(&args).await.is_err());
        assert!(!db.exists());
    }
}
