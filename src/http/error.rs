//! The one error type of the HTTP layer, rendered as RFC 9457 problem+json.
//!
//! Variants are named by outcome; each maps to one status and one stable `code`. Internal causes
//! are logged with their chain and never sent to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use utoipa::ToSchema;

use crate::service::error::ServiceError;

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// An error answer (RFC 9457 problem details, `application/problem+json`). Its members are
/// written in this order (alphabetical).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A stable machine-readable code, e.g. `invalid_url` (docs/api.md, "Errors").
    #[schema(value_type = String)]
    pub code: Cow<'static, str>,
    /// What went wrong, for a person.
    pub detail: String,
    /// The HTTP status.
    pub status: u16,
    /// The status's reason phrase.
    #[schema(value_type = String)]
    pub title: Cow<'static, str>,
    /// Always `about:blank`: `code` says which problem it is.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: Cow<'static, str>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("a valid API key is required (Authorization: Bearer <key>)")]
    Unauthorized,
    #[error("this API key's role does not allow this")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    CodeTaken(String),
    #[error(
        "this is the last active admin key: revoking it would lock every admin out; create \
         another admin key first, or add ?force=true"
    )]
    LastAdmin,
    #[error(
        "this link was taken down by an admin; only an admin can lift that (DELETE \
         /api/v1/links/{{code}}/takedown)"
    )]
    TakenDown,
    #[error("this Idempotency-Key was used with a different request body")]
    IdempotencyMismatch,
    #[error("request body is larger than 64 KiB")]
    PayloadTooLarge,
    #[error("the request body did not arrive within {0} s")]
    RequestTimeout(u64),
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("{0}")]
    InvalidUrl(String),
    #[error("url: its host is on this service's deny list (entry {0:?})")]
    DestinationDenied(String),
    #[error("{0}")]
    InvalidCode(String),
    #[error("{0}")]
    InvalidField(String),
    #[error("too many requests; retry after {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("too many failed authentications from this address; retry after {retry_after} s")]
    AuthThrottled { retry_after: u64 },
    #[error("the store could not confirm this request; retry shortly")]
    Unavailable(String),
    /// A bounded pool of workers (QR rendering) stayed busy.
    #[error("{0}; retry shortly")]
    Busy(&'static str),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The problem document of this error (what the API answers; the dashboard shows its
    /// `detail`). Internal causes are logged here, never put in the document.
    pub fn problem(&self) -> Problem {
        let (status, code) = self.status_and_code();
        match self {
            ApiError::Unavailable(cause) => tracing::warn!(cause, "answering 503"),
            ApiError::Internal(cause) => tracing::error!(cause, "answering 500"),
            _ => {}
        }
        Problem::new(status, code, self.to_string())
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        use ApiError::*;
        match self {
            BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            CodeTaken(_) => (StatusCode::CONFLICT, "code_taken"),
            LastAdmin => (StatusCode::CONFLICT, "last_admin"),
            TakenDown => (StatusCode::CONFLICT, "taken_down"),
            IdempotencyMismatch => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_mismatch"),
            PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            InvalidUrl(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_url"),
            DestinationDenied(_) => (StatusCode::UNPROCESSABLE_ENTITY, "destination_denied"),
            InvalidCode(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_code"),
            InvalidField(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            AuthThrottled { .. } => (StatusCode::TOO_MANY_REQUESTS, "auth_throttled"),
            Unavailable(_) | Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(what) => ApiError::NotFound(what),
            ServiceError::CodeTaken(msg) => ApiError::CodeTaken(msg),
            ServiceError::LastAdmin => ApiError::LastAdmin,
            ServiceError::TakenDown => ApiError::TakenDown,
            ServiceError::IdempotencyMismatch => ApiError::IdempotencyMismatch,
            ServiceError::Unavailable(source) => ApiError::Unavailable(source.to_string()),
            e @ ServiceError::Store(_) => {
                ApiError::Internal(format!("{:#}", anyhow::Error::new(e)))
            }
        }
    }
}

impl Problem {
    /// The problem document of `status`, with its stable `code` and a `detail` for a person.
    pub fn new(status: StatusCode, code: &'static str, detail: String) -> Self {
        Problem {
            code: code.into(),
            detail,
            status: status.as_u16(),
            title: title(status).into(),
            kind: "about:blank".into(),
        }
    }

    /// The HTTP status.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The document as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// An answer carrying the document (`Content-Type: application/problem+json`).
    pub fn response(&self) -> Response {
        let mut response = (self.status_code(), self.to_json()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

/// The RFC 9110 reason phrase (the `http` crate still uses RFC 7231's for 413 and 422).
fn title(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "Content Too Large",
        StatusCode::UNPROCESSABLE_ENTITY => "Unprocessable Content",
        other => other.canonical_reason().unwrap_or("Error"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.problem().response();
        let headers = response.headers_mut();
        let retry_after = match &self {
            ApiError::RateLimited { retry_after } | ApiError::AuthThrottled { retry_after } => {
                Some(*retry_after)
            }
            ApiError::Unavailable(_) | ApiError::Busy(_) => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if matches!(self, ApiError::Unauthorized) {
            // RFC 6750 §3: a 401 says which scheme would be accepted.
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"snip\""),
            );
        }
        response
    }
}
