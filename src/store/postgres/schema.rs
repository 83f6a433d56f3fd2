//! Schema migrations of the PostgreSQL store.
//!
//! Applied versions are rows of `schema_migrations`. Several instances may start at once
//! against one database, so the whole check-and-apply runs under a session advisory lock on a
//! dedicated connection: the first instance migrates, the others wait and then find nothing to
//! do. The lock is released explicitly, and in any case when the connection closes (a crashed
//! migration never leaves it held).

use std::time::Duration;

use anyhow::Context;
use tokio_postgres::{Client, NoTls};

use crate::domain::time::now;

/// `(version, SQL)`, in order; each runs in its own transaction.
pub(super) const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_takedown.sql")),
    (3, include_str!("migrations/0003_sessions.sql")),
    (4, include_str!("migrations/0004_imported_clicks.sql")),
    (5, include_str!("migrations/0005_click_journal.sql")),
];

/// The advisory lock key of migrations (ASCII "snipmigr").
const LOCK_KEY: i64 = 0x736e_6970_6d69_6772;

/// How long a start may wait for the lock and the migrations (another instance may be
/// applying a long one). Connecting is bounded by the store timeout.
const MIGRATE_TIMEOUT: Duration = Duration::from_secs(600);

/// Applies the migrations the database lacks; returns how many.
pub async fn migrate(config: &tokio_postgres::Config, timeout: Duration) -> anyhow::Result<usize> {
    let (mut client, connection) = tokio::time::timeout(timeout, config.connect(NoTls))
        .await
        .map_err(|_| anyhow::anyhow!("connecting to the primary timed out after {timeout:?}"))?
        .context("connecting to the primary")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "migration connection closed");
        }
    });
    // Dropping the client on any return closes the session, and with it the lock.
    tokio::time::timeout(MIGRATE_TIMEOUT, apply(&mut client))
        .await
        .map_err(|_| anyhow::anyhow!("migrations did not finish within {MIGRATE_TIMEOUT:?}"))?
}

async fn apply(client: &mut Client) -> anyhow::Result<usize> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .context("taking the migration lock")?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ( \
             version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await
        .context("creating schema_migrations")?;
    let done: Vec<i32> = client
        .query("SELECT version FROM schema_migrations", &[])
        .await
        .context("reading schema_migrations")?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if let Some(newer) = done.iter().copied().filter(|v| *v > known).max() {
        tracing::warn!(
            version = newer,
            known,
            "the database schema is newer than this snip knows (a newer version migrated it)"
        );
    }
    let mut applied = 0;
    for (version, sql) in MIGRATIONS.iter().filter(|m| !done.contains(&m.0)) {
        let tx = client.transaction().await?;
        tx.batch_execute(sql)
            .await
            .with_context(|| format!("applying migration {version}"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[version, &now()],
        )
        .await?;
        tx.commit()
            .await
            .with_context(|| format!("committing migration {version}"))?;
        applied += 1;
    }
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await
        .context("releasing the migration lock")?;
    Ok(applied)
}
