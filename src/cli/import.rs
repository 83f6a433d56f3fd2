//! `snip import`: read a source file (snip's TSV or CSV, or another shortener's export, see
//! `crate::import::sources`), check each row by the API's rules, and write the valid ones in
//! batches: over a server's API (`POST /api/v1/import`) or straight into a store
//! (`--database`). Each batch is idempotent (codes are kept; a row without a code carries a key
//! derived from the row), so a re-run imports nothing twice; after each batch a checkpoint
//! beside the file records how far the import got, and a re-run after Ctrl-C (or a crash)
//! resumes there. Rows that are rejected, or whose code is another destination's, are written
//! to a CSV file with the reason.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ImportArgs;
use super::client::{CliError, CliResult, Client, exit};
use super::output;
use super::profile;
use crate::domain::time::{now, to_rfc3339};
use crate::http::import::{ImportAnswer, ImportRequest};
use crate::import::sources::{self, RowError, SourceFormat, SourceRow};
use crate::import::{ImportResult, ImportRow, ImportStatus, Item, MAX_BATCH, OfflineStore};

/// A request body stays under the server's 64 KiB limit with this much room.
const MAX_BATCH_BYTES: usize = 60 * 1024;
/// Links per transaction of an import straight into a store (large: one fsync each).
const MAX_OFFLINE_BATCH: usize = 50_000;
/// Length of the random codes an offline import gives rows without one (`serve`'s default
/// `--code-length`).
const CODE_LENGTH: usize = 7;
/// Rejected rows printed on stderr (the rest only in the rejected file).
const SHOWN_REJECTS: u64 = 10;

/// Where the batches go.
enum Sink {
    Api(Client),
    Store(OfflineStore),
}

/// Counts of an import (also the checkpoint's).
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Summary {
    /// Source records read and answered (the checkpoint's position).
    pub rows: u64,
    pub imported: u64,
    pub present: u64,
    pub taken: u64,
    pub rejected: u64,
}

/// What a checkpoint file holds: which import it belongs to and how far it got.
#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    source_len: u64,
    source_modified: i64,
    format: String,
    target: String,
    summary: Summary,
}

/// Runs an import to its exit code.
pub async fn run(args: ImportArgs) -> CliResult<u8> {
    let format = SourceFormat::parse(&args.from)
        .ok_or_else(|| CliError::usage(format!("--from {} is not a known format", args.from)))?;
    let database = store_or_server(&args.database, &args.conn)?
        .map(|db| {
            crate::config::Database::parse(&db)
                .map(|parsed| (parsed, db))
                .map_err(|e| CliError::usage(format!("--database: {e:#}")))
        })
        .transpose()?;
    let client = match database {
        None => Some(profile::client(&args.conn, true)?),
        Some(_) => None,
    };
    let batch = batch_size(args.batch, client.is_some())?;
    let source = Source::open(&args.file)?;
    let rejected_path = args
        .rejected
        .clone()
        .unwrap_or_else(|| source.beside("rejected.csv"));
    if args.strict {
        let bad = check_all(&source, format, &rejected_path)?;
        if bad > 0 {
            eprintln!(
                "snip import: nothing imported: {bad} rows rejected (see {}) and --strict was given",
                rejected_path.display()
            );
            return Ok(exit::FAILED);
        }
    }
    let (sink, target) = match (database, client) {
        (Some((database, name)), _) => {
            let store = OfflineStore::open(&database)
                .await
                .map_err(|e| CliError::failed(format!("{e:#}")))?;
            (Sink::Store(store), name)
        }
        (None, Some(client)) => {
            let target = client.base().to_string();
            (Sink::Api(client), target)
        }
        (None, None) => unreachable!("a client is made when there is no store"),
    };
    let mut job = Job::new(&args, format, source, target, rejected_path)?;
    job.batch = batch;
    let interrupted = watch_ctrl_c();
    let outcome = job.run(&sink, &interrupted).await;
    job.finish(outcome, &args)
}

/// `--batch`, or the default of the way in (`api`: over a server's API).
fn batch_size(asked: Option<usize>, api: bool) -> CliResult<usize> {
    let (default, most) = if api {
        (500, MAX_BATCH)
    } else {
        (MAX_OFFLINE_BATCH, MAX_OFFLINE_BATCH)
    };
    match asked.unwrap_or(default) {
        n if (1..=most).contains(&n) => Ok(n),
        _ => Err(CliError::usage(format!("--batch must be 1 to {most}"))),
    }
}

/// The store an import writes into, or `None` to go through a server: `--database` (or
/// `SNIP_DATABASE`); else a server from `--server`, `SNIP_SERVER` or `snip login`; else the
/// embedded store `serve` uses by default, as before the client existed.
pub fn store_or_server(
    database: &Option<String>,
    conn: &super::Connection,
) -> CliResult<Option<String>> {
    if database.is_some() {
        return Ok(database.clone());
    }
    if conn.server.is_some() || profile::load()?.server.is_some() {
        return Ok(None);
    }
    let default = crate::config::DEFAULT_DATABASE.to_string();
    eprintln!(
        "snip: no server given (--server, SNIP_SERVER or snip login): writing into the store {default}"
    );
    Ok(Some(default))
}

/// Sets the flag on Ctrl-C (the import stops after the batch in flight).
fn watch_ctrl_c() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            set.store(true, Ordering::SeqCst);
        }
    });
    flag
}

/// The input: a file, or standard input copied to a temporary file first (so it can be
/// checked before writing, and its size drives the progress bar).
struct Source {
    path: PathBuf,
    /// Standard input's copy (deleted with it); `None` for a named file.
    _spool: Option<tempfile::TempPath>,
    len: u64,
    modified: i64,
    named: bool,
}

impl Source {
    fn open(path: &Path) -> CliResult<Source> {
        let fail = |e: std::io::Error| {
            CliError::new(exit::FAILED, format!("cannot read {}: {e}", path.display()))
        };
        if path.as_os_str() == "-" {
            let mut spool = tempfile::NamedTempFile::new().map_err(fail)?;
            std::io::copy(&mut std::io::stdin().lock(), &mut spool).map_err(fail)?;
            let temp = spool.into_temp_path();
            let len = std::fs::metadata(&temp).map_err(fail)?.len();
            return Ok(Source {
                path: temp.to_path_buf(),
                _spool: Some(temp),
                len,
                modified: 0,
                named: false,
            });
        }
        let meta = std::fs::metadata(path).map_err(fail)?;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        Ok(Source {
            path: path.to_path_buf(),
            _spool: None,
            len: meta.len(),
            modified,
            named: true,
        })
    }

    /// A file beside the source (`links.csv` → `links.csv.SUFFIX`), or in the current
    /// directory for standard input.
    fn beside(&self, suffix: &str) -> PathBuf {
        if self.named {
            let mut name = self.path.clone().into_os_string();
            name.push(format!(".{suffix}"));
            PathBuf::from(name)
        } else {
            PathBuf::from(format!("snip-import.{suffix}"))
        }
    }

    fn reader(&self) -> CliResult<std::fs::File> {
        std::fs::File::open(&self.path)
            .map_err(|e| CliError::failed(format!("cannot read {}: {e}", self.path.display())))
    }
}

/// The rows of `source` as `format` reads them.
fn rows_of(
    reader: Box<dyn Read + Send>,
    format: SourceFormat,
) -> CliResult<Box<dyn Iterator<Item = Result<SourceRow, RowError>> + Send>> {
    sources::rows(format, reader).map_err(|e| CliError::usage(format!("{e:#}")))
}

/// `--strict`: checks every row first; the number rejected (written to `rejected_path`).
fn check_all(source: &Source, format: SourceFormat, rejected_path: &Path) -> CliResult<u64> {
    let mut rejects = Rejects::new(rejected_path.to_path_buf(), false, ProgressBar::hidden());
    let at = now();
    for row in rows_of(Box::new(source.reader()?), format)? {
        let (line, why, code, url) = match row {
            Ok(row) => match crate::import::validate(to_import_row(&row, format), &[], at) {
                Ok(_) => continue,
                Err(why) => (row.line, why, row.code, row.url),
            },
            Err(e) => (e.line, e.reason, None, e.raw),
        };
        rejects.write(line, "rejected", &why, code.as_deref(), &url)?;
    }
    Ok(rejects.count)
}

/// The API's row for a source row; a row without a code gets an idempotency key derived from
/// the format, its position and its content, so a re-run sends the same key.
pub fn to_import_row(row: &SourceRow, format: SourceFormat) -> ImportRow {
    let mut import = ImportRow {
        url: row.url.clone(),
        code: row.code.clone(),
        title: row.title.clone(),
        tags: row.tags.clone(),
        expires_at: row.expires_at.map(to_rfc3339),
        max_clicks: row.max_clicks.map(|m| i64::try_from(m).unwrap_or(i64::MAX)),
        created_at: row.created_at.map(to_rfc3339),
        clicks: row.visits.map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
        idempotency_key: None,
    };
    if import.code.is_none() {
        let mut hash = Sha256::new();
        hash.update(format.name());
        hash.update(row.line.to_be_bytes());
        hash.update(serde_json::to_vec(&import).unwrap_or_default());
        import.idempotency_key = Some(hex::encode(&hash.finalize()[..16]));
    }
    import
}

/// The rejected-rows file, created at the first row written.
struct Rejects {
    path: PathBuf,
    append: bool,
    writer: Option<csv::Writer<std::fs::File>>,
    count: u64,
    /// The bar drawn on stderr, hidden while a rejected row is printed there.
    progress: ProgressBar,
}

impl Rejects {
    fn new(path: PathBuf, append: bool, progress: ProgressBar) -> Self {
        Rejects {
            path,
            append,
            writer: None,
            count: 0,
            progress,
        }
    }

    fn write(
        &mut self,
        line: u64,
        status: &str,
        reason: &str,
        code: Option<&str>,
        url: &str,
    ) -> CliResult<()> {
        let fail = |e: &dyn std::fmt::Display| {
            CliError::failed(format!("cannot write {}: {e}", self.path.display()))
        };
        if self.writer.is_none() {
            let existed = self.append && self.path.exists();
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(self.append)
                .write(true)
                .truncate(!self.append)
                .open(&self.path)
                .map_err(|e| fail(&e))?;
            let mut w = csv::Writer::from_writer(file);
            if !existed {
                w.write_record(["line", "status", "reason", "code", "url"])
                    .map_err(|e| fail(&e))?;
            }
            self.writer = Some(w);
        }
        let w = self.writer.as_mut().expect("opened above");
        let line = line.to_string();
        w.write_record([line.as_str(), status, reason, code.unwrap_or(""), url])
            .and_then(|()| w.flush().map_err(csv::Error::from))
            .map_err(|e| fail(&e))?;
        self.count += 1;
        if self.count <= SHOWN_REJECTS {
            self.progress
                .suspend(|| eprintln!("line {line}: {status}: {reason}"));
        }
        Ok(())
    }
}

/// One import in progress.
struct Job {
    format: SourceFormat,
    source: Source,
    target: String,
    checkpoint: PathBuf,
    rejects: Rejects,
    summary: Summary,
    /// Records already done by an earlier, interrupted run (skipped).
    resume_after: u64,
    jsonl: bool,
    batch: usize,
    progress: ProgressBar,
    started: Instant,
}

/// Cuts the checked rows of a source into batches (on the reading thread).
struct Batcher {
    format: SourceFormat,
    batch: usize,
    /// A batch's JSON stays under this (the server's body limit), when it goes over the API.
    max_bytes: usize,
    /// Records an interrupted run already did.
    skip: u64,
}

impl Batcher {
    /// Sends every batch to `tx`; stops early when the receiver is gone (an error or Ctrl-C).
    fn run(
        self,
        rows: Box<dyn Iterator<Item = Result<SourceRow, RowError>> + Send>,
        tx: &tokio::sync::mpsc::Sender<Vec<Pending>>,
    ) {
        let at = now();
        let mut pending: Vec<Pending> = Vec::new();
        let mut bytes = 0;
        for row in rows.skip(self.skip as usize) {
            let next = self.check(row, at);
            let size = match &next.sent {
                Ok((import, _)) if self.max_bytes != usize::MAX => {
                    serde_json::to_vec(import).map_or(0, |v| v.len()) + 1
                }
                _ => 0,
            };
            if !pending.is_empty() && (pending.len() >= self.batch || bytes + size > self.max_bytes)
            {
                if tx.blocking_send(std::mem::take(&mut pending)).is_err() {
                    return;
                }
                bytes = 0;
            }
            bytes += size;
            pending.push(next);
        }
        if !pending.is_empty() {
            let _ = tx.blocking_send(pending);
        }
    }

    /// A source record, checked by the API's rules.
    fn check(&self, row: Result<SourceRow, RowError>, at: i64) -> Pending {
        match row {
            Err(e) => Pending {
                line: e.line,
                code: None,
                url: e.raw,
                sent: Err(e.reason),
            },
            Ok(row) => {
                let import = to_import_row(&row, self.format);
                let sent =
                    crate::import::validate(import.clone(), &[], at).map(|item| (import, item));
                Pending {
                    line: row.line,
                    code: row.code,
                    url: row.url,
                    sent,
                }
            }
        }
    }
}

/// A source record on its way, in order: sent (`Ok`: what the server or store is sent) or
/// refused here (`Err`: why). Answers are counted in source order, so the checkpoint's row
/// count is always a prefix of the source.
struct Pending {
    line: u64,
    code: Option<String>,
    url: String,
    sent: Result<(ImportRow, Item), String>,
}

impl Job {
    fn new(
        args: &ImportArgs,
        format: SourceFormat,
        source: Source,
        target: String,
        rejected_path: PathBuf,
    ) -> CliResult<Job> {
        let checkpoint = source.beside("import-checkpoint");
        let mut summary = Summary::default();
        let saved = std::fs::read(&checkpoint)
            .ok()
            .and_then(|b| serde_json::from_slice::<Checkpoint>(&b).ok())
            .filter(|c| {
                source.named
                    && c.source_len == source.len
                    && c.source_modified == source.modified
                    && c.format == format.name()
                    && c.target == target
            });
        if let Some(saved) = &saved {
            summary = saved.summary.clone();
            eprintln!(
                "resuming an interrupted import after row {} ({})",
                summary.rows,
                checkpoint.display()
            );
        }
        let show = !args.no_progress && std::io::stderr().is_terminal();
        let progress = if show {
            ProgressBar::with_draw_target(Some(source.len), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        progress.set_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{wide_bar}] {percent:>3}% {msg} ETA {eta}",
            )
            .expect("a valid template")
            .progress_chars("█▌ "),
        );
        Ok(Job {
            format,
            target,
            checkpoint,
            rejects: Rejects::new(rejected_path, saved.is_some(), progress.clone()),
            resume_after: summary.rows,
            summary,
            jsonl: args.format.jsonl,
            batch: MAX_BATCH,
            progress,
            started: Instant::now(),
            source,
        })
    }

    /// Reads, checks and sends every row; `Ok(false)` when Ctrl-C stopped it. The file is
    /// read and checked on a thread of its own, one batch ahead of the batch being written.
    async fn run(&mut self, sink: &Sink, interrupted: &AtomicBool) -> CliResult<bool> {
        let reader = self.progress.wrap_read(self.source.reader()?);
        let rows = rows_of(Box::new(reader), self.format)?;
        let batcher = Batcher {
            format: self.format,
            batch: self.batch,
            max_bytes: match sink {
                Sink::Api(_) => MAX_BATCH_BYTES,
                Sink::Store(_) => usize::MAX,
            },
            skip: self.resume_after,
        };
        // One batch waits while another is written: memory stays at two batches.
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let reading = std::thread::spawn(move || batcher.run(rows, &tx));
        while let Some(batch) = rx.recv().await {
            self.send(sink, batch).await?;
            if interrupted.load(Ordering::SeqCst) {
                return Ok(false);
            }
        }
        reading
            .join()
            .map_err(|_| CliError::failed("the thread reading the file stopped unexpectedly"))?;
        Ok(!interrupted.load(Ordering::SeqCst))
    }

    /// Sends the valid rows of one batch, counts every answer in order, and saves the
    /// checkpoint.
    async fn send(&mut self, sink: &Sink, batch: Vec<Pending>) -> CliResult<()> {
        let sent: Vec<&(ImportRow, Item)> =
            batch.iter().filter_map(|p| p.sent.as_ref().ok()).collect();
        let results = if sent.is_empty() {
            Vec::new()
        } else {
            match sink {
                Sink::Api(client) => {
                    let request = ImportRequest {
                        links: sent.iter().map(|(row, _)| row.clone()).collect(),
                    };
                    let answer: ImportAnswer = client
                        .send_json(Method::POST, "api/v1/import", &request, &[])
                        .await?;
                    answer.results
                }
                Sink::Store(store) => store
                    .write(
                        sent.iter().map(|(_, item)| Ok(item.clone())).collect(),
                        CODE_LENGTH,
                    )
                    .await
                    .map_err(|e| CliError::new(exit::UNAVAILABLE, format!("{e:#}")))?,
            }
        };
        if results.len() != sent.len() {
            return Err(CliError::failed(format!(
                "the server answered {} results for {} links",
                results.len(),
                sent.len()
            )));
        }
        let mut results = results.into_iter();
        for p in &batch {
            let result = match &p.sent {
                Ok(_) => results.next().expect("one result per link sent"),
                Err(why) => ImportResult::rejected(p.code.clone(), why.clone()),
            };
            self.count(p, &result)?;
        }
        self.save_checkpoint()?;
        let rate = self.summary.rows as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        self.progress
            .set_message(format!("{} rows, {rate:.0} rows/s", self.summary.rows));
        Ok(())
    }

    fn count(&mut self, p: &Pending, result: &ImportResult) -> CliResult<()> {
        self.summary.rows += 1;
        let detail = result.detail.as_deref().unwrap_or("");
        let code = result.code.as_deref().or(p.code.as_deref());
        match result.status {
            ImportStatus::Imported => self.summary.imported += 1,
            ImportStatus::Present => self.summary.present += 1,
            ImportStatus::Taken => {
                self.summary.taken += 1;
                self.rejects.write(p.line, "taken", detail, code, &p.url)?;
            }
            ImportStatus::Rejected => {
                self.summary.rejected += 1;
                self.rejects
                    .write(p.line, "rejected", detail, code, &p.url)?;
            }
        }
        if self.jsonl {
            output::json_line(&serde_json::json!({
                "line": p.line, "status": result.status, "code": code, "detail": result.detail
            }))?;
        }
        Ok(())
    }

    fn save_checkpoint(&self) -> CliResult<()> {
        if !self.source.named {
            return Ok(());
        }
        let checkpoint = Checkpoint {
            source_len: self.source.len,
            source_modified: self.source.modified,
            format: self.format.name().into(),
            target: self.target.clone(),
            summary: self.summary.clone(),
        };
        let temp = self.checkpoint.with_extension("tmp");
        std::fs::write(&temp, serde_json::to_vec(&checkpoint).unwrap_or_default())
            .and_then(|()| std::fs::rename(&temp, &self.checkpoint))
            .map_err(|e| {
                CliError::failed(format!("cannot write {}: {e}", self.checkpoint.display()))
            })
    }

    /// Prints the summary; the exit code.
    fn finish(self, outcome: CliResult<bool>, args: &ImportArgs) -> CliResult<u8> {
        self.progress.finish_and_clear();
        let s = &self.summary;
        let secs = self.started.elapsed().as_secs_f64();
        let complete = match outcome {
            Ok(complete) => complete,
            Err(e) => {
                self.report(secs);
                eprintln!(
                    "snip import: stopped after row {}: run the same command again to resume",
                    s.rows
                );
                return Err(e);
            }
        };
        if args.format.json {
            output::json(&serde_json::json!({
                "complete": complete, "rows": s.rows, "imported": s.imported,
                "present": s.present, "taken": s.taken, "rejected": s.rejected,
                "rejected_file": (self.rejects.count > 0).then(|| self.rejects.path.display().to_string()),
            }))?;
        } else {
            self.report(secs);
        }
        if !complete {
            eprintln!(
                "snip import: interrupted after row {}: run the same command again to resume",
                s.rows
            );
            return Ok(exit::INTERRUPTED);
        }
        let _ = std::fs::remove_file(&self.checkpoint);
        Ok(0)
    }

    fn report(&self, secs: f64) {
        let s = &self.summary;
        let summary = format!(
            "imported {}, already present {}, taken by another destination {}, rejected {}",
            s.imported, s.present, s.taken, s.rejected
        );
        if self.jsonl {
            // stdout holds only the rows' JSON lines.
            eprintln!("{summary}");
        } else {
            let _ = output::line(&summary);
        }
        if s.taken + s.rejected > 0 {
            eprintln!(
                "snip import: {} rows not imported, with the reason, in {}",
                s.taken + s.rejected,
                self.rejects.path.display()
            );
        }
        eprintln!(
            "{} rows in {secs:.1} s ({:.0} rows/s)",
            s.rows,
            s.rows as f64 / secs.max(0.001)
        );
    }
}
