//! Each client command: parse what the user gave into the API's request types, call the
//! server, print the answer (a table or JSON), and map failures to exit codes.

use std::process::ExitCode;

use reqwest::Method;

use super::client::{CliError, CliResult, Client, segment};
use super::output;
use super::{CodeArgs, Command, Connection, Format, HealthArgs, KeyCommand, LinkCommand, profile};
use crate::domain::time::{now, parse_rfc3339, to_rfc3339};
use crate::http::keys::{CreateKey, KeyList};
use crate::http::links::{CreateRequest, Page, PatchRequest};
use crate::http::stats::Stats;
use crate::http::views::{KeyView, LinkView};

/// Runs a client command (or an offline one) to its exit code; errors go to stderr.
pub fn run(command: Command) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("snip: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(command)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("{} {}", paint_err("snip:"), e.message);
            }
            ExitCode::from(e.code)
        }
    }
}

fn paint_err(s: &str) -> String {
    if std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::IsTerminal::is_terminal(&std::io::stderr())
    {
        format!("\x1b[31m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

async fn dispatch(command: Command) -> CliResult<u8> {
    match command {
        Command::Link(cmd) => link(cmd).await.map(|()| 0),
        Command::Key(cmd) => key(cmd).await.map(|()| 0),
        Command::Import(args) => super::import::run(args).await,
        Command::Export(args) => super::export::run(args).await.map(|()| 0),
        Command::Login(args) => login(args).await.map(|()| 0),
        Command::Logout => {
            let path = profile::path()?;
            match profile::forget()? {
                true => eprintln!("forgot the server and key saved in {}", path.display()),
                false => eprintln!("nothing saved in {}", path.display()),
            }
            Ok(0)
        }
        Command::Health(args) => health(args).await.map(|()| 0),
        Command::Completions { shell } => {
            let mut cmd = <super::Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "snip", &mut script);
            output::out(&String::from_utf8_lossy(&script)).map(|()| 0)
        }
        Command::Man => {
            let cmd = <super::Cli as clap::CommandFactory>::command();
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .map_err(|e| CliError::failed(e.to_string()))?;
            output::out(&String::from_utf8_lossy(&page)).map(|()| 0)
        }
        Command::Serve(_) | Command::Backup(_) => {
            Err(CliError::failed("serve and backup are run by main"))
        }
    }
}

/// A time flag: RFC 3339, or a duration from now (`future`) or before now.
fn time_flag(name: &str, raw: &str, future: bool) -> CliResult<String> {
    if parse_rfc3339(raw).is_some() {
        return Ok(raw.to_string());
    }
    let d = humantime::parse_duration(raw).map_err(|_| {
        CliError::usage(format!(
            "--{name} must be RFC 3339 (2027-01-01T00:00:00Z) or a duration (30d, 12h), not {raw:?}"
        ))
    })?;
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2);
    Ok(to_rfc3339(if future { now() + secs } else { now() - secs }))
}

/// Prints a link as the format asks.
fn print_link(link: &LinkView, format: Format) -> CliResult<()> {
    if format.json || format.jsonl {
        return if format.jsonl {
            output::json_line(link)
        } else {
            output::json(link)
        };
    }
    output::out(&output::link_details(link))
}

fn link_path(code: &str) -> String {
    format!("api/v1/links/{}", segment(code))
}

async fn link(cmd: LinkCommand) -> CliResult<()> {
    match cmd {
        LinkCommand::Create {
            url,
            code,
            title,
            tags,
            expires,
            max_clicks,
            conn,
            format,
        } => {
            let body = CreateRequest {
                url,
                code,
                title,
                tags: (!tags.is_empty()).then_some(tags),
                expires_at: expires
                    .map(|e| time_flag("expires", &e, true))
                    .transpose()?,
                max_clicks,
            };
            let client = profile::client(&conn, true)?;
            let link: LinkView = client
                .send_json(Method::POST, "api/v1/links", &body, &[])
                .await?;
            if format.json || format.jsonl {
                return print_link(&link, format);
            }
            output::line(&link.short_url)
        }
        LinkCommand::List {
            search,
            tag,
            limit,
            conn,
            format,
        } => list(search, tag, limit, &conn, format).await,
        LinkCommand::Show(CodeArgs { code, conn, format }) => {
            let client = profile::client(&conn, true)?;
            let link: LinkView = client.get(&link_path(&code), &[]).await?;
            print_link(&link, format)
        }
        LinkCommand::Edit(args) => edit(args).await,
        LinkCommand::Disable(args) => set_disabled(args, true).await,
        LinkCommand::Enable(args) => set_disabled(args, false).await,
        LinkCommand::Rm(CodeArgs { code, conn, format }) => {
            let client = profile::client(&conn, true)?;
            client.delete(&link_path(&code)).await?;
            if format.json || format.jsonl {
                return output::json_line(&serde_json::json!({ "deleted": code }));
            }
            eprintln!("deleted {code}");
            Ok(())
        }
        LinkCommand::Stats { .. } => stats(cmd).await,
        LinkCommand::Qr { .. } => qr(cmd).await,
    }
}

async fn list(
    search: Option<String>,
    tag: Option<String>,
    limit: usize,
    conn: &Connection,
    format: Format,
) -> CliResult<()> {
    let client = profile::client(conn, true)?;
    let mut links = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let want = if limit == 0 {
            1000
        } else {
            (limit - links.len()).min(1000)
        };
        let mut query = vec![("limit", want.to_string())];
        query.extend(search.clone().map(|q| ("q", q)));
        query.extend(tag.clone().map(|t| ("tag", t)));
        query.extend(cursor.take().map(|c| ("cursor", c)));
        let page: Page = client.get("api/v1/links", &query).await?;
        if format.jsonl {
            for link in &page.items {
                output::json_line(link)?;
            }
        }
        links.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() || (limit != 0 && links.len() >= limit) {
            break;
        }
    }
    if format.json {
        output::json(&links)
    } else if format.jsonl {
        Ok(())
    } else if links.is_empty() {
        eprintln!("no links");
        Ok(())
    } else {
        output::out(&output::links_table(&links))
    }
}

async fn edit(args: super::EditArgs) -> CliResult<()> {
    let super::EditArgs {
        code,
        url,
        title,
        no_title,
        tags,
        no_tags,
        expires,
        no_expiry,
        max_clicks,
        no_max_clicks,
        conn,
        format,
    } = args;
    let clears = [no_title, no_tags, no_expiry, no_max_clicks];
    let sets = [
        url.is_some(),
        title.is_some(),
        !tags.is_empty(),
        expires.is_some(),
    ];
    if !clears.into_iter().chain(sets).any(|b| b) && max_clicks.is_none() {
        return Err(CliError::usage(
            "nothing to change: give --url, --title, --tag, --expires, --max-clicks or a --no-… flag",
        ));
    }
    let patch = PatchRequest {
        url,
        title: if no_title {
            Some(None)
        } else {
            title.map(Some)
        },
        tags: if no_tags {
            Some(Vec::new())
        } else {
            (!tags.is_empty()).then_some(tags)
        },
        expires_at: if no_expiry {
            Some(None)
        } else {
            expires
                .map(|e| time_flag("expires", &e, true).map(Some))
                .transpose()?
        },
        max_clicks: if no_max_clicks {
            Some(None)
        } else {
            max_clicks.map(Some)
        },
        disabled: None,
    };
    let client = profile::client(&conn, true)?;
    let link: LinkView = client
        .send_json(Method::PATCH, &link_path(&code), &patch, &[])
        .await?;
    print_link(&link, format)
}

async fn set_disabled(args: CodeArgs, disabled: bool) -> CliResult<()> {
    let patch = PatchRequest {
        disabled: Some(disabled),
        ..PatchRequest::default()
    };
    let client = profile::client(&args.conn, true)?;
    let link: LinkView = client
        .send_json(Method::PATCH, &link_path(&args.code), &patch, &[])
        .await?;
    if args.format.json || args.format.jsonl {
        return print_link(&link, args.format);
    }
    eprintln!(
        "{} is {}",
        link.code,
        if link.disabled { "disabled" } else { "enabled" }
    );
    Ok(())
}

async fn stats(cmd: LinkCommand) -> CliResult<()> {
    let LinkCommand::Stats {
        code,
        from,
        to,
        interval,
        include_bots,
        conn,
        format,
    } = cmd
    else {
        unreachable!("stats is called with Stats")
    };
    let mut query = Vec::new();
    if let Some(from) = from {
        query.push(("from", time_flag("from", &from, false)?));
    }
    if let Some(to) = to {
        query.push(("to", time_flag("to", &to, false)?));
    }
    query.extend(interval.map(|i| ("interval", i)));
    if include_bots {
        query.push(("include_bots", "true".into()));
    }
    let client = profile::client(&conn, true)?;
    let stats: Stats = client
        .get(&format!("{}/stats", link_path(&code)), &query)
        .await?;
    if format.json || format.jsonl {
        return output::json(&stats);
    }
    output::out(&output::stats(&stats))
}

async fn qr(cmd: LinkCommand) -> CliResult<()> {
    let LinkCommand::Qr {
        code,
        out,
        size,
        conn,
    } = cmd
    else {
        unreachable!("qr is called with Qr")
    };
    let client = profile::client(&conn, true)?;
    let Some(out) = out else {
        let link: LinkView = client.get(&link_path(&code), &[]).await?;
        output::out(&output::qr_blocks(&link.short_url)?)?;
        return output::line(&link.short_url);
    };
    let format = match out.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("svg") => "svg",
        Some(e) if e.eq_ignore_ascii_case("png") => "png",
        _ => return Err(CliError::usage("--out must end in .svg or .png")),
    };
    let image = client
        .get_bytes(
            &format!("{}/qr", link_path(&code)),
            &[("format", format.into()), ("size", size.to_string())],
        )
        .await?;
    std::fs::write(&out, image)
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", out.display())))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

async fn key(cmd: KeyCommand) -> CliResult<()> {
    match cmd {
        KeyCommand::Create {
            role,
            name,
            database,
            conn,
            format,
        } => {
            if let Some(database) = super::import::store_or_server(&database, &conn)? {
                return create_key_in_store(&database, &role, &name).await;
            }
            let client = profile::client(&conn, true)?;
            let key: KeyView = client
                .send_json(Method::POST, "api/v1/keys", &CreateKey { name, role }, &[])
                .await?;
            if format.json || format.jsonl {
                return output::json(&key);
            }
            eprintln!(
                "created {} key {} ({:?}); its secret is printed once, below",
                key.role, key.id, key.name
            );
            output::line(&key.key.unwrap_or_default())
        }
        KeyCommand::List { conn, format } => {
            let client = profile::client(&conn, true)?;
            let keys: KeyList = client.get("api/v1/keys", &[]).await?;
            match (format.json, format.jsonl) {
                (true, _) => output::json(&keys.items),
                (_, true) => keys.items.iter().try_for_each(output::json_line),
                _ => output::out(&output::keys_table(&keys.items)),
            }
        }
        KeyCommand::Revoke {
            id,
            force,
            conn,
            format,
        } => {
            let client = profile::client(&conn, true)?;
            let force = if force { "?force=true" } else { "" };
            client
                .delete(&format!("api/v1/keys/{}{force}", segment(&id)))
                .await?;
            if format.json || format.jsonl {
                return output::json_line(&serde_json::json!({ "revoked": id }));
            }
            eprintln!("revoked {id}");
            Ok(())
        }
    }
}

/// `snip key create --database`: a key written straight into the store, printed once.
async fn create_key_in_store(database: &str, role: &str, name: &str) -> CliResult<()> {
    let role = crate::domain::Role::parse(role)
        .ok_or_else(|| CliError::usage("--role must be admin or user"))?;
    let name = name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(CliError::usage(
            "--name must be 1 to 100 printable characters",
        ));
    }
    let database =
        crate::config::Database::parse(database).map_err(|e| CliError::usage(format!("{e:#}")))?;
    let secret = crate::domain::ApiKeySecret::generate();
    let created = match &database {
        crate::config::Database::Sqlite(path) => {
            crate::store::sqlite::create_key_beside_server(path, &name, role, &secret.hash())
        }
        crate::config::Database::Postgres(_) => {
            let options =
                crate::store::StoreOptions::one_shot(std::time::Duration::from_secs(10), 1);
            match crate::store::open(&database, &options).await {
                Ok(store) => store
                    .create_key(name.clone(), role, secret.hash())
                    .await
                    .map_err(anyhow::Error::from),
                Err(e) => Err(e),
            }
        }
    };
    let key = created.map_err(|e| CliError::failed(format!("{e:#}")))?;
    eprintln!(
        "created {} key {} ({:?}); its secret is printed once, below",
        role.as_str(),
        key.id,
        key.name
    );
    output::line(secret.expose())
}

async fn login(args: super::LoginArgs) -> CliResult<()> {
    let key = match args.key {
        Some(key) => key,
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprint!("API key: ");
            }
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| CliError::failed(format!("cannot read the key: {e}")))?;
            line.trim().to_string()
        }
    };
    if key.is_empty() {
        return Err(CliError::usage("no API key given"));
    }
    let conn = Connection {
        server: Some(args.server.clone()),
        key: Some(key.clone()),
        timeout: args.timeout,
    };
    let client: Client = profile::client(&conn, true)?;
    // Any key may list its links: this checks the server and the key together.
    let _: Page = client
        .get("api/v1/links", &[("limit", "1".to_string())])
        .await?;
    let path = profile::save(&profile::Saved {
        server: Some(client.base().as_str().trim_end_matches('/').to_string()),
        key: Some(key),
    })?;
    eprintln!(
        "logged in to {}; saved in {}",
        client.base(),
        path.display()
    );
    Ok(())
}

/// `snip health`: one bounded request to the server's health route; any failure (refused,
/// timed out, 503) exits 69.
async fn health(args: HealthArgs) -> CliResult<()> {
    let server = args
        .server
        .unwrap_or_else(|| listen_url(std::env::var("SNIP_LISTEN").ok().as_deref()));
    let client = Client::new(
        &server,
        None,
        std::time::Duration::from_secs(args.timeout.max(1)),
    )?;
    let path = if args.live {
        "health/live"
    } else {
        "health/ready"
    };
    client
        .get_bytes(path, &[])
        .await
        .map_err(|e| CliError::new(super::client::exit::UNAVAILABLE, e.message))?;
    output::out(&format!("{}{path}: ok\n", client.base()))
}

/// The URL at which `serve --listen LISTEN` is reached from the same machine: an unspecified
/// address (0.0.0.0, ::) becomes loopback; no setting means serve's default.
pub fn listen_url(listen: Option<&str>) -> String {
    let listen = listen.map(str::trim).filter(|l| !l.is_empty());
    let Some(listen) = listen else {
        return "http://127.0.0.1:8080".to_string();
    };
    match listen.parse::<std::net::SocketAddr>() {
        Ok(addr) if addr.ip().is_unspecified() => {
            let ip: std::net::IpAddr = match addr {
                std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            };
            format!("http://{}", std::net::SocketAddr::new(ip, addr.port()))
        }
        Ok(addr) => format!("http://{addr}"),
        Err(_) => format!("http://{listen}"),
    }
}

#[cfg(test)]
mod tests {
    use super::listen_url;

    #[test]
    fn health_asks_where_serve_listens_from_the_same_machine() {
        assert_eq!(listen_url(None), "http://127.0.0.1:8080");
        assert_eq!(listen_url(Some(" ")), "http://127.0.0.1:8080");
        assert_eq!(listen_url(Some("0.0.0.0:8081")), "http://127.0.0.1:8081");
        assert_eq!(listen_url(Some("[::]:9000")), "http://[::1]:9000");
        assert_eq!(listen_url(Some("10.1.2.3:80")), "http://10.1.2.3:80");
        assert_eq!(listen_url(Some("localhost:8080")), "http://localhost:8080");
    }
}
