//! `snip import`: bulk-load links from `CODE<TAB>URL` lines, validated exactly like the API
//! validates them, in large durable transactions. For migrations from other shorteners and for
//! seeding benchmark stores with millions of links without millions of HTTP calls.

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::{ClickDurability, ImportArgs};
use crate::domain::{Destination, Role, ShortCode};
use crate::startup::{StoreOptions, open_store};
use crate::store::Store;

const BATCH: usize = 50_000;

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub imported: u64,
    /// Lines whose code was already taken (kept as it was).
    pub taken: u64,
    /// Lines that failed validation (reported on stderr with their line number).
    pub rejected: u64,
}

/// Runs an import; links are owned by the oldest active admin key.
pub async fn run(args: &ImportArgs) -> anyhow::Result<ImportReport> {
    let store: Arc<dyn Store> = open_store(
        &args.database()?,
        &StoreOptions {
            timeout: Duration::from_secs(120),
            replicas: Vec::new(),
            pool_size: 2,
            click_durability: ClickDurability::Local,
        },
    )
    .await?;
    let owner = store
        .list_keys()
        .await?
        .into_iter()
        .find(|k| k.role == Role::Admin)
        .map(|k| k.row_id)
        .context("the store has no admin key yet: run `snip serve` once first")?;
    let input: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(
            std::fs::File::open(&args.file)
                .with_context(|| format!("opening {}", args.file.display()))?,
        ))
    };
    let mut report = ImportReport::default();
    let mut batch = Vec::with_capacity(BATCH);
    for (n, line) in input.lines().enumerate() {
        let line = line.with_context(|| format!("reading line {}", n + 1))?;
        match parse_line(&line) {
            Ok(None) => continue,
            Ok(Some(pair)) => batch.push(pair),
            Err(why) => {
                report.rejected += 1;
                eprintln!("line {}: {why}", n + 1);
            }
        }
        if batch.len() == BATCH {
            flush(store.as_ref(), &mut batch, owner, &mut report).await?;
        }
    }
    flush(store.as_ref(), &mut batch, owner, &mut report).await?;
    Ok(report)
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
        };
        let report = run(&args).await.unwrap();
        assert_eq!(
            report,
            ImportReport {
                imported: 2,
                taken: 1,
                rejected: 1
            }
        );
        let store = SqliteStore::open(&db, Duration::from_secs(5)).unwrap();
        let link = store.get_link("abc").await.unwrap().unwrap();
        assert_eq!(link.url, "https://a.example/");
    }
}
