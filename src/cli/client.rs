//! The client of a server's API: one `reqwest` client with a connect timeout and a timeout on
//! every answer, the API key as a bearer token, and the API's problem answers turned into
//! [`CliError`]s with the exit code scripts check.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::http::error::Problem;

/// Exit codes (documented in README "Command line" and `snip --help`).
pub mod exit {
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const AUTH: u8 = 3;
    pub const NOT_FOUND: u8 = 4;
    pub const CONFLICT: u8 = 5;
    pub const RATE_LIMITED: u8 = 6;
    pub const UNAVAILABLE: u8 = 69;
    pub const CONFIG: u8 = 78;
    pub const INTERRUPTED: u8 = 130;
}

/// A failed command: what to print, and the exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
        }
    }

    /// Stop without a message and exit 0: stdout's reader went away (`| head`).
    pub fn quiet() -> Self {
        CliError::new(0, "")
    }

    pub fn usage(message: impl Into<String>) -> Self {
        CliError::new(exit::USAGE, message)
    }

    pub fn failed(message: impl Into<String>) -> Self {
        CliError::new(exit::FAILED, message)
    }

    /// An error answer of the server: its problem's `detail`, and the exit code of its status.
    fn from_answer(status: StatusCode, body: &[u8]) -> Self {
        let detail = match serde_json::from_slice::<Problem>(body) {
            Ok(p) => format!("{} ({})", p.detail, p.code),
            Err(_) => format!(
                "the server answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ),
        };
        let code = match status.as_u16() {
            400 | 408 | 413 | 415 | 422 => exit::USAGE,
            401 | 403 => exit::AUTH,
            404 | 410 => exit::NOT_FOUND,
            409 => exit::CONFLICT,
            429 => exit::RATE_LIMITED,
            500..=599 => exit::UNAVAILABLE,
            _ => exit::FAILED,
        };
        CliError::new(code, detail)
    }
}

pub type CliResult<T> = Result<T, CliError>;

/// Installs rustls's crypto provider (ring) for the process, once: every HTTP client needs it
/// (reqwest is built without a provider of its own).
pub fn install_tls_provider() {
    // A second install is an error that changes nothing.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A server and the key to use with it.
pub struct Client {
    http: reqwest::Client,
    base: url::Url,
    key: Option<String>,
}

impl Client {
    /// A client of the server at `base` (`http` or `https`); `timeout` bounds each answer.
    pub fn new(base: &str, key: Option<String>, timeout: Duration) -> CliResult<Client> {
        let mut base = url::Url::parse(base.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| {
                CliError::usage(format!(
                    "--server must be an http or https URL, not {base:?}"
                ))
            })?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        install_tls_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .user_agent(concat!("snip-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::failed(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client { http, base, key })
    }

    /// The server's base URL.
    pub fn base(&self) -> &url::Url {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> CliResult<reqwest::RequestBuilder> {
        let url = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| CliError::usage(format!("bad path {path}: {e}")))?;
        let mut request = self.http.request(method, url);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        Ok(request)
    }

    /// Sends `request` and reads the whole answer; an error status is a [`CliError`].
    async fn send(&self, request: reqwest::RequestBuilder) -> CliResult<(StatusCode, Vec<u8>)> {
        let answer = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = answer.status();
        let body = answer.bytes().await.map_err(|e| self.unreachable(e))?;
        if !status.is_success() {
            return Err(CliError::from_answer(status, &body));
        }
        Ok((status, body.to_vec()))
    }

    fn unreachable(&self, e: reqwest::Error) -> CliError {
        let what = if e.is_timeout() {
            "did not answer in time"
        } else if e.is_connect() {
            "cannot be reached"
        } else {
            "broke off the answer"
        };
        let mut cause = String::new();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            cause = s.to_string();
            source = s.source();
        }
        CliError::new(
            exit::UNAVAILABLE,
            format!("the server {} {what}: {cause}", self.base),
        )
    }

    fn decode<T: DeserializeOwned>(body: &[u8]) -> CliResult<T> {
        serde_json::from_slice(body).map_err(|e| {
            CliError::failed(format!("the server's answer is not what snip expects: {e}"))
        })
    }

    /// `GET path?query` as `T`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> CliResult<T> {
        let (_, body) = self
            .send(self.request(Method::GET, path)?.query(query))
            .await?;
        Self::decode(&body)
    }

    /// `GET path?query`, the raw body (images, CSV).
    pub async fn get_bytes(&self, path: &str, query: &[(&str, String)]) -> CliResult<Vec<u8>> {
        Ok(self
            .send(self.request(Method::GET, path)?.query(query))
            .await?
            .1)
    }

    /// A JSON body sent with `method`, the answer as `T`.
    pub async fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
        headers: &[(&str, String)],
    ) -> CliResult<T> {
        let mut request = self.request(method, path)?.json(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let (_, body) = self.send(request).await?;
        Self::decode(&body)
    }

    /// `DELETE path` (an empty answer).
    pub async fn delete(&self, path: &str) -> CliResult<()> {
        self.send(self.request(Method::DELETE, path)?)
            .await
            .map(|_| ())
    }
}

/// A path segment (a code or a key id) escaped for a URL path.
pub fn segment(raw: &str) -> String {
    url::form_urlencoded::byte_serialize(raw.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
