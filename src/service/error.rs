//! The one error type of the services: what went wrong, by outcome, keeping the store's error
//! as its source. `crate::http::error` maps it to a status once.

use crate::store::StoreError;

pub type ServiceResult<T> = Result<T, ServiceError>;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No such thing (a link, a key, a takedown…), or not one the caller may see.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A custom code that exists (codes are never reissued).
    #[error("{0}")]
    CodeTaken(String),
    /// Revoking the last active admin key would lock every admin out.
    #[error("this is the last active admin key")]
    LastAdmin,
    /// Only an admin's lift ends a takedown.
    #[error("this link was taken down by an admin")]
    TakenDown,
    #[error("this Idempotency-Key was used with a different request body")]
    IdempotencyMismatch,
    /// The store could not confirm the request in time: its outcome is unknown.
    #[error("the store could not confirm this request")]
    Unavailable(#[source] StoreError),
    /// The store failed otherwise.
    #[error("the store failed")]
    Store(#[source] StoreError),
}

impl ServiceError {
    /// The service error of a store error, a missing row being a missing `what`.
    pub fn from_store(e: StoreError, what: &'static str) -> ServiceError {
        match e {
            StoreError::NotFound => ServiceError::NotFound(what),
            StoreError::Conflict(msg) => ServiceError::CodeTaken(msg),
            e @ StoreError::Unavailable(_) => ServiceError::Unavailable(e),
            e @ StoreError::Other(_) => ServiceError::Store(e),
        }
    }
}
