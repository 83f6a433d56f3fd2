//! Which server and key a command uses: `--server`/`--key`, else `SNIP_SERVER`/`SNIP_KEY`
//! (clap reads both), else the file `snip login` writes: `snip/config.toml` in the user's
//! config directory (`$XDG_CONFIG_HOME`, else `~/.config`), mode 0600. A file that others may
//! read is refused (exit 78): it holds a secret.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Connection;
use super::client::{CliError, CliResult, Client, exit};

/// What `snip login` saves.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saved {
    pub server: Option<String>,
    pub key: Option<String>,
}

/// Where `snip login` saves the server and key.
pub fn path() -> CliResult<PathBuf> {
    // The XDG rule (what `dirs::config_dir` does on Linux, without its MPL-2.0 dependency).
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("snip").join("config.toml"))
        .ok_or_else(|| {
            CliError::new(
                exit::CONFIG,
                "no config directory (set HOME or XDG_CONFIG_HOME)",
            )
        })
}

/// The saved server and key, if any; a file others may read is refused.
pub fn load() -> CliResult<Saved> {
    let path = path()?;
    let meta = match std::fs::metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Saved::default()),
        Err(e) => {
            return Err(CliError::new(
                exit::CONFIG,
                format!("cannot read {}: {e}", path.display()),
            ));
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CliError::new(
            exit::CONFIG,
            format!(
                "{} holds an API key and others may read it (mode {mode:o}); run: chmod 600 {}",
                path.display(),
                path.display()
            ),
        ));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| CliError::new(exit::CONFIG, format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| {
        CliError::new(
            exit::CONFIG,
            format!("{} is not valid: {e}", path.display()),
        )
    })
}

/// Writes `saved` (mode 0600, replacing the file atomically); returns the path.
pub fn save(saved: &Saved) -> CliResult<PathBuf> {
    let path = path()?;
    let dir = path.parent().expect("the config path has a parent");
    let fail = |e: std::io::Error| {
        CliError::new(
            exit::CONFIG,
            format!("cannot write {}: {e}", path.display()),
        )
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(fail)?;
    let text = toml::to_string(saved).map_err(|e| CliError::failed(e.to_string()))?;
    let temp = dir.join(".config.toml.new");
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(fail)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(fail)?;
    std::fs::rename(&temp, &path).map_err(fail)?;
    Ok(path)
}

/// Deletes the saved file; whether there was one.
pub fn forget() -> CliResult<bool> {
    let path = path()?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CliError::new(
            exit::CONFIG,
            format!("cannot delete {}: {e}", path.display()),
        )),
    }
}

/// Whether two spellings of a base URL name the same server (case of the host and a trailing
/// slash do not matter).
fn same_server(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        url::Url::parse(s.trim())
            .map(|u| u.as_str().trim_end_matches('/').to_string())
            .unwrap_or_else(|_| s.trim().trim_end_matches('/').to_string())
    };
    norm(a) == norm(b)
}

/// The client a command uses. `need_key`: a command without a key is a usage error here
/// rather than a 401 from the server.
pub fn client(conn: &Connection, need_key: bool) -> CliResult<Client> {
    let saved = if conn.server.is_some() && conn.key.is_some() {
        Saved::default()
    } else {
        load()?
    };
    // The saved key goes only to the saved server: never to another one given here.
    let saved_key = match (&conn.server, &saved.server) {
        (Some(given), Some(server)) if same_server(given, server) => saved.key,
        (Some(_), _) => None,
        (None, _) => saved.key,
    };
    let server = conn.server.clone().or(saved.server).ok_or_else(|| {
        CliError::usage("no server: pass --server URL, set SNIP_SERVER, or run snip login")
    })?;
    let key = conn.key.clone().or(saved_key);
    if need_key && key.is_none() {
        return Err(CliError::usage(
            "no API key for this server: pass --key, set SNIP_KEY, or run snip login",
        ));
    }
    Client::new(&server, key, Duration::from_secs(conn.timeout.max(1)))
}
