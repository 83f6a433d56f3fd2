//! `snip export`: every link the key may see, oldest first, streamed page by page (constant
//! memory) as CSV (re-importable by `snip import --from csv` with the same result; cells that
//! a spreadsheet would run as a formula are prefixed with `'`) or as JSON lines (the API's
//! link objects).

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::ExportArgs;
use super::client::{CliError, CliResult};
use super::profile;
use crate::http::links::Page;
use crate::http::views::LinkView;
use crate::import::sources::{CSV_COLUMNS, escape_cell, tags_cell};

/// Links per request.
const PAGE: usize = 1000;

pub async fn run(args: ExportArgs) -> CliResult<()> {
    let client = profile::client(&args.conn, true)?;
    let out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .map_err(|e| CliError::failed(format!("cannot create {}: {e}", path.display())))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = Output::new(std::io::BufWriter::new(out), args.format == "csv")?;
    let progress = if !args.no_progress && std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    progress.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {pos} links ({per_sec})")
            .expect("a valid template"),
    );
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", PAGE.to_string()), ("sort", "oldest".into())];
        if args.with_stats {
            query.push(("clicks", "true".into()));
        }
        query.extend(cursor.take().map(|c| ("cursor", c)));
        let page: Page = client.get("api/v1/links", &query).await?;
        for link in &page.items {
            out.link(link)?;
        }
        progress.inc(page.items.len() as u64);
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    out.flush()?;
    progress.finish_and_clear();
    eprintln!("exported {} links", progress.position());
    Ok(())
}

/// Where the links go, in their format.
enum Output {
    Csv(Box<csv::Writer<std::io::BufWriter<Box<dyn Write>>>>),
    Jsonl(std::io::BufWriter<Box<dyn Write>>),
}

fn write_fail(e: &dyn std::fmt::Display) -> CliError {
    CliError::failed(format!("cannot write the export: {e}"))
}

impl Output {
    /// The output, with the CSV's header row written.
    fn new(out: std::io::BufWriter<Box<dyn Write>>, csv: bool) -> CliResult<Self> {
        if !csv {
            return Ok(Output::Jsonl(out));
        }
        let mut w = csv::Writer::from_writer(out);
        w.write_record(CSV_COLUMNS).map_err(|e| write_fail(&e))?;
        Ok(Output::Csv(Box::new(w)))
    }

    fn link(&mut self, link: &LinkView) -> CliResult<()> {
        match self {
            Output::Csv(w) => w.write_record(csv_record(link)).map_err(|e| write_fail(&e)),
            Output::Jsonl(out) => serde_json::to_writer(&mut *out, link)
                .map_err(|e| write_fail(&e))
                .and_then(|()| out.write_all(b"\n").map_err(|e| write_fail(&e))),
        }
    }

    fn flush(&mut self) -> CliResult<()> {
        match self {
            Output::Csv(w) => w.flush().map_err(|e| write_fail(&e)),
            Output::Jsonl(out) => out.flush().map_err(|e| write_fail(&e)),
        }
    }
}

/// A link as a row of [`CSV_COLUMNS`].
fn csv_record(link: &LinkView) -> Vec<String> {
    let cell = |s: &str| escape_cell(s).into_owned();
    vec![
        cell(&link.code),
        cell(&link.url),
        cell(link.title.as_deref().unwrap_or("")),
        cell(&tags_cell(&link.tags)),
        link.expires_at.clone().unwrap_or_default(),
        link.max_clicks.map(|m| m.to_string()).unwrap_or_default(),
        link.created_at.clone(),
        link.clicks.map(|c| c.to_string()).unwrap_or_default(),
    ]
}
