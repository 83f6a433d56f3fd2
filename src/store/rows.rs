//! What both backends do alike with rows: read a link or an API key from a row, and
//! choose the codes a new link tries. Each backend keeps only its SQL and its driver's calls.

use crate::domain::Role;
use crate::domain::key::ApiKey;
use crate::domain::link::CodeChoice;
use crate::domain::{Link, ShortCode};
use crate::store::StoreError;

/// The columns [`link_from`] reads, in its order (a literal, for `concat!`).
macro_rules! link_columns {
    () => {
        "id, code, url, title, tags, owner, created_at, updated_at, expires_at, max_clicks, \
         disabled, deleted_at, takedown_reason, imported_clicks"
    };
}
pub(crate) use link_columns;

/// The columns [`key_from`] reads, in its order (a literal, for `concat!`).
macro_rules! key_columns {
    () => {
        "row_id, id, name, role, created_at"
    };
}
pub(crate) use key_columns;

/// A value both drivers read from a column.
pub(crate) trait Column:
    rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a>
{
}
impl<T: rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a>> Column for T {}

/// A result row, read by column index, whatever the driver.
pub(crate) trait Columns {
    type Error;
    fn column<T: Column>(&self, index: usize) -> Result<T, Self::Error>;
}

impl Columns for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn column<T: Column>(&self, index: usize) -> Result<T, Self::Error> {
        self.get(index)
    }
}

impl Columns for tokio_postgres::Row {
    type Error = tokio_postgres::Error;
    fn column<T: Column>(&self, index: usize) -> Result<T, Self::Error> {
        self.try_get(index)
    }
}

/// The link in a row of [`link_columns!`].
pub(crate) fn link_from<R: Columns>(r: &R) -> Result<Link, R::Error> {
    let tags: String = r.column(4)?;
    Ok(Link {
        id: r.column(0)?,
        code: ShortCode::from_trusted(r.column(1)?),
        url: r.column(2)?,
        title: r.column(3)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        owner: r.column(5)?,
        created_at: r.column(6)?,
        updated_at: r.column(7)?,
        expires_at: r.column(8)?,
        max_clicks: r.column::<Option<i64>>(9)?.map(|m| m.max(0) as u64),
        disabled: r.column(10)?,
        deleted: r.column::<Option<i64>>(11)?.is_some(),
        takedown: r.column(12)?,
        imported_clicks: r.column::<i64>(13)?.max(0) as u64,
    })
}

/// What an import did with `link`, whose code the store already has for `url` (`live`: not
/// deleted).
pub(crate) fn import_outcome(
    link: &crate::domain::ImportLink,
    url: &str,
    live: bool,
) -> crate::domain::ImportOutcome {
    if live && url == link.url.as_str() {
        crate::domain::ImportOutcome::Present
    } else {
        crate::domain::ImportOutcome::Taken
    }
}

/// The API key in a row of [`key_columns!`].
pub(crate) fn key_from<R: Columns>(r: &R) -> Result<ApiKey, R::Error> {
    let role: String = r.column(3)?;
    Ok(ApiKey {
        row_id: r.column(0)?,
        id: r.column(1)?,
        name: r.column(2)?,
        role: Role::parse(&role).unwrap_or(Role::User),
        created_at: r.column(4)?,
    })
}

/// Attempts at a fresh random code before giving up (the code space is nearly full).
const RANDOM_CODE_ATTEMPTS: usize = 16;

/// Code spaces up to this size are searched exhaustively when random attempts fail.
const SMALL_CODE_SPACE: u64 = 250_000;

/// The codes a new link tries in turn under the `UNIQUE` constraint: its custom code, or a few
/// fresh random ones.
pub(crate) fn candidates(choice: &CodeChoice) -> Box<dyn Iterator<Item = ShortCode> + Send + '_> {
    match choice {
        CodeChoice::Custom(code) => Box::new(std::iter::once(code.clone())),
        CodeChoice::Random { len } => {
            Box::new(std::iter::repeat_with(|| ShortCode::random(*len)).take(RANDOM_CODE_ATTEMPTS))
        }
    }
}

/// For random codes whose space is small enough to list (`len` codes, `space` of them), where
/// the last free codes are hard to hit at random: the backend lists the taken ones and tries
/// [`ShortCode::random_free`].
pub(crate) fn listable_space(choice: &CodeChoice) -> Option<(usize, u64)> {
    let CodeChoice::Random { len } = *choice else {
        return None;
    };
    let space = 62u64.checked_pow(len as u32).unwrap_or(u64::MAX);
    (space <= SMALL_CODE_SPACE).then_some((len, space))
}

/// The answer when every candidate was taken: a custom code is a conflict; no free random code
/// means the code space is full.
pub(crate) fn all_taken(choice: &CodeChoice) -> StoreError {
    match choice {
        CodeChoice::Custom(code) => StoreError::Conflict(format!("code {code} is taken")),
        CodeChoice::Random { len } => StoreError::Unavailable(format!(
            "no free random code of length {len} after {RANDOM_CODE_ATTEMPTS} attempts; \
             raise --code-length"
        )),
    }
}
