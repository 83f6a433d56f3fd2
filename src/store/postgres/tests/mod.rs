//! Integration tests of the PostgreSQL store against the server in `SNIP_TEST_POSTGRES`
//! (`scripts/postgres.sh start DIR` prints one). Each test makes its own database. Without the
//! variable they print a note and pass, unless `SNIP_TEST_REQUIRE_SERVICES` is set (CI), when
//! they fail.

mod clicks;
mod connections;
mod links;

use std::time::Duration;

use tokio_postgres::NoTls;

use super::*;
pub(crate) use crate::store::contract::{create_custom, new_link};

/// The test server's URL, or `None` (after a note) when the tests are to be skipped.
fn server() -> Option<String> {
    match std::env::var("SNIP_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("SNIP_TEST_REQUIRE_SERVICES").is_none(),
                "SNIP_TEST_POSTGRES is not set but SNIP_TEST_REQUIRE_SERVICES is"
            );
            eprintln!(
                "note: PostgreSQL store test skipped: set SNIP_TEST_POSTGRES \
                 (SNIP_TEST_POSTGRES=$(scripts/postgres.sh start /tmp/pg))"
            );
            None
        }
    }
}

/// A direct connection (not a store) to `url`.
async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// A fresh, empty database on the test server; its URL.
pub(crate) async fn fresh_database() -> Option<String> {
    let server = server()?;
    let name = format!("snip_t_{}", hex::encode(rand::random::<[u8; 6]>()));
    client(&server)
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let mut url = url::Url::parse(&server).unwrap();
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}

pub(crate) fn opts() -> PgOptions {
    PgOptions {
        timeout: Duration::from_secs(5),
        ..PgOptions::default()
    }
}

/// A store on a fresh database, with an admin key (links need an owner).
async fn store() -> Option<(PgStore, String, ApiKey)> {
    let url = fresh_database().await?;
    let store = PgStore::connect(&url, &[], opts()).await.unwrap();
    let admin = store
        .create_key("admin".into(), Role::Admin, vec![1; 32])
        .await
        .unwrap();
    Some((store, url, admin))
}
