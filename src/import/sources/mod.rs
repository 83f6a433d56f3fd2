//! The files `snip import --from FORMAT` reads: snip's own `CODE<TAB>URL` lines and CSV, and
//! the exports of Shlink, YOURLS, Kutt and Bitly, each read into one [`SourceRow`] per link
//! before snip validates it. docs/import-formats.md says where each file comes from, what each
//! column becomes and what is ignored.
//!
//! Every format streams: memory stays constant whatever the file size. CSV files are read with
//! one reused record; JSON is parsed on a helper thread that hands over one link at a time
//! through a small bounded channel, so even one JSON document holding a million links is never
//! held whole (only the top-level keys beside the list of links are kept, and only until the
//! list is found).

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use anyhow::{Context, bail};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

mod json;
#[cfg(test)]
mod tests;

use json::{BITLY_JSON, KUTT_JSON, SHLINK_JSON, json_rows};

/// Which kind of file `snip import --from` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    Tsv,
    Csv,
    Shlink,
    Yourls,
    Kutt,
    Bitly,
}

impl SourceFormat {
    /// Every format, in the order the help text lists them.
    pub const ALL: [SourceFormat; 6] = [
        SourceFormat::Tsv,
        SourceFormat::Csv,
        SourceFormat::Shlink,
        SourceFormat::Yourls,
        SourceFormat::Kutt,
        SourceFormat::Bitly,
    ];

    /// From the `--from` value: "tsv", "csv", "shlink", "yourls", "kutt", "bitly" (ASCII case
    /// and surrounding white space ignored).
    pub fn parse(name: &str) -> Option<SourceFormat> {
        let name = name.trim();
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// The `--from` value naming this format.
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Tsv => "tsv",
            SourceFormat::Csv => "csv",
            SourceFormat::Shlink => "shlink",
            SourceFormat::Yourls => "yourls",
            SourceFormat::Kutt => "kutt",
            SourceFormat::Bitly => "bitly",
        }
    }
}

/// One link as a source file describes it, before snip validates it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceRow {
    /// Where the record is, for messages: the physical line number (1-based) where the record
    /// starts for CSV and TSV files, the 1-based index of the link among all the links of the
    /// file for JSON.
    pub line: u64,
    /// The short code (keyword, slug, back-half), trimmed; `None` when empty.
    pub code: Option<String>,
    /// The destination as given (trimmed); never empty.
    pub url: String,
    /// `None` when empty or only white space; otherwise kept as written.
    pub title: Option<String>,
    /// Trimmed, empty ones dropped.
    pub tags: Vec<String>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    /// At least 1.
    pub max_clicks: Option<u64>,
    /// Unix seconds.
    pub created_at: Option<i64>,
    /// The source's visit or click total, when it has one.
    pub visits: Option<u64>,
}

/// A record that could not be read as a link (not a validation failure of snip's rules: the
/// record itself is malformed: missing url column value, unparsable date or number, wrong field
/// count…, or a link the source protects in a way snip cannot keep: a Kutt link that is banned
/// or password-protected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// As [`SourceRow::line`].
    pub line: u64,
    pub reason: String,
    /// The record as read (CSV fields re-joined, JSON re-serialised), cut at 512 bytes.
    pub raw: String,
}

/// The header snip's own CSV export writes, in this order, and `--from csv` reads back.
pub const CSV_COLUMNS: [&str; 8] = [
    "code",
    "url",
    "title",
    "tags",
    "expires_at",
    "max_clicks",
    "created_at",
    "clicks",
];

type Item = Result<SourceRow, RowError>;

/// The first characters spreadsheets take for a formula (OWASP "CSV injection").
fn is_formula_start(c: char) -> bool {
    matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r')
}

/// Whether a cell would start a formula once a spreadsheet strips its leading `'`s: a run of
/// `'` (possibly empty) followed by a formula character.
fn needs_guard(s: &str) -> bool {
    s.trim_start_matches('\'')
        .chars()
        .next()
        .is_some_and(is_formula_start)
}

/// Spreadsheet safety for the CSV snip writes (`snip export`): a cell that starts with `=`,
/// `+`, `-`, `@`, TAB or CR gets a leading `'` so spreadsheets do not run it as a formula
/// (OWASP "CSV injection"). A cell that already starts with `'`s followed by one of those
/// characters gets one more `'`, so that [`unescape_cell`] gives back exactly what was escaped.
/// Used by the generic csv format on every text cell: code, url, title, and the `;`-joined tags.
pub fn escape_cell(s: &str) -> Cow<'_, str> {
    if needs_guard(s) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Undoes [`escape_cell`]: drops one leading `'` when what follows is one of the characters
/// `escape_cell` guards (after any further `'`s). `unescape_cell(&escape_cell(s)) == s` for
/// every `s`.
pub fn unescape_cell(s: &str) -> Cow<'_, str> {
    match s.strip_prefix('\'') {
        Some(rest) if needs_guard(rest) => Cow::Borrowed(rest),
        _ => Cow::Borrowed(s),
    }
}

/// Streaming reader of a source file: constant memory whatever the file size (see the module
/// documentation for JSON). A file-level problem (no header, a header without a url column,
/// not JSON …) is the outer `Err`, with a message naming what was expected. Each record then
/// yields `Ok(row)` or `Err(RowError)`; an I/O error or broken JSON mid-file yields one
/// `RowError` and ends the rows.
pub fn rows(
    format: SourceFormat,
    input: Box<dyn Read + Send>,
) -> anyhow::Result<Box<dyn Iterator<Item = Result<SourceRow, RowError>> + Send>> {
    let (head, rest) = peek(input).context("reading the input")?;
    let json = matches!(first_byte(&head), Some(b'{' | b'['));
    let delimiter = sniff_delimiter(&head);
    let input = joined(head, rest);
    Ok(match format {
        SourceFormat::Tsv => Box::new(TsvRows::new(input)),
        SourceFormat::Csv => table(input, delimiter, CSV_TABLE)?,
        SourceFormat::Shlink if json => json_rows(SHLINK_JSON, input)?,
        SourceFormat::Shlink => table(input, b',', SHLINK_TABLE)?,
        SourceFormat::Yourls => table(input, delimiter, YOURLS_TABLE)?,
        SourceFormat::Kutt if json => json_rows(KUTT_JSON, input)?,
        SourceFormat::Kutt => bail!(
            "Kutt: expected JSON (the answer of Kutt's GET /api/v2/links, an array of its link \
             objects, or one link object per line)"
        ),
        SourceFormat::Bitly if json => json_rows(BITLY_JSON, input)?,
        SourceFormat::Bitly => table(input, delimiter, BITLY_TABLE)?,
    })
}

// ---------------------------------------------------------------------------------------------
// The start of the input: BOM, JSON or not, CSV delimiter.

/// How much of the input is read ahead at most to look at its first line.
const PEEK_LIMIT: usize = 64 * 1024;

/// Reads the start of the input (up to the end of its first non-blank line, at most
/// [`PEEK_LIMIT`] bytes), without a UTF-8 byte order mark.
fn peek(mut input: Box<dyn Read + Send>) -> std::io::Result<(Vec<u8>, Box<dyn Read + Send>)> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 8192];
    while head.len() < PEEK_LIMIT && !has_first_line(&head) {
        match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if head.starts_with(b"\xEF\xBB\xBF") {
        head.drain(..3);
    }
    Ok((head, input))
}

fn has_first_line(head: &[u8]) -> bool {
    head.iter()
        .position(|b| !b.is_ascii_whitespace())
        .is_some_and(|at| head[at..].contains(&b'\n'))
}

fn first_byte(head: &[u8]) -> Option<u8> {
    head.iter().copied().find(|b| !b.is_ascii_whitespace())
}

fn joined(head: Vec<u8>, rest: Box<dyn Read + Send>) -> Box<dyn Read + Send> {
    Box::new(Cursor::new(head).chain(rest))
}

/// The delimiter of a CSV file whose writer may have used `;` (spreadsheets in locales with a
/// decimal comma, phpMyAdmin's "CSV for MS Excel") or TAB: the one of `,`, `;` and TAB seen
/// most often outside quotes on the first non-blank line; `,` on a tie.
fn sniff_delimiter(head: &[u8]) -> u8 {
    let start = head
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(head.len());
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for &b in &head[start..] {
        match b {
            b'\n' if !quoted => break,
            b'"' => quoted = !quoted,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let best = (0..3).rev().max_by_key(|&i| counts[i]).unwrap_or(0);
    if counts[best] > counts[0] {
        [b',', b';', b'\t'][best]
    } else {
        b','
    }
}

// ---------------------------------------------------------------------------------------------
// tsv: `CODE<TAB>URL` lines.

struct TsvRows {
    reader: BufReader<Box<dyn Read + Send>>,
    buf: Vec<u8>,
    line: u64,
    done: bool,
}

impl TsvRows {
    fn new(input: Box<dyn Read + Send>) -> TsvRows {
        TsvRows {
            reader: BufReader::with_capacity(64 * 1024, input),
            buf: Vec::new(),
            line: 0,
            done: false,
        }
    }

    /// The current line as a row; `None` for blank and `#` comment lines.
    fn parse(&self) -> Option<Item> {
        let mut bytes = self.buf.as_slice();
        while let [rest @ .., b'\n' | b'\r'] = bytes {
            bytes = rest;
        }
        let error = |reason: &str| {
            Some(Err(RowError {
                line: self.line,
                reason: reason.to_string(),
                raw: cap(String::from_utf8_lossy(bytes).into_owned()),
            }))
        };
        let Ok(text) = std::str::from_utf8(bytes) else {
            return error("not valid UTF-8");
        };
        if text.trim().is_empty() || text.starts_with('#') {
            return None;
        }
        let Some((code, url)) = text.split_once('\t') else {
            return error("expected CODE<TAB>URL");
        };
        if url.trim().is_empty() {
            return error("missing URL after the TAB");
        }
        Some(Ok(SourceRow {
            line: self.line,
            code: non_empty(code),
            url: url.trim().to_string(),
            ..SourceRow::default()
        }))
    }
}

impl Iterator for TsvRows {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        while !self.done {
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    self.line += 1;
                    if let Some(item) = self.parse() {
                        return Some(item);
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(RowError {
                        line: self.line + 1,
                        reason: format!("reading the input: {e}"),
                        raw: String::new(),
                    }));
                }
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------------------------
// CSV files: one engine, a mapping of columns per format.

/// How one format reads a record, its columns found in the header.
trait MapRecord: Send {
    fn map(&self, record: &csv::ByteRecord) -> Result<SourceRow, String>;
}

/// Reads the header row (the first record): the mapping of columns, and whether that first
/// record is data after all (YOURLS exports without a header).
type HeaderFn = fn(&csv::ByteRecord) -> anyhow::Result<(Box<dyn MapRecord>, bool)>;

/// Each CSV format's header reader, and what it expects (for the message on an empty input).
const CSV_TABLE: (HeaderFn, &str) = (
    csv_header,
    "a header row naming the columns, `url` required",
);
const SHLINK_TABLE: (HeaderFn, &str) = (
    shlink_header,
    "the CSV of Shlink's web client export, or the JSON of GET /rest/v3/short-urls",
);
const YOURLS_TABLE: (HeaderFn, &str) = (
    yourls_header,
    "the yourls_url table as CSV (keyword, url, title, timestamp, ip, clicks)",
);
const BITLY_TABLE: (HeaderFn, &str) = (
    bitly_header,
    "Bitly's CSV export, or the JSON of GET /v4/groups/{guid}/bitlinks",
);

struct Table {
    reader: csv::Reader<Box<dyn Read + Send>>,
    record: csv::ByteRecord,
    /// The number of fields every record must have: the header's.
    width: usize,
    delimiter: u8,
    map: Box<dyn MapRecord>,
    /// `record` holds a data record not handed out yet.
    pending: bool,
    last_line: u64,
    done: bool,
}

fn table(
    input: Box<dyn Read + Send>,
    delimiter: u8,
    (header, expected): (HeaderFn, &str),
) -> anyhow::Result<Box<dyn Iterator<Item = Item> + Send>> {
    // Records end at LF only: the csv crate counts lines wrongly after CRLF. The CR that ends
    // the last field of a CRLF line is dropped by `field`.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .terminator(csv::Terminator::Any(b'\n'))
        .buffer_capacity(64 * 1024)
        .from_reader(input);
    let mut record = csv::ByteRecord::new();
    let found = loop {
        let read = reader.read_byte_record(&mut record);
        if !read.context("reading the header row")? {
            break false;
        }
        if !is_blank(&record) {
            break true;
        }
    };
    if !found {
        bail!("the input is empty: expected {expected}");
    }
    let (map, pending) = header(&record)?;
    Ok(Box::new(Table {
        width: record.len(),
        last_line: record.position().map_or(1, |p| p.line()),
        reader,
        record,
        delimiter,
        map,
        pending,
        done: false,
    }))
}

impl Iterator for Table {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        while !self.done {
            if !std::mem::take(&mut self.pending) {
                match self.reader.read_byte_record(&mut self.record) {
                    Ok(true) => {}
                    Ok(false) => self.done = true,
                    Err(e) => return Some(Err(self.read_error(e))),
                }
            }
            if !self.done && !is_blank(&self.record) {
                return Some(self.current());
            }
        }
        None
    }
}

impl Table {
    /// The record read last, as a row.
    fn current(&mut self) -> Item {
        let line = self.record.position().map_or(0, |p| p.line());
        self.last_line = line;
        let mapped = if self.record.len() == self.width {
            self.map.map(&self.record)
        } else {
            Err(format!(
                "expected {} fields (as many as the header has), found {}",
                self.width,
                self.record.len()
            ))
        };
        mapped
            .map(|row| SourceRow { line, ..row })
            .map_err(|reason| RowError {
                line,
                reason,
                raw: raw_record(&self.record, self.delimiter),
            })
    }

    fn read_error(&mut self, e: csv::Error) -> RowError {
        if e.is_io_error() {
            self.done = true;
        }
        RowError {
            line: e.position().map_or(self.last_line + 1, |p| p.line()),
            reason: format!("reading the input: {e}"),
            raw: String::new(),
        }
    }
}

/// Field `i` of a record, without the CR of a CRLF line end.
fn field(record: &csv::ByteRecord, i: usize) -> &[u8] {
    let bytes = record.get(i).unwrap_or_default();
    match bytes {
        [rest @ .., b'\r'] if i + 1 == record.len() => rest,
        _ => bytes,
    }
}

/// A blank line: one field of white space only.
fn is_blank(record: &csv::ByteRecord) -> bool {
    record.len() == 1 && field(record, 0).iter().all(u8::is_ascii_whitespace)
}

/// The text of every field of a record.
fn texts(record: &csv::ByteRecord) -> impl Iterator<Item = Cow<'_, str>> {
    (0..record.len()).map(|i| String::from_utf8_lossy(field(record, i)))
}

/// A record written back as CSV, for messages.
fn raw_record(record: &csv::ByteRecord, delimiter: u8) -> String {
    let mut out = String::new();
    for (i, text) in texts(record).enumerate() {
        if i > 0 {
            out.push(char::from(delimiter));
        }
        if text.contains([char::from(delimiter), '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&text.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&text);
        }
        if out.len() > RAW_LIMIT {
            break;
        }
    }
    cap(out)
}

const RAW_LIMIT: usize = 512;

fn cap(mut s: String) -> String {
    if s.len() > RAW_LIMIT {
        let mut end = RAW_LIMIT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// The header's names as `--from csv` matches them: trimmed, ASCII lower case.
fn exact_names(header: &csv::ByteRecord) -> Vec<String> {
    texts(header)
        .map(|c| c.trim().to_ascii_lowercase())
        .collect()
}

/// The header's names as the other products' files are matched: ASCII letters and digits only,
/// lower case ("Long URL", "long_url" and "longUrl" are all `longurl`).
fn loose_names(header: &csv::ByteRecord) -> Vec<String> {
    texts(header)
        .map(|c| {
            c.chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_lowercase())
                .collect()
        })
        .collect()
}

/// The first column named one of `wanted`.
fn column(names: &[String], wanted: &[&str]) -> Option<usize> {
    names.iter().position(|n| wanted.contains(&n.as_str()))
}

/// The header's cells for a message.
fn shown(header: &csv::ByteRecord) -> String {
    cap(texts(header).collect::<Vec<_>>().join(", "))
}

/// The text of column `index` (`""` when the format's file has no such column).
fn cell(record: &csv::ByteRecord, index: Option<usize>) -> Result<&str, String> {
    let Some(i) = index else {
        return Ok("");
    };
    std::str::from_utf8(field(record, i))
        .map_err(|_| format!("column {} is not valid UTF-8", i + 1))
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn title(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_string())
}

fn required_url(s: &str, column: &str) -> Result<String, String> {
    non_empty(s).ok_or_else(|| format!("missing {column}"))
}

/// The tags cell of snip's CSV: `a;b` (trimmed, empty ones dropped), or a JSON array of
/// strings taken as it is.
fn snip_tags(s: &str) -> Result<Vec<String>, String> {
    if s.trim_start().starts_with('[') {
        return serde_json::from_str(s)
            .map_err(|e| format!("tags: not a JSON array of strings: {e}"));
    }
    Ok(split_tags(s, &[';']))
}

/// The tags cell `snip export` writes: `a;b`, or a JSON array when a tag would not come back
/// the same from that (it contains `;`, starts or ends with white space, or the first one starts
/// with `[`).
pub fn tags_cell(tags: &[String]) -> String {
    let plain = tags
        .iter()
        .all(|t| !t.is_empty() && !t.contains(';') && t.trim() == t)
        && !tags.first().is_some_and(|t| t.starts_with('['));
    if plain {
        tags.join(";")
    } else {
        serde_json::to_string(tags).unwrap_or_default()
    }
}

fn split_tags(s: &str, separators: &[char]) -> Vec<String> {
    s.split(separators).filter_map(non_empty).collect()
}

/// A non-negative integer; `None` when empty.
fn count(s: &str, what: &str) -> Result<Option<u64>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    match s.parse::<u64>() {
        Ok(n) if !s.starts_with('+') => Ok(Some(n)),
        _ => Err(format!("{what}: {s:?} is not a non-negative integer")),
    }
}

fn click_limit(n: Option<u64>, what: &str) -> Result<Option<u64>, String> {
    match n {
        Some(0) => Err(format!("{what}: must be at least 1")),
        n => Ok(n),
    }
}

/// A timestamp (see [`timestamp`]); `None` when empty.
fn time(s: &str, what: &str, strict: bool) -> Result<Option<i64>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    match timestamp(s, strict) {
        Some(t) => Ok(Some(t)),
        None if strict => Err(format!(
            "{what}: {s:?} is not an RFC 3339 timestamp (2026-01-02T03:04:05Z) or a date \
             (2026-01-02)"
        )),
        None => Err(format!(
            "{what}: {s:?} is not a date and time (2026-01-02 03:04:05, with or without an \
             offset) or a date"
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// csv: snip's own CSV.

struct CsvColumns {
    code: Option<usize>,
    url: usize,
    title: Option<usize>,
    tags: Option<usize>,
    expires_at: Option<usize>,
    max_clicks: Option<usize>,
    created_at: Option<usize>,
    clicks: Option<usize>,
}

fn csv_header(header: &csv::ByteRecord) -> anyhow::Result<(Box<dyn MapRecord>, bool)> {
    let names = exact_names(header);
    let find = |wanted: &[&str]| column(&names, wanted);
    let Some(url) = find(&["url"]) else {
        bail!(
            "the header row ({}) has no `url` column: expected a header row naming the \
             columns, `url` required, and any of {}",
            shown(header),
            CSV_COLUMNS.join(", ")
        );
    };
    let columns = CsvColumns {
        code: find(&["code"]),
        url,
        title: find(&["title"]),
        tags: find(&["tags"]),
        expires_at: find(&["expires_at"]),
        max_clicks: find(&["max_clicks"]),
        created_at: find(&["created_at"]),
        clicks: find(&["clicks", "visits"]),
    };
    Ok((Box::new(columns), false))
}

impl MapRecord for CsvColumns {
    fn map(&self, r: &csv::ByteRecord) -> Result<SourceRow, String> {
        let text = |i: Option<usize>| cell(r, i).map(unescape_cell);
        Ok(SourceRow {
            line: 0,
            code: non_empty(&text(self.code)?),
            url: required_url(&text(Some(self.url))?, "url")?,
            // snip's own export: a title is kept exactly (only an empty cell is none), and a
            // tags cell that is a JSON array holds tags a `;` list cannot (see `tags_cell`).
            title: Some(text(self.title)?.into_owned()).filter(|t| !t.is_empty()),
            tags: snip_tags(&text(self.tags)?)?,
            expires_at: time(cell(r, self.expires_at)?, "expires_at", true)?,
            max_clicks: click_limit(
                count(cell(r, self.max_clicks)?, "max_clicks")?,
                "max_clicks",
            )?,
            created_at: time(cell(r, self.created_at)?, "created_at", true)?,
            visits: count(cell(r, self.clicks)?, "clicks")?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// shlink: the web client's CSV export.

struct ShlinkColumns {
    code: Option<usize>,
    short_url: Option<usize>,
    url: usize,
    title: Option<usize>,
    tags: Option<usize>,
    created: Option<usize>,
    visits: Option<usize>,
}

fn shlink_header(header: &csv::ByteRecord) -> anyhow::Result<(Box<dyn MapRecord>, bool)> {
    let names = loose_names(header);
    let find = |wanted: &[&str]| column(&names, wanted);
    let Some(url) = find(&["longurl"]) else {
        bail!(
            "Shlink: the header row ({}) has no `longUrl` column: expected the CSV of the web \
             client's Export button (createdAt, domain, shortCode, shortUrl, longUrl, title, \
             tags, visits) or the JSON of GET /rest/v3/short-urls",
            shown(header)
        );
    };
    let columns = ShlinkColumns {
        code: find(&["shortcode"]),
        short_url: find(&["shorturl"]),
        url,
        title: find(&["title"]),
        tags: find(&["tags"]),
        created: find(&["createdat", "datecreated"]),
        visits: find(&["visits", "visitscount"]),
    };
    Ok((Box::new(columns), false))
}

impl MapRecord for ShlinkColumns {
    fn map(&self, r: &csv::ByteRecord) -> Result<SourceRow, String> {
        // The web client takes the short code from the short URL's path, which a browser
        // percent-encodes.
        let code = match non_empty(cell(r, self.code)?) {
            Some(code) => Some(code),
            None => short_path(cell(r, self.short_url)?),
        };
        Ok(SourceRow {
            line: 0,
            code: code.map(|c| percent_decoded(&c)),
            url: required_url(cell(r, Some(self.url))?, "longUrl")?,
            title: title(cell(r, self.title)?),
            tags: split_tags(cell(r, self.tags)?, &['|']),
            created_at: time(cell(r, self.created)?, "createdAt", false)?,
            visits: count(cell(r, self.visits)?, "visits")?,
            ..SourceRow::default()
        })
    }
}

/// `%XX` escapes decoded, when what they give is UTF-8; the text as it was otherwise.
fn percent_decoded(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(b) if bytes[i] == b'%' => {
                out.push(b);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

/// The path of a short link, without slashes at its ends, query or fragment: the short code.
/// `https://bit.ly/3abc` and `bit.ly/3abc` give `3abc`; a bare `3abc` is the code itself; a
/// host alone gives `None`.
fn short_path(link: &str) -> Option<String> {
    let link = link.trim();
    let rest = link.split_once("://").map_or(link, |(_, rest)| rest);
    let path = match rest.split_once('/') {
        Some((_, path)) => path,
        None if !rest.contains('.') => rest,
        None => return None,
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    non_empty(path.trim_matches('/'))
}

// ---------------------------------------------------------------------------------------------
// yourls: the yourls_url table as CSV.

struct YourlsColumns {
    keyword: usize,
    url: usize,
    title: Option<usize>,
    timestamp: Option<usize>,
    clicks: Option<usize>,
}

/// The yourls_url table's columns, in the order YOURLS creates them.
const YOURLS_COLUMNS: [&str; 6] = ["keyword", "url", "title", "timestamp", "ip", "clicks"];

fn yourls_header(header: &csv::ByteRecord) -> anyhow::Result<(Box<dyn MapRecord>, bool)> {
    let names = loose_names(header);
    let find = |name: &str| column(&names, &[name]);
    if names.iter().any(|n| YOURLS_COLUMNS.contains(&n.as_str())) {
        let (Some(keyword), Some(url)) = (find("keyword"), find("url")) else {
            bail!(
                "YOURLS: the header row ({}) needs both a `keyword` and a `url` column (the \
                 yourls_url table has {})",
                shown(header),
                YOURLS_COLUMNS.join(", ")
            );
        };
        let columns = YourlsColumns {
            keyword,
            url,
            title: find("title"),
            timestamp: find("timestamp"),
            clicks: find("clicks"),
        };
        return Ok((Box::new(columns), false));
    }
    // phpMyAdmin exports without a header by default: the table's columns in their order.
    let width = header.len();
    let url_second = header
        .get(1)
        .is_some_and(|c| c.windows(3).any(|w| w == b"://"));
    if (2..=6).contains(&width) && url_second {
        let at = |i: usize| (i < width).then_some(i);
        let columns = YourlsColumns {
            keyword: 0,
            url: 1,
            title: at(2),
            timestamp: at(3),
            clicks: at(5),
        };
        return Ok((Box::new(columns), true));
    }
    bail!(
        "YOURLS: expected a header row naming the yourls_url table's columns ({}; `keyword` \
         and `url` required), or rows in that column order without a header, as phpMyAdmin \
         exports them; found {}",
        YOURLS_COLUMNS.join(", "),
        shown(header)
    )
}

impl MapRecord for YourlsColumns {
    fn map(&self, r: &csv::ByteRecord) -> Result<SourceRow, String> {
        // phpMyAdmin and `mysql --batch` write SQL NULL as NULL.
        let title_cell = cell(r, self.title)?;
        Ok(SourceRow {
            line: 0,
            code: non_empty(cell(r, Some(self.keyword))?),
            url: required_url(cell(r, Some(self.url))?, "url")?,
            title: title(title_cell).filter(|t| t != "NULL"),
            created_at: time(cell(r, self.timestamp)?, "timestamp", false)?,
            visits: count(cell(r, self.clicks)?, "clicks")?,
            ..SourceRow::default()
        })
    }
}

// ---------------------------------------------------------------------------------------------
// bitly: the dashboard's CSV export.

struct BitlyColumns {
    link: Option<usize>,
    custom: Option<usize>,
    url: usize,
    title: Option<usize>,
    tags: Option<usize>,
    created: Option<usize>,
    clicks: Option<usize>,
}

const BITLY_LINK: &[&str] = &[
    "link",
    "bitlink",
    "bitlylink",
    "shortlink",
    "shorturl",
    "shortenedlink",
    "shortenedurl",
    "id",
];
const BITLY_CUSTOM: &[&str] = &[
    "customlink",
    "customlinks",
    "custombitlink",
    "custombitlinks",
    "custombackhalf",
    "custombackhalfs",
    "custombackhalves",
];
const BITLY_URL: &[&str] = &[
    "longurl",
    "destinationurl",
    "destination",
    "originalurl",
    "url",
];

fn bitly_header(header: &csv::ByteRecord) -> anyhow::Result<(Box<dyn MapRecord>, bool)> {
    let names = loose_names(header);
    let find = |wanted: &[&str]| column(&names, wanted);
    let (link, custom) = (find(BITLY_LINK), find(BITLY_CUSTOM));
    let url = find(BITLY_URL);
    let Some(url) = url.filter(|_| link.is_some() || custom.is_some()) else {
        bail!(
            "Bitly: the header row ({}) needs a short link column (Link, Bitly link, Short \
             link…) and a destination column (Long URL, Destination URL…): expected the \
             dashboard's CSV export, or the JSON of GET /v4/groups/{{guid}}/bitlinks",
            shown(header)
        );
    };
    let columns = BitlyColumns {
        link,
        custom,
        url,
        title: find(&["title", "name"]),
        tags: find(&["tags", "tag"]),
        created: find(&[
            "createdat",
            "created",
            "datecreated",
            "createddate",
            "creationdate",
        ]),
        clicks: find(&["clicks", "totalclicks", "engagements", "totalengagements"]),
    };
    Ok((Box::new(columns), false))
}

impl MapRecord for BitlyColumns {
    fn map(&self, r: &csv::ByteRecord) -> Result<SourceRow, String> {
        let custom = cell(r, self.custom)?
            .split([',', ';', '|', ' '])
            .find_map(short_path);
        let code = match custom {
            Some(code) => Some(code),
            None => short_path(cell(r, self.link)?),
        };
        Ok(SourceRow {
            line: 0,
            code,
            url: required_url(cell(r, Some(self.url))?, "long URL")?,
            title: title(cell(r, self.title)?),
            tags: split_tags(cell(r, self.tags)?, &[',', ';', '|']),
            created_at: time(cell(r, self.created)?, "created", false)?,
            visits: count(cell(r, self.clicks)?, "clicks")?,
            ..SourceRow::default()
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Timestamps.

/// Unix seconds of `s`. Strict (`--from csv`): RFC 3339 (`2026-01-02T03:04:05Z`, `T`, `t` or a
/// space between date and time, fractions of a second dropped, `Z` or a `±hh:mm` offset) or a
/// bare date (midnight UTC). Lenient (the other products' files) also takes no seconds, no
/// zone (UTC), `±hhmm` and `±hh` offsets, and `UTC` or a space before the zone.
fn timestamp(s: &str, strict: bool) -> Option<i64> {
    let b = s.as_bytes();
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(digits(b, 0, 4)?).ok()?,
        digits(b, 5, 2)?,
        digits(b, 8, 2)?,
    )?;
    if b.len() == 10 {
        return Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp());
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.get(13) != Some(&b':') {
        return None;
    }
    let (hour, minute) = (digits(b, 11, 2)?, digits(b, 14, 2)?);
    let (mut second, mut at) = (0, 16);
    if b.get(16) == Some(&b':') {
        second = digits(b, 17, 2)?;
        at = 19;
        if matches!(b.get(at), Some(b'.' | b',')) {
            let fraction = b[at + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            if fraction == 0 {
                return None;
            }
            at += 1 + fraction;
        }
    } else if strict {
        return None;
    }
    let offset = zone(&b[at..], strict)?;
    let local = date
        .and_hms_opt(hour, minute, second)?
        .and_utc()
        .timestamp();
    Some(local - offset)
}

/// Seconds east of UTC of a zone designator.
fn zone(b: &[u8], strict: bool) -> Option<i64> {
    let b = match b {
        [b' ', rest @ ..] if !strict => rest,
        _ => b,
    };
    let (sign, rest) = match b {
        [] | b"UTC" if !strict => return Some(0),
        [b'Z' | b'z'] => return Some(0),
        [b'+', rest @ ..] => (1, rest),
        [b'-', rest @ ..] => (-1, rest),
        _ => return None,
    };
    let (hours, minutes) = match rest {
        [_, _, b':', _, _] => (digits(rest, 0, 2)?, digits(rest, 3, 2)?),
        [_, _, _, _] if !strict => (digits(rest, 0, 2)?, digits(rest, 2, 2)?),
        [_, _] if !strict => (digits(rest, 0, 2)?, 0),
        _ => return None,
    };
    (hours < 24 && minutes < 60).then(|| sign * i64::from(hours * 3600 + minutes * 60))
}

/// The number written with `len` ASCII digits at `at`.
fn digits(b: &[u8], at: usize, len: usize) -> Option<u32> {
    b.get(at..at + len)?.iter().try_fold(0u32, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}
