//! `snip backup DEST`: a consistent copy of the embedded store, safe while the server runs.
//!
//! The copy is made with `VACUUM INTO`, inside one read transaction of a read-only connection:
//! it sees one snapshot of the database (WAL readers never wait for the writer, and the writer
//! never waits for them), so a server that keeps writing neither blocks it nor makes it start
//! over. (SQLite's step-wise online backup API restarts from the first page whenever another
//! connection writes between two steps: under click flushes every second, a large store might
//! never finish.) The copy is then checked with `PRAGMA quick_check`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags};

/// What a backup wrote.
#[derive(Debug)]
pub struct BackupReport {
    pub dest: PathBuf,
    pub bytes: u64,
    /// Links in the copy, deleted ones included.
    pub links: i64,
}

/// Copies the SQLite database at `source` to `dest`, which must not exist yet.
pub fn run(source: &Path, dest: &Path) -> anyhow::Result<BackupReport> {
    if !source.exists() {
        bail!("{} does not exist", source.display());
    }
    if dest.exists() {
        bail!("{} exists already: give a new file name", dest.display());
    }
    let conn = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", source.display()))?;
    // The server's writer holds its lock only for the instant of a commit.
    conn.busy_timeout(Duration::from_secs(30))?;
    let dest_str = dest
        .to_str()
        .with_context(|| format!("{} is not valid UTF-8", dest.display()))?;
    conn.execute("VACUUM INTO ?1", [dest_str])
        .with_context(|| format!("copying {} to {}", source.display(), dest.display()))?;
    drop(conn);

    let copy = Connection::open_with_flags(dest, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening the copy {}", dest.display()))?;
    let check: String = copy
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .context("checking the copy")?;
    if check != "ok" {
        bail!("the copy {} failed its check: {check}", dest.display());
    }
    let links: i64 = copy
        .query_row("SELECT count(*) FROM links", [], |r| r.get(0))
        .context("counting the links of the copy")?;
    let bytes = std::fs::metadata(dest)?.len();
    Ok(BackupReport {
        dest: dest.to_path_buf(),
        bytes,
        links,
    })
}
