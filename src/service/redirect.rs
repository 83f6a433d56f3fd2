//! Following a short code: the cached answer (read from Redis or the store on a miss, and
//! cached), then the link's own rules (expiry, `max_clicks`, the deny list) and the click.
//!
//! A cache hit costs a cache lookup, an expiry comparison, an optional atomic for `max_clicks`
//! and a buffered click: no store I/O. When the store is slow or gone, cached codes keep
//! redirecting (redirects are AP: see docs/architecture.md, "CAP choice per operation"); only
//! uncached codes are [`Outcome::Unavailable`].

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::http::HeaderMap;

use crate::analytics::visit::Observed;
use crate::cache::{Cached, Lookup, Target, Verdict};
use crate::clicks::Visit;
use crate::config::ClickMode;
use crate::domain::time::{UnixSeconds, now_coarse};
use crate::service::app::{App, AppState};
use crate::store::StoreError;

/// Where a code leads.
pub enum Outcome {
    /// To the target's `location`.
    Redirect(Target),
    /// No such code.
    Missing,
    /// Expired, used up, disabled or deleted.
    Gone,
    /// Taken down by an admin, for this reason.
    TakenDown(Arc<str>),
    /// Its destination is on the deny list.
    Denied,
    /// Not cached, and the store could not be read.
    Unavailable(StoreError),
}

/// The cached answer for a code, if it is cached (a stale one is reloaded in the background).
fn cached(app: &AppState, code: &str) -> Option<Cached> {
    let hit = match app.cache.lookup(code)? {
        Lookup::Fresh(hit) => hit,
        Lookup::Stale(hit) => {
            reload_in_background(app, code);
            hit
        }
    };
    app.cache_hits.increment();
    Some(hit)
}

/// Reloads the stale cache entry of `code` in a task of its own (out of line, so that the
/// redirect's common case, a fresh entry, stays small).
#[cold]
#[inline(never)]
fn reload_in_background(app: &AppState, code: &str) {
    metrics::counter!("snip_cache_reloads_total").increment(1);
    let (app, code) = (app.clone(), code.to_string());
    tokio::spawn(async move {
        if let Err(e) = load(&app, &code).await {
            tracing::debug!(error = %e, code, "stale cache entry kept: reload failed");
        }
    });
}

/// The cached answer for a code, reading the store on a miss.
async fn resolve(app: &AppState, code: &str) -> Result<Cached, StoreError> {
    if let Some(hit) = cached(app, code) {
        return Ok(hit);
    }
    app.cache_misses.increment();
    // Boxed, so that the futures that include this one stay small.
    Box::pin(load(app, code)).await
}

/// Reads a code into the cache: from the shared cache if there is one and it has the code,
/// else from the store (and then shares it).
async fn load(app: &App, code: &str) -> Result<Cached, StoreError> {
    let generation = app.cache.generation();
    // A code written recently is read from the primary: Redis and the replicas may still
    // hold what it was before (the writer deletes the Redis entry only after its commit).
    let changed = app.cache.changed_recently(code);
    if !changed
        && let Some(shared) = &app.shared
        && let Some(answer) = shared.get(code).await
    {
        app.cache.fill(code, answer.clone(), generation);
        return Ok(answer);
    }
    let read = if changed {
        app.store.get_link_primary(code).await?
    } else {
        app.store.get_link(code).await?
    };
    let answer = match read {
        None => app.cache.missing(),
        Some(link) => {
            if let Some(shared) = &app.shared {
                shared.put(&link).await;
            }
            let live_and_limited = link.max_clicks.is_some() && !link.deleted && !link.disabled;
            let used = if live_and_limited {
                Some(
                    app.clicks
                        .limit_counter(app.store.as_ref(), link.id)
                        .await?,
                )
            } else {
                None
            };
            Cached::for_link(&link, used)
        }
    };
    app.cache.fill(code, answer.clone(), generation);
    Ok(answer)
}

/// What `answer`, the cached or loaded answer for `code`, means for a redirect at `at`: a
/// [`Outcome::Redirect`] when the deny list allows its destination and the link is [`live`]
/// (a click, if `counts`, uses one of its `max_clicks`). It takes the answer by value and
/// moves the target once.
fn judge(app: &AppState, code: &str, answer: Cached, counts: bool, at: UnixSeconds) -> Outcome {
    match answer {
        Cached::Redirect(t) if denied(app, code, &t) => Outcome::Denied,
        Cached::Redirect(t) if !live(&t, counts, at) => Outcome::Gone,
        Cached::Redirect(t) => Outcome::Redirect(t),
        Cached::Gone => Outcome::Gone,
        Cached::TakenDown(reason) => Outcome::TakenDown(reason),
        Cached::Missing(_) => Outcome::Missing,
    }
}

/// Whether a link is live at `at`: not expired, and (a click, if `counts`) within its
/// `max_clicks`, of which a click uses one.
fn live(target: &Target, counts: bool, at: UnixSeconds) -> bool {
    target.expires_at.is_none_or(|e| e > at) && within_max_clicks(target, counts)
}

/// Whether the deny list refuses `target`'s destination: the verdict its cache entry holds
/// while the list is unchanged, else a lookup, remembered in the entry.
fn denied(app: &AppState, code: &str, target: &Target) -> bool {
    let generation = app.deny.generation();
    if target.deny.generation == generation {
        return target.deny.denied;
    }
    judge_destination(app, code, target, generation)
}

/// [`denied`] when the deny list changed since `target`'s verdict: looks the host up and
/// remembers the verdict (out of line: once per cached link and change of the list).
#[cold]
#[inline(never)]
fn judge_destination(app: &AppState, code: &str, target: &Target, generation: u64) -> bool {
    let verdict = Verdict {
        generation,
        denied: app.deny.denies(target.host()).is_some(),
    };
    app.cache.remember_verdict(code, target, verdict);
    verdict.denied
}

/// Follows `code` for a visitor at `peer` who sent `headers`; `counts`: a click (a `GET`,
/// not a `HEAD`), which uses up one of `max_clicks` and is recorded.
pub async fn follow(
    app: &AppState,
    code: &str,
    counts: bool,
    peer: IpAddr,
    headers: &HeaderMap,
) -> Outcome {
    let answer = resolve(app, code).await;
    let at = now_coarse();
    let outcome = admit(app, code, answer, counts, at);
    let Outcome::Redirect(target) = &outcome else {
        return outcome;
    };
    let Some(seen) = kept_click(app, target, counts, peer, headers) else {
        return outcome;
    };
    if app.click_mode() != ClickMode::Exact {
        app.clicks.buffer.record_observed(target.link_id, at, seen);
        return outcome;
    }
    match Box::pin(record_exact(app, target, at, &visit(&seen))).await {
        Ok(()) => outcome,
        Err(e) => Outcome::Unavailable(e),
    }
}

/// [`follow`] when the answer for `code` is cached and nothing has to be awaited (every hit
/// but those of `--click-mode exact`, whose clicks are committed before the answer): the
/// redirect's path for nearly every request, with no future to create. None: follow it with
/// [`follow`].
pub fn follow_cached(
    app: &AppState,
    code: &str,
    counts: bool,
    peer: IpAddr,
    headers: &HeaderMap,
) -> Option<Outcome> {
    if app.click_mode() == ClickMode::Exact {
        return None;
    }
    let answer = cached(app, code)?;
    let at = now_coarse();
    let outcome = admit_cached(app, code, answer, counts, at);
    if let Outcome::Redirect(target) = &outcome
        && let Some(seen) = kept_click(app, target, counts, peer, headers)
    {
        app.clicks.buffer.record_observed(target.link_id, at, seen);
    }
    Some(outcome)
}

/// Applies the link's rules (deny list, expiry at `at`, `max_clicks`, of which a click uses
/// one) to `answer`: [`Outcome::Redirect`] if the visitor is to be sent on.
fn admit(
    app: &AppState,
    code: &str,
    answer: Result<Cached, StoreError>,
    counts: bool,
    at: UnixSeconds,
) -> Outcome {
    match answer {
        Ok(answer) => admit_cached(app, code, answer, counts, at),
        Err(e) => Outcome::Unavailable(e),
    }
}

/// [`admit`] for an answer at hand; an unknown code is counted as such.
fn admit_cached(
    app: &AppState,
    code: &str,
    answer: Cached,
    counts: bool,
    at: UnixSeconds,
) -> Outcome {
    if let Cached::Missing(_) = answer
        && app.click_mode() != ClickMode::Off
    {
        app.clicks.buffer.record_unknown(code);
    }
    judge(app, code, answer, counts, at)
}

/// The visit to record for a redirect to `target`, if its click is kept: with `--click-mode
/// off`, only clicks that a `max_clicks` limit depends on are.
fn kept_click(
    app: &AppState,
    target: &Target,
    counts: bool,
    peer: IpAddr,
    headers: &HeaderMap,
) -> Option<Observed> {
    (counts && (app.click_mode() != ClickMode::Off || target.max_clicks.is_some()))
        .then(|| app.analytics.observe(peer, headers))
}

/// An observed click's fields as the click buffer records them.
fn visit(seen: &Observed) -> Visit<'_> {
    Visit {
        ua: &seen.ua,
        referrer: seen.referrer.as_ref(),
        country: seen.country,
        visitor: seen.visitor,
    }
}

/// Whether a link with `max_clicks` has one left; `counts`: use it up.
fn within_max_clicks(target: &Target, counts: bool) -> bool {
    let (Some(max), Some(used)) = (target.max_clicks, &target.used) else {
        return true;
    };
    if counts {
        used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
            (u < max).then_some(u + 1)
        })
        .is_ok()
    } else {
        used.load(Ordering::Acquire) < max
    }
}

/// `--click-mode exact`: the click is committed before the redirect is answered; if it is
/// not, the `max_clicks` it used is given back.
async fn record_exact(
    app: &App,
    target: &Target,
    at: UnixSeconds,
    visit: &Visit<'_>,
) -> Result<(), StoreError> {
    let recorded = app
        .clicks
        .record_exact(app.store.as_ref(), target.link_id, at, visit)
        .await;
    if recorded.is_err()
        && let Some(used) = &target.used
    {
        used.fetch_sub(1, Ordering::AcqRel);
    }
    recorded
}

/// What the preview page of `code` shows: where the link goes (the same answer as the
/// redirect: cache first, so it works while the store is down) and its title (best effort:
/// the page still renders without it). Not a click.
pub async fn preview(app: &AppState, code: &str) -> Result<(Target, Option<String>), Outcome> {
    let answer = resolve(app, code).await.map_err(Outcome::Unavailable)?;
    let target = match judge(app, code, answer, false, now_coarse()) {
        Outcome::Redirect(target) => target,
        other => return Err(other),
    };
    let title = match app.store.get_link(code).await {
        Ok(Some(link)) => link.title,
        _ => None,
    };
    Ok((target, title))
}
