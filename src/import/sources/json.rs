//! JSON: Shlink's REST API, Kutt's API, Bitly's API v4, parsed on a thread of its own and
//! handed over in batches (constant memory whatever the document's size).

use super::*;

/// Where one product's JSON keeps its list of links, and how it reads one link.
#[derive(Clone, Copy)]
pub(super) struct JsonShape {
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

pub(super) const SHLINK_JSON: JsonShape = JsonShape {
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

pub(super) const KUTT_JSON: JsonShape = JsonShape {
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

pub(super) const BITLY_JSON: JsonShape = JsonShape {
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

pub(super) fn json_rows(
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
