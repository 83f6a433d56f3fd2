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

// ---------------------------------------------------------------------------------------------
// JSON: Shlink's REST API, Kutt's API, Bitly's API v4.

/// Where one product's JSON keeps its list of links, and how it reads one link.
#[derive(Clone, Copy)]
struct JsonShape {
    /// The keys leading from a page object to its list of links.
    path: &'static [&'static str],
    /// The fields of a link object that are read; the others are skipped unread.
    fields: &'static [&'static str],
    /// A key every link object has: an object with it (and not `path[0]`) is one link.
    url_key: &'static str,
    /// What was expected, for messages.
    expected: &'static str,
    link: fn(&Fields) -> Result<SourceRow, String>,
}

const SHLINK_JSON: JsonShape = JsonShape {
    path: &["shortUrls", "data"],
    fields: &[
        "shortCode",
        "longUrl",
        "title",
        "tags",
        "meta",
        "dateCreated",
        "visitsSummary",
        "visitsCount",
    ],
    url_key: "longUrl",
    expected: "Shlink: expected the JSON of GET /rest/v3/short-urls \
               ({\"shortUrls\":{\"data\":[…]}}, one page or several in a row), an array of its \
               short URL objects, or one short URL object per line",
    link: shlink_link,
};

const KUTT_JSON: JsonShape = JsonShape {
    path: &["data"],
    fields: &[
        "address",
        "target",
        "description",
        "expire_in",
        "created_at",
        "visit_count",
        "banned",
        "password",
    ],
    url_key: "target",
    expected: "Kutt: expected the JSON of GET /api/v2/links ({\"total\":…,\"data\":[…]}, one \
               page or several in a row), an array of its link objects, or one link object per \
               line",
    link: kutt_link,
};

const BITLY_JSON: JsonShape = JsonShape {
    path: &["links"],
    fields: &[
        "link",
        "id",
        "custom_bitlinks",
        "long_url",
        "title",
        "tags",
        "created_at",
    ],
    url_key: "long_url",
    expected: "Bitly: expected the JSON of GET /v4/groups/{guid}/bitlinks \
               ({\"links\":[…]}, one page or several in a row), an array of its bitlink \
               objects, or one bitlink object per line",
    link: bitly_link,
};

enum Message {
    Rows(Vec<Item>),
    /// The input is not what the format reads; sent only as the first message.
    Fatal(String),
}

/// Rows handed over at once by the JSON reader's thread.
const BATCH: usize = 256;

fn json_rows(
    shape: JsonShape,
    input: Box<dyn Read + Send>,
) -> anyhow::Result<Box<dyn Iterator<Item = Item> + Send>> {
    let (tx, rx) = sync_channel(16);
    std::thread::Builder::new()
        .name("snip-import-json".into())
        .spawn(move || parse_json(shape, input, tx))
        .context("starting the JSON reader")?;
    let batch = match rx.recv() {
        Ok(Message::Fatal(why)) => bail!("{why}"),
        Ok(Message::Rows(rows)) => rows,
        Err(_) => Vec::new(),
    };
    Ok(Box::new(JsonRows {
        batch: batch.into_iter(),
        rx,
    }))
}

struct JsonRows {
    batch: std::vec::IntoIter<Item>,
    rx: Receiver<Message>,
}

impl Iterator for JsonRows {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(row) = self.batch.next() {
                return Some(row);
            }
            match self.rx.recv() {
                Ok(Message::Rows(rows)) => self.batch = rows.into_iter(),
                Ok(Message::Fatal(_)) | Err(_) => return None,
            }
        }
    }
}

/// The JSON reader's thread: every top-level value of the input in turn (a page, an array of
/// links, or one link), its links sent as they are parsed.
fn parse_json(shape: JsonShape, input: Box<dyn Read + Send>, tx: SyncSender<Message>) {
    let mut sink = Sink {
        shape,
        tx,
        batch: Vec::with_capacity(BATCH),
        index: 0,
        produced: false,
        problem: None,
        closed: false,
    };
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(64 * 1024, input));
    while de.end().is_err() {
        let parsed = Top { sink: &mut sink }.deserialize(&mut de);
        let problem = match &parsed {
            Err(_) if sink.closed => return,
            Err(e) => format!("unreadable JSON: {e}"),
            Ok(()) => match sink.problem.take() {
                Some(problem) => problem,
                None => continue,
            },
        };
        // A problem before any link means the file is not of this format; after some, only
        // this value is skipped (when the JSON is still well-formed).
        if !sink.produced {
            let _ = sink.tx.send(Message::Fatal(problem));
            return;
        }
        sink.index += 1;
        let error = RowError {
            line: sink.index,
            reason: problem,
            raw: String::new(),
        };
        if sink.push(Err(error)).is_err() || parsed.is_err() {
            break;
        }
    }
    let _ = sink.flush();
}

/// Where the links parsed go.
struct Sink {
    shape: JsonShape,
    tx: SyncSender<Message>,
    batch: Vec<Item>,
    /// Links seen so far.
    index: u64,
    /// Some row was made (and so the input is of this format).
    produced: bool,
    /// The last top-level value was not of this format.
    problem: Option<String>,
    /// The receiver is gone: nobody reads the rows any more.
    closed: bool,
}

/// The message of the error with which parsing stops when the rows are no longer read.
const STOPPED: &str = "the rows are no longer read";

impl Sink {
    fn push(&mut self, row: Item) -> Result<(), &'static str> {
        self.produced = true;
        self.batch.push(row);
        if self.batch.len() < BATCH {
            return Ok(());
        }
        self.flush()
    }

    fn flush(&mut self) -> Result<(), &'static str> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let rows = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let sent = self.tx.send(Message::Rows(rows));
        self.closed = sent.is_err();
        sent.map_err(|_| STOPPED)
    }

    fn link(&mut self, element: Element) -> Result<(), &'static str> {
        self.index += 1;
        let line = self.index;
        let error = |reason, raw| RowError { line, reason, raw };
        let row = match element {
            Element::Link(fields) => (self.shape.link)(&fields)
                .map(|row| SourceRow { line, ..row })
                .map_err(|reason| error(reason, fields.raw())),
            Element::Other(kind, raw) => {
                Err(error(format!("expected a link object, found {kind}"), raw))
            }
        };
        self.push(row)
    }

    /// A top-level object without the list key: one link, or not this format.
    fn single(&mut self, fields: Fields, keys: &[String]) -> Result<(), &'static str> {
        if fields.get(self.shape.url_key).is_some() {
            return self.link(Element::Link(fields));
        }
        self.problem = Some(format!(
            "{}; found an object with the keys {}",
            self.shape.expected,
            keys.join(", ")
        ));
        Ok(())
    }

    fn not_a_list(&mut self, found: &str) {
        self.problem = Some(format!("{}; found {found}", self.shape.expected));
    }
}

/// The fields of one link object that its format reads, in the order of `JsonShape::fields`.
struct Fields {
    keys: &'static [&'static str],
    values: Vec<Option<Value>>,
}

impl Fields {
    fn new(keys: &'static [&'static str]) -> Fields {
        Fields {
            keys,
            values: vec![None; keys.len()],
        }
    }

    /// Keeps `value` when `key` is one of the fields read; `None` when it is not.
    fn slot(&mut self, key: &str) -> Option<&mut Option<Value>> {
        let at = self.keys.iter().position(|k| *k == key)?;
        self.values.get_mut(at)
    }

    /// The fields read, as a JSON object, for messages.
    fn raw(&self) -> String {
        let object: Map<String, Value> = self
            .keys
            .iter()
            .zip(&self.values)
            .filter_map(|(k, v)| Some((k.to_string(), v.clone()?)))
            .collect();
        cap(Value::Object(object).to_string())
    }
}

/// What JSON objects and link objects have in common: fields by name.
trait Get {
    fn get(&self, key: &str) -> Option<&Value>;
}

impl Get for Fields {
    fn get(&self, key: &str) -> Option<&Value> {
        let at = self.keys.iter().position(|k| *k == key)?;
        self.values.get(at)?.as_ref()
    }
}

impl Get for Value {
    fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?.get(key)
    }
}

/// One element of a list of links.
enum Element {
    Link(Fields),
    /// Not an object: what it is, and its JSON (scalars only).
    Other(&'static str, String),
}

/// One top-level JSON value: a page, an array of links, or one link.
struct Top<'a> {
    sink: &'a mut Sink,
}

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.sink.shape.expected)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        links(self.sink, seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let shape = self.sink.shape;
        let mut fields = Fields::new(shape.fields);
        let mut keys = Vec::new();
        let mut found = false;
        while let Some(key) = map.next_key::<Cow<'_, str>>()? {
            if !found && key == shape.path[0] {
                found = true;
                let rest = &shape.path[1..];
                map.next_value_seed(Nested {
                    sink: &mut *self.sink,
                    path: rest,
                })?;
            } else if let Some(slot) = fields.slot(&key).filter(|_| !found) {
                *slot = Some(map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
            if keys.len() < 8 {
                keys.push(key.into_owned());
            }
        }
        if !found {
            self.sink.single(fields, &keys).map_err(de::Error::custom)?;
        }
        Ok(())
    }
}

/// The value under a key of a page: the list of links once `path` is walked.
struct Nested<'a> {
    sink: &'a mut Sink,
    path: &'static [&'static str],
}

impl<'de> DeserializeSeed<'de> for Nested<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Nested<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.sink.shape.expected)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.path.is_empty() {
            return links(self.sink, seq);
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.sink
            .not_a_list("an array where an object was expected");
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut found = false;
        while let Some(key) = map.next_key::<Cow<'_, str>>()? {
            if !found && self.path.first() == Some(&key.as_ref()) {
                found = true;
                map.next_value_seed(Nested {
                    sink: &mut *self.sink,
                    path: &self.path[1..],
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if !found {
            self.sink.not_a_list("an object without the list of links");
        }
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.sink
            .not_a_list("null where the list of links was expected");
        Ok(())
    }
}

fn links<'de, A: SeqAccess<'de>>(sink: &mut Sink, mut seq: A) -> Result<(), A::Error> {
    let fields = sink.shape.fields;
    while let Some(element) = seq.next_element_seed(ElementSeed { fields })? {
        sink.link(element).map_err(de::Error::custom)?;
    }
    Ok(())
}

/// Reads one element of a list of links, keeping only the fields its format reads.
struct ElementSeed {
    fields: &'static [&'static str],
}

impl<'de> DeserializeSeed<'de> for ElementSeed {
    type Value = Element;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Element, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ElementSeed {
    type Value = Element;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a link object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Element, A::Error> {
        let mut fields = Fields::new(self.fields);
        let keys = KeySeed {
            fields: self.fields,
        };
        while let Some(at) = map.next_key_seed(keys)? {
            match at.and_then(|at| fields.values.get_mut(at)) {
                Some(slot) => *slot = Some(map.next_value()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Element::Link(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Element, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Element::Other("an array", "[…]".into()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Element, E> {
        Ok(Element::Other("null", "null".into()))
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Element, E> {
        Ok(Element::Other("a boolean", b.to_string()))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Element, E> {
        Ok(Element::Other("a number", n.to_string()))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Element, E> {
        Ok(Element::Other("a number", n.to_string()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Element, E> {
        Ok(Element::Other("a number", n.to_string()))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Element, E> {
        Ok(Element::Other("a string", cap(Value::from(s).to_string())))
    }
}

/// Reads a key of a link object as the index of the field it names (`None` for a field that is
/// not read), without allocating.
#[derive(Clone, Copy)]
struct KeySeed {
    fields: &'static [&'static str],
}

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<usize>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.fields.iter().position(|k| *k == key))
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string field, trimmed; `None` when missing, null or empty.
fn json_str<'a>(v: &'a impl Get, key: &str) -> Result<Option<&'a str>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim()).filter(|s| !s.is_empty())),
        Some(other) => Err(format!("{key}: expected a string, found {}", kind(other))),
    }
}

fn json_url(v: &impl Get, key: &str) -> Result<String, String> {
    json_str(v, key)?
        .map(str::to_string)
        .ok_or_else(|| format!("missing {key}"))
}

fn json_title(v: &impl Get, key: &str) -> Result<Option<String>, String> {
    match v.get(key) {
        Some(Value::String(s)) => Ok(title(s)),
        _ => json_str(v, key).map(|_| None),
    }
}

/// A non-negative integer field (a number, or a string of digits).
fn json_count(v: &impl Get, key: &str) -> Result<Option<u64>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{key}: {n} is not a non-negative integer")),
        Some(Value::String(s)) => count(s, key),
        Some(other) => Err(format!("{key}: expected a number, found {}", kind(other))),
    }
}

fn json_time(v: &impl Get, key: &str) -> Result<Option<i64>, String> {
    json_str(v, key)?.map_or(Ok(None), |s| time(s, key, false))
}

fn json_tags(v: &impl Get, key: &str) -> Result<Vec<String>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(tags)) => tags
            .iter()
            .filter(|t| !t.is_null())
            .map(|t| match t {
                Value::String(s) => Ok(non_empty(s)),
                other => Err(format!("{key}: expected strings, found {}", kind(other))),
            })
            .filter_map(Result::transpose)
            .collect(),
        Some(other) => Err(format!("{key}: expected an array, found {}", kind(other))),
    }
}

/// A Shlink short URL (`GET /rest/v3/short-urls`; `visitsCount` of API v2 too).
fn shlink_link(v: &Fields) -> Result<SourceRow, String> {
    let meta = v.get("meta").unwrap_or(&Value::Null);
    let visits = match v.get("visitsSummary") {
        Some(summary) if summary.is_object() => json_count(summary, "total")?,
        _ => json_count(v, "visitsCount")?,
    };
    Ok(SourceRow {
        line: 0,
        code: json_str(v, "shortCode")?.map(str::to_string),
        url: json_url(v, "longUrl")?,
        title: json_title(v, "title")?,
        tags: json_tags(v, "tags")?,
        expires_at: json_time(meta, "validUntil")?,
        max_clicks: click_limit(json_count(meta, "maxVisits")?, "maxVisits")?,
        created_at: json_time(v, "dateCreated")?,
        visits,
    })
}

/// A Kutt link (`GET /api/v2/links`, `utils.sanitize.link`).
fn kutt_link(v: &Fields) -> Result<SourceRow, String> {
    if v.get("banned") == Some(&Value::Bool(true)) {
        return Err("banned in Kutt: not imported".into());
    }
    let password = match v.get("password") {
        Some(Value::Bool(set)) => *set,
        Some(Value::String(hash)) => !hash.is_empty(),
        _ => false,
    };
    if password {
        return Err(
            "password-protected in Kutt, and snip links have no password: not imported".into(),
        );
    }
    Ok(SourceRow {
        line: 0,
        code: json_str(v, "address")?.map(str::to_string),
        url: json_url(v, "target")?,
        title: json_title(v, "description")?,
        expires_at: json_time(v, "expire_in")?,
        created_at: json_time(v, "created_at")?,
        visits: json_count(v, "visit_count")?,
        ..SourceRow::default()
    })
}

/// A Bitly bitlink (`GET /v4/groups/{guid}/bitlinks`): the code is its first custom bitlink's
/// back-half, else its own.
fn bitly_link(v: &Fields) -> Result<SourceRow, String> {
    let custom = match v.get("custom_bitlinks") {
        Some(Value::Array(all)) => all.iter().filter_map(Value::as_str).find_map(short_path),
        _ => None,
    };
    let code = match custom {
        Some(code) => Some(code),
        None => json_str(v, "link")?
            .or(json_str(v, "id")?)
            .and_then(short_path),
    };
    Ok(SourceRow {
        line: 0,
        code,
        url: json_url(v, "long_url")?,
        title: json_title(v, "title")?,
        tags: json_tags(v, "tags")?,
        created_at: json_time(v, "created_at")?,
        ..SourceRow::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Rows = Vec<Result<SourceRow, RowError>>;

    fn read(format: SourceFormat, text: &'static str) -> Rows {
        rows(format, Box::new(Cursor::new(text.as_bytes())))
            .unwrap()
            .collect()
    }

    fn file_error(format: SourceFormat, text: &'static str) -> String {
        match rows(format, Box::new(Cursor::new(text.as_bytes()))) {
            Ok(_) => panic!("{text:?} is read as {}", format.name()),
            Err(e) => format!("{e:#}"),
        }
    }

    fn link(line: u64, code: &str, url: &str) -> SourceRow {
        SourceRow {
            line,
            code: Some(code.into()),
            url: url.into(),
            ..SourceRow::default()
        }
    }

    fn strings(all: &[&str]) -> Vec<String> {
        all.iter().map(|s| s.to_string()).collect()
    }

    fn error(line: u64, reason: &str, raw: &str) -> Result<SourceRow, RowError> {
        Err(RowError {
            line,
            reason: reason.into(),
            raw: raw.into(),
        })
    }

    /// A JSON row error, its `raw` compared as JSON (key order is serde_json's to choose).
    fn assert_json_error(got: &Result<SourceRow, RowError>, line: u64, reason: &str, key: &str) {
        let e = got.as_ref().expect_err("a row error");
        assert_eq!((e.line, e.reason.as_str()), (line, reason));
        let raw: Value = serde_json::from_str(&e.raw).expect("raw is the link's JSON");
        assert!(raw.get(key).is_some(), "{raw}");
    }

    #[test]
    fn formats_are_named_as_the_from_option_names_them() {
        for format in SourceFormat::ALL {
            assert_eq!(SourceFormat::parse(format.name()), Some(format));
        }
        assert_eq!(SourceFormat::parse(" YOURLS "), Some(SourceFormat::Yourls));
        assert_eq!(SourceFormat::parse("json"), None);
        let names: Vec<_> = SourceFormat::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(names, ["tsv", "csv", "shlink", "yourls", "kutt", "bitly"]);
    }

    #[test]
    fn tsv_lines_are_code_tab_url() {
        let got = read(
            SourceFormat::Tsv,
            include_str!("../../tests/fixtures/import/links.tsv"),
        );
        let want = vec![
            Ok(link(2, "docs", "https://example.com/docs/")),
            Ok(link(3, "café", "https://example.com/caf%C3%A9?lang=fr")),
            Ok(SourceRow {
                code: None,
                ..link(5, "", "https://example.com/no-code")
            }),
            error(6, "expected CODE<TAB>URL", "this line has no tab"),
            Ok(link(
                7,
                "spring",
                "https://example.com/spring?utm_source=mail&x=1,2",
            )),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn csv_columns_in_any_order_are_read_back() {
        let got = read(
            SourceFormat::Csv,
            include_str!("../../tests/fixtures/import/links.csv"),
        );
        let want = vec![
            Ok(SourceRow {
                title: Some("Spring sale, 50% off: \"today only\"".into()),
                tags: strings(&["sales", "seasonal"]),
                expires_at: Some(1_782_777_600),
                max_clicks: Some(100),
                created_at: Some(1_767_323_045),
                visits: Some(1204),
                ..link(2, "spring", "https://shop.example.com/spring")
            }),
            Ok(SourceRow {
                title: Some("=HYPERLINK(\"https://evil.example/\",\"click me\")".into()),
                tags: strings(&["@team", "ops"]),
                created_at: Some(1_767_220_200),
                visits: Some(0),
                ..link(3, "-report", "https://example.com/report")
            }),
            Ok(SourceRow {
                title: Some("Café crème ☕".into()),
                created_at: Some(1_767_312_000),
                ..link(4, "café", "https://example.com/caf%C3%A9")
            }),
            Ok(SourceRow {
                code: None,
                title: Some("Two\nlines".into()),
                max_clicks: Some(5),
                visits: Some(7),
                ..link(5, "", "https://example.com/two")
            }),
            error(
                7,
                "created_at: \"yesterday\" is not an RFC 3339 timestamp (2026-01-02T03:04:05Z) \
                 or a date (2026-01-02)",
                "Broken date,https://example.com/broken,broken,,,yesterday,,,",
            ),
            error(
                8,
                "max_clicks: must be at least 1",
                "Zero limit,https://example.com/zero,zero,,,,,0,",
            ),
            error(
                9,
                "expected 9 fields (as many as the header has), found 3",
                "Short row,https://example.com/short,short",
            ),
            error(10, "missing url", ",,nourl,,,,,,"),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn csv_without_a_url_column_is_refused_whole() {
        let why = file_error(SourceFormat::Csv, "code,link\nabc,https://a.example/\n");
        assert!(why.contains("no `url` column"), "{why}");
        assert!(why.contains("code, link"), "{why}");
        let why = file_error(SourceFormat::Csv, "");
        assert!(why.contains("empty") && why.contains("`url`"), "{why}");
    }

    #[test]
    fn csv_header_names_ignore_case_and_space_and_take_visits_for_clicks() {
        let got = read(
            SourceFormat::Csv,
            "  VISITS ,Url,Code\r\n3,https://a.example/,a\r\n",
        );
        let want = SourceRow {
            visits: Some(3),
            ..link(2, "a", "https://a.example/")
        };
        assert_eq!(got, vec![Ok(want)]);
        // A spreadsheet's `;`, CRLF line ends and blank lines.
        let got = read(
            SourceFormat::Csv,
            "\r\ncode;url;tags\r\n\r\na;https://a.example/?x=1,2;\"x;y\"\r\n   \r\n",
        );
        let want = SourceRow {
            tags: strings(&["x", "y"]),
            ..link(4, "a", "https://a.example/?x=1,2")
        };
        assert_eq!(got, vec![Ok(want)]);
    }

    #[test]
    fn escaped_cells_come_back_exactly() {
        let cases = [
            "",
            "plain",
            "=1+2",
            "+33 1 23",
            "-5",
            "@SUM(A1)",
            "\tindented",
            "\rreturn",
            "'",
            "'quoted",
            "'=already",
            "''=twice",
            "a=b",
            "café=☕",
            "=HYPERLINK(\"https://evil.example/\")",
        ];
        for s in cases {
            let escaped = escape_cell(s);
            assert_eq!(unescape_cell(&escaped), s, "{s:?} → {escaped:?}");
            assert!(!escaped.starts_with(is_formula_start), "{escaped:?}");
        }
        // Every string of up to 4 characters from an alphabet of the tricky ones.
        let alphabet = ['\'', '=', '-', '\t', 'a', '@'];
        let mut all = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = all
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            all.extend(longer);
        }
        all.sort();
        all.dedup();
        for s in &all {
            let escaped = escape_cell(s);
            assert_eq!(unescape_cell(&escaped), s.as_str(), "{s:?} → {escaped:?}");
            let after_excel = escaped.strip_prefix('\'').unwrap_or(&escaped);
            assert_eq!(
                escaped.len() > s.len(),
                after_excel.starts_with(is_formula_start) || needs_guard(s),
            );
        }
        assert_eq!(escape_cell("=1"), "'=1");
        assert_eq!(escape_cell("'=1"), "''=1");
        assert!(matches!(escape_cell("plain"), Cow::Borrowed(_)));
        assert_eq!(unescape_cell("'plain"), "'plain");
        assert_eq!(unescape_cell("'-5"), "-5");
    }

    #[test]
    fn a_shlink_web_client_export_is_read() {
        let got = read(
            SourceFormat::Shlink,
            include_str!("../../tests/fixtures/import/shlink.csv"),
        );
        let want = vec![
            Ok(SourceRow {
                title: Some("Docs, \"v2\" edition".into()),
                tags: strings(&["docs", "help"]),
                created_at: Some(1_680_336_000),
                visits: Some(42),
                ..link(2, "docs", "https://example.com/docs")
            }),
            Ok(SourceRow {
                title: Some("Café ☕".into()),
                created_at: Some(1_680_435_000),
                visits: Some(0),
                ..link(3, "café", "https://example.com/café")
            }),
            Ok(SourceRow {
                tags: strings(&["sales", "q2"]),
                created_at: Some(1_680_531_300),
                visits: Some(1000),
                ..link(4, "promo", "https://example.com/promo?a=1&b=2")
            }),
            error(
                5,
                "visits: \"many\" is not a non-negative integer",
                "2023-04-04T08:00:00+00:00,s.test,bad,https://s.test/bad,https://example.com/bad,\
                 Bad count,,many",
            ),
            error(
                6,
                "missing longUrl",
                "2023-04-05T00:00:00+00:00,s.test,nourl,https://s.test/nourl,,No destination,,3",
            ),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn a_shlink_api_answer_is_read() {
        let got = read(
            SourceFormat::Shlink,
            include_str!("../../tests/fixtures/import/shlink-api.json"),
        );
        let want = [
            SourceRow {
                title: Some("Welcome to \"Steam\", the store".into()),
                tags: strings(&["games", "tech"]),
                expires_at: Some(1_893_456_000),
                max_clicks: Some(100),
                created_at: Some(1_471_804_456),
                visits: Some(328),
                ..link(1, "12C18", "https://store.example.com/games?ref=a,b")
            },
            SourceRow {
                title: Some("Ünïcödé ✓".into()),
                created_at: Some(1_709_208_000),
                visits: Some(0),
                ..link(2, "ünïcode", "https://example.com/ünïcode")
            },
            SourceRow {
                tags: strings(&["legacy"]),
                created_at: Some(1_443_724_456),
                visits: Some(25),
                ..link(3, "123bA", "https://www.example.org/")
            },
        ];
        assert_eq!(got.len(), 5, "{got:?}");
        for (got, want) in got.iter().zip(want) {
            assert_eq!(got, &Ok(want));
        }
        let reason = "dateCreated: \"yesterday\" is not a date and time (2026-01-02 03:04:05, \
                      with or without an offset) or a date";
        assert_json_error(&got[3], 4, reason, "shortCode");
        assert_json_error(&got[4], 5, "missing longUrl", "shortCode");
    }

    #[test]
    fn shlink_json_that_is_not_a_list_of_short_urls_is_refused_whole() {
        let why = file_error(SourceFormat::Shlink, "{\"error\": \"Invalid API key\"}");
        assert!(why.contains("GET /rest/v3/short-urls"), "{why}");
        assert!(why.contains("keys error"), "{why}");
        let why = file_error(SourceFormat::Shlink, "{\"shortUrls\": {\"data\": [}");
        assert!(why.contains("unreadable JSON"), "{why}");
        let why = file_error(SourceFormat::Shlink, "shortCode,title\nabc,T\n");
        assert!(why.contains("no `longUrl` column"), "{why}");
    }

    #[test]
    fn a_yourls_table_with_a_header_is_read() {
        let got = read(
            SourceFormat::Yourls,
            include_str!("../../tests/fixtures/import/yourls.csv"),
        );
        let want = vec![
            Ok(SourceRow {
                title: Some("ozh.org".into()),
                created_at: Some(1_254_398_400),
                visits: Some(12),
                ..link(2, "ozh", "https://ozh.org/")
            }),
            Ok(SourceRow {
                title: Some("YOURLS: Your Own URL Shortener, \"the\" original".into()),
                created_at: Some(1_254_398_401),
                visits: Some(1024),
                ..link(3, "yourls", "https://yourls.org/")
            }),
            Ok(SourceRow {
                title: Some("Déjà vu ✓".into()),
                created_at: Some(1_677_628_799),
                visits: Some(0),
                ..link(4, "déjà", "https://example.com/d%C3%A9j%C3%A0")
            }),
            Ok(SourceRow {
                created_at: Some(1_704_067_200),
                visits: Some(5),
                ..link(5, "notitle", "https://example.com/none")
            }),
            error(
                6,
                "timestamp: \"2024-02-30 10:00:00\" is not a date and time (2026-01-02 03:04:05, \
                 with or without an offset) or a date",
                "broken,https://example.com/broken,Broken,2024-02-30 10:00:00,10.0.0.1,1",
            ),
            error(
                7,
                "clicks: \"-3\" is not a non-negative integer",
                "neg,https://example.com/neg,Negative,2024-01-01 00:00:00,10.0.0.1,-3",
            ),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn a_yourls_table_without_a_header_is_read_in_column_order() {
        let got = read(
            SourceFormat::Yourls,
            include_str!("../../tests/fixtures/import/yourls-phpmyadmin.csv"),
        );
        let want = vec![
            Ok(SourceRow {
                title: Some("ozh.org".into()),
                created_at: Some(1_254_398_400),
                visits: Some(12),
                ..link(1, "ozh", "https://ozh.org/")
            }),
            Ok(SourceRow {
                title: Some("Title with \"quotes\", and a comma".into()),
                created_at: Some(1_588_655_105),
                visits: Some(7),
                ..link(2, "multi", "https://example.com/a")
            }),
            Ok(SourceRow {
                title: Some("Ça va ✓".into()),
                created_at: Some(1_623_053_350),
                visits: Some(0),
                ..link(3, "ça", "https://example.com/%C3%A7a")
            }),
            error(
                4,
                "expected 6 fields (as many as the header has), found 2",
                "short,https://example.com/short",
            ),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn yourls_files_with_semicolons_or_tabs_are_read_and_others_refused() {
        let semicolons = "keyword;url;title\nabc;https://a.example/?x=1,2;A, b\n";
        let tabs = "url\tkeyword\nhttps://a.example/?x=1,2\tabc\n";
        for text in [semicolons, tabs] {
            let got = read(SourceFormat::Yourls, text);
            let title = (text == semicolons).then(|| "A, b".to_string());
            let want = SourceRow {
                title,
                ..link(2, "abc", "https://a.example/?x=1,2")
            };
            assert_eq!(got, vec![Ok(want)], "{text:?}");
        }
        let why = file_error(SourceFormat::Yourls, "url,title\nhttps://a.example/,A\n");
        assert!(why.contains("`keyword`"), "{why}");
        let why = file_error(SourceFormat::Yourls, "abc,def\n");
        assert!(why.contains("yourls_url"), "{why}");
    }

    #[test]
    fn a_kutt_api_page_is_read() {
        let got = read(
            SourceFormat::Kutt,
            include_str!("../../tests/fixtures/import/kutt.json"),
        );
        let want = [
            SourceRow {
                title: Some("Docs, \"v3\" edition".into()),
                created_at: Some(1_709_287_200),
                visits: Some(17),
                ..link(1, "docs", "https://example.com/docs")
            },
            SourceRow {
                title: Some("Ünïcödé ✓".into()),
                expires_at: Some(1_893_456_000),
                created_at: Some(1_709_378_553),
                visits: Some(0),
                ..link(2, "émoji", "https://example.com/%C3%A9moji")
            },
            SourceRow {
                expires_at: Some(1_782_907_200),
                created_at: Some(1_709_424_000),
                visits: Some(3),
                ..link(3, "sqlite", "https://example.com/sqlite?a=1&b=2")
            },
        ];
        assert_eq!(got.len(), 6, "{got:?}");
        for (got, want) in got.iter().zip(want) {
            assert_eq!(got, &Ok(want));
        }
        let secret = "password-protected in Kutt, and snip links have no password: not imported";
        assert_json_error(&got[3], 4, secret, "address");
        assert_json_error(&got[4], 5, "banned in Kutt: not imported", "address");
        let bad = "visit_count: \"lots\" is not a non-negative integer";
        assert_json_error(&got[5], 6, bad, "address");
    }

    #[test]
    fn kutt_pages_and_link_objects_one_per_line_are_read_in_a_row() {
        let got = read(
            SourceFormat::Kutt,
            include_str!("../../tests/fixtures/import/kutt-pages.jsonl"),
        );
        let want = vec![
            Ok(SourceRow {
                title: Some("First, page one".into()),
                created_at: Some(1_711_929_600),
                visits: Some(1),
                ..link(1, "one", "https://example.com/1")
            }),
            Ok(SourceRow {
                created_at: Some(1_712_016_000),
                visits: Some(2),
                ..link(2, "two", "https://example.com/2")
            }),
            Ok(SourceRow {
                title: Some("A lone link object".into()),
                created_at: Some(1_712_102_400),
                visits: Some(3),
                ..link(3, "three", "https://example.com/3")
            }),
        ];
        assert_eq!(got, want);
        let array = read(
            SourceFormat::Kutt,
            "[{\"address\":\"a\",\"target\":\"https://a.example/\"}, 7]",
        );
        assert_eq!(array[0], Ok(link(1, "a", "https://a.example/")));
        assert_eq!(
            array[1],
            error(2, "expected a link object, found a number", "7")
        );
    }

    #[test]
    fn kutt_input_that_is_not_its_json_is_refused_whole() {
        let why = file_error(SourceFormat::Kutt, "address,target\na,https://a.example/\n");
        assert!(why.contains("expected JSON"), "{why}");
        let why = file_error(
            SourceFormat::Kutt,
            "{\"error\":\"API key is not correct.\"}",
        );
        assert!(why.contains("GET /api/v2/links"), "{why}");
        let why = file_error(SourceFormat::Kutt, "   ");
        assert!(why.contains("expected JSON"), "{why}");
    }

    #[test]
    fn a_bitly_csv_export_is_read() {
        let got = read(
            SourceFormat::Bitly,
            include_str!("../../tests/fixtures/import/bitly.csv"),
        );
        let want = vec![
            Ok(SourceRow {
                title: Some("Spring sale, \"50%\" off".into()),
                tags: strings(&["sales", "seasonal"]),
                created_at: Some(1_704_164_645),
                visits: Some(1204),
                ..link(
                    2,
                    "spring",
                    "https://shop.example.com/spring?utm_source=bitly",
                )
            }),
            Ok(SourceRow {
                title: Some("Café ☕".into()),
                created_at: Some(1_706_933_106),
                visits: Some(0),
                ..link(3, "4xyZ", "https://example.com/café")
            }),
            Ok(SourceRow {
                tags: strings(&["misc"]),
                created_at: Some(1_709_510_400),
                visits: Some(17),
                ..link(4, "5noTitle", "https://example.com/untitled")
            }),
            error(
                5,
                "missing long URL",
                "No destination,https://bit.ly/6none,,,2024-03-05 00:00:00,3,",
            ),
            error(
                6,
                "clicks: \"n/a\" is not a non-negative integer",
                "Bad clicks,https://bit.ly/7bad,,https://example.com/bad,2024-03-06 00:00:00,n/a,",
            ),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn a_bitly_api_answer_is_read() {
        let got = read(
            SourceFormat::Bitly,
            include_str!("../../tests/fixtures/import/bitly-api.json"),
        );
        assert_eq!(got.len(), 4, "{got:?}");
        let spring = SourceRow {
            title: Some("Spring sale, \"50%\" off".into()),
            tags: strings(&["sales", "seasonal"]),
            created_at: Some(1_704_164_645),
            ..link(
                1,
                "spring",
                "https://shop.example.com/spring?utm_source=bitly",
            )
        };
        assert_eq!(got[0], Ok(spring));
        let cafe = SourceRow {
            title: Some("Café ☕".into()),
            created_at: Some(1_706_933_106),
            ..link(2, "4xyZ", "https://example.com/café")
        };
        assert_eq!(got[1], Ok(cafe));
        assert_json_error(&got[2], 3, "missing long_url", "link");
        let late = "created_at: \"2024-13-01T00:00:00+0000\" is not a date and time \
                    (2026-01-02 03:04:05, with or without an offset) or a date";
        assert_json_error(&got[3], 4, late, "link");
        let why = file_error(SourceFormat::Bitly, "Title,Clicks\nA,1\n");
        assert!(why.contains("short link column"), "{why}");
    }

    #[test]
    fn short_codes_are_the_paths_of_short_links() {
        for (link, code) in [
            ("https://bit.ly/3abcDEF", Some("3abcDEF")),
            ("bit.ly/3abcDEF", Some("3abcDEF")),
            ("https://go.example.com/spring/?utm=1#top", Some("spring")),
            ("spring", Some("spring")),
            ("go.example.com", None),
            ("https://go.example.com/", None),
            ("", None),
        ] {
            assert_eq!(short_path(link).as_deref(), code, "{link}");
        }
        assert_eq!(percent_decoded("caf%C3%A9"), "café");
        assert_eq!(percent_decoded("100%"), "100%");
        assert_eq!(percent_decoded("%FF"), "%FF");
    }

    #[test]
    fn timestamps_are_read_strictly_for_snip_csv_and_leniently_for_the_others() {
        let at = 1_767_323_045; // 2026-01-02T03:04:05Z
        for s in [
            "2026-01-02T03:04:05Z",
            "2026-01-02t03:04:05z",
            "2026-01-02 03:04:05Z",
            "2026-01-02T03:04:05.999Z",
            "2026-01-02T05:04:05+02:00",
            "2026-01-01T22:04:05-05:00",
        ] {
            assert_eq!(timestamp(s, true), Some(at), "{s}");
            assert_eq!(timestamp(s, false), Some(at), "{s}");
        }
        for s in [
            "2026-01-02 03:04:05",
            "2026-01-02T05:04:05+0200",
            "2026-01-02T05:04:05+02",
            "2026-01-02 03:04:05 UTC",
            "2026-01-02 05:04:05 +02:00",
        ] {
            assert_eq!(timestamp(s, true), None, "{s}");
            assert_eq!(timestamp(s, false), Some(at), "{s}");
        }
        assert_eq!(timestamp("2026-01-02T03:04", false), Some(at - 5));
        assert_eq!(timestamp("2026-01-02", true), Some(1_767_312_000));
        assert_eq!(timestamp("1969-12-31T23:59:59Z", true), Some(-1));
        for s in [
            "",
            "2026-1-2",
            "2026-02-30",
            "2026-01-02T24:00:00Z",
            "2026-01-02T03:04:05",
            "2026-01-02T03:04:05+25:00",
            "2026-01-02T03:04:05.Z",
            "02/01/2026",
            "yesterday",
            "2026-01-02T03:04:05Z trailing",
        ] {
            assert_eq!(timestamp(s, true), None, "{s}");
        }
    }

    /// Endless CSV, TSV or JSON lines: rows must come before the input ends.
    struct Endless {
        header: &'static str,
        line: fn(u64) -> String,
        n: u64,
        pending: Vec<u8>,
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.pending.is_empty() {
                self.pending = if self.n == 0 {
                    self.header.as_bytes().to_vec()
                } else {
                    (self.line)(self.n).into_bytes()
                };
                self.n += 1;
            }
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }
    }

    #[test]
    fn rows_stream_without_reading_the_whole_input() {
        type Case = (SourceFormat, &'static str, fn(u64) -> String);
        let cases: [Case; 7] = [
            (SourceFormat::Tsv, "# codes\n", |n| {
                format!("c{n}\thttps://example.com/{n}\n")
            }),
            (SourceFormat::Csv, "url,code\n", |n| {
                format!("https://example.com/{n},c{n}\n")
            }),
            (SourceFormat::Shlink, "shortCode,longUrl\n", |n| {
                format!("c{n},https://example.com/{n}\n")
            }),
            (SourceFormat::Yourls, "keyword,url\n", |n| {
                format!("c{n},https://example.com/{n}\n")
            }),
            (SourceFormat::Bitly, "link,long_url\n", |n| {
                format!("https://bit.ly/c{n},https://example.com/{n}\n")
            }),
            (SourceFormat::Kutt, "{\"total\": 1e9, \"data\": [\n", |n| {
                format!("{{\"address\":\"c{n}\",\"target\":\"https://example.com/{n}\"}},\n")
            }),
            (SourceFormat::Kutt, "\n", |n| {
                format!("{{\"address\":\"c{n}\",\"target\":\"https://example.com/{n}\"}}\n")
            }),
        ];
        for (format, header, line) in cases {
            let input = Endless {
                header,
                line,
                n: 0,
                pending: Vec::new(),
            };
            let first: Vec<_> = rows(format, Box::new(input)).unwrap().take(10).collect();
            assert_eq!(first.len(), 10, "{}", format.name());
            for (i, row) in first.into_iter().enumerate() {
                let n = i as u64 + 1;
                let row = row.unwrap();
                assert_eq!(row.code, Some(format!("c{n}")), "{}", format.name());
                assert_eq!(row.url, format!("https://example.com/{n}"));
            }
        }
    }

    #[test]
    fn an_input_that_fails_mid_way_ends_with_one_row_error() {
        struct Failing(Cursor<&'static [u8]>);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                match self.0.read(buf)? {
                    0 => Err(std::io::Error::other("disk on fire")),
                    n => Ok(n),
                }
            }
        }
        let csv = Failing(Cursor::new(b"url\nhttps://a.example/\n".as_slice()));
        let got: Rows = rows(SourceFormat::Csv, Box::new(csv)).unwrap().collect();
        assert_eq!(got.len(), 2, "{got:?}");
        let e = got[1].as_ref().unwrap_err();
        assert!(e.reason.contains("disk on fire"), "{e:?}");
        let tsv = Failing(Cursor::new(b"a\thttps://a.example/\n".as_slice()));
        let got: Rows = rows(SourceFormat::Tsv, Box::new(tsv)).unwrap().collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[1].as_ref().unwrap_err().line, 2);
    }
}
