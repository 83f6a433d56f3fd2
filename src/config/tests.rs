//! Tests of the settings: layering, defaults and the refusal of bad values.

use super::*;

/// The packaged /etc/snip/snip.toml lists every setting of `serve` (commented out), and
/// each example parses: uncommented, the whole file is a valid config file.
#[test]
fn the_packaged_config_file_lists_every_setting() {
    let text = include_str!("../../packaging/snip.toml");
    let keys: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# ").unwrap_or(l).split_once(" = "))
        .map(|(key, _)| key)
        .filter(|key| key.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .collect();
    let command = <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"));
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if long != "config" {
            assert!(keys.contains(&long), "packaging/snip.toml lacks {long}");
        }
    }
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest
                    .split_once(" = ")
                    .is_some_and(|(k, _)| !k.contains(' ')) =>
            {
                rest
            }
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let file: ServeArgs = toml::from_str(&uncommented).expect("packaging/snip.toml parses");
    assert_eq!(
        file.database.as_deref(),
        Some("sqlite:///var/lib/snip/snip.db")
    );
    assert_eq!(file.max_connections, Some(10000));
}

#[test]
fn flags_win_over_the_config_file() {
    let flags = ServeArgs {
        listen: Some("127.0.0.1:9".into()),
        ..Default::default()
    };
    let file: ServeArgs = toml::from_str("listen = \"0.0.0.0:1\"\ncode-length = 9\n").unwrap();
    let s = flags.or(file).resolve().unwrap();
    assert_eq!(s.listen, "127.0.0.1:9");
    assert_eq!(s.code_length, 9);
}

#[test]
fn sqlite_urls_map_to_relative_and_absolute_paths() {
    assert_eq!(
        sqlite_path("sqlite://snip-data/snip.db").unwrap(),
        PathBuf::from("snip-data/snip.db")
    );
    assert_eq!(
        sqlite_path("sqlite:///var/lib/snip.db").unwrap(),
        PathBuf::from("/var/lib/snip.db")
    );
    assert!(Database::parse("mysql://x").is_err());
    assert_eq!(
        Database::parse("postgres://h1,h2/db?target_session_attrs=read-write").unwrap(),
        Database::Postgres(Dsn::new(
            "postgres://h1,h2/db?target_session_attrs=read-write"
        ))
    );
}

#[test]
fn connection_urls_never_show_their_password() {
    let settings = ServeArgs {
        database: Some("postgres://snip:hunter2@db.internal:5432/snip".into()),
        database_replica: Some(vec!["postgres://ro:s3cret@replica/snip".into()]),
        redis: Some("redis://:redispass@127.0.0.1:6379".into()),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let shown = format!("{settings:?}");
    for secret in ["hunter2", "s3cret", "redispass"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(
        shown.contains("postgres://snip:***@db.internal:5432/snip"),
        "{shown}"
    );
    let Database::Postgres(url) = &settings.database else {
        panic!("{settings:?}")
    };
    assert_eq!(
        url.expose(),
        "postgres://snip:hunter2@db.internal:5432/snip"
    );
    // Not a URL: nothing of it is shown but its scheme.
    assert_eq!(Dsn::new("host=x password=p").to_string(), "…");
    assert_eq!(Dsn::new("postgres://u:p@[bad").to_string(), "postgres://…");
    let err = ServeArgs {
        redis: Some("http://u:topsecret@h".into()),
        ..Default::default()
    }
    .resolve()
    .unwrap_err();
    assert!(!format!("{err:#}").contains("topsecret"), "{err:#}");
}

#[test]
fn replicas_need_postgres_and_urls_are_checked() {
    let args = ServeArgs {
        database_replica: Some(vec!["postgres://r/db".into()]),
        ..Default::default()
    };
    let err = args.resolve().unwrap_err().to_string();
    assert!(err.contains("needs a postgres://"), "{err}");
    let args = ServeArgs {
        database: Some("postgres://p/db".into()),
        database_replica: Some(vec!["postgres://r/db".into()]),
        redis: Some("redis://127.0.0.1:6379".into()),
        click_durability: Some(ClickDurability::Off),
        ..Default::default()
    };
    let s = args.resolve().unwrap();
    assert_eq!(s.database_replicas, vec![Dsn::new("postgres://r/db")]);
    assert_eq!(s.click_durability, ClickDurability::Off);
    assert_eq!(s.cache_ttl, Duration::from_secs(60));
    let args = ServeArgs {
        redis: Some("http://127.0.0.1".into()),
        ..Default::default()
    };
    assert!(args.resolve().is_err());
}

#[test]
fn write_consistency_sets_links_and_clicks_per_kind() {
    use Consistency::*;
    let level = |raw: Option<&str>, clicks| consistency(raw, clicks).map_err(|e| e.to_string());
    assert_eq!(level(None, None), Ok((None, ClickDurability::Local)));
    assert_eq!(
        level(Some("all"), None),
        Ok((Some(All), ClickDurability::Local))
    );
    assert_eq!(
        level(Some(" links=one , clicks=quorum"), None),
        Ok((Some(One), ClickDurability::Quorum))
    );
    assert_eq!(
        level(Some("clicks=all"), None),
        Ok((None, ClickDurability::All))
    );
    assert_eq!(
        level(Some("QUORUM"), Some(ClickDurability::Off)),
        Ok((Some(Quorum), ClickDurability::Off))
    );
    for (bad, says) in [
        ("most", "not a level"),
        ("keys=one", "not a kind"),
        ("links=", "not a level"),
    ] {
        let err = level(Some(bad), None).unwrap_err();
        assert!(err.contains(says), "{bad}: {err}");
    }
    let err = level(Some("clicks=one"), Some(ClickDurability::Local)).unwrap_err();
    assert!(err.contains("keep one"), "{err}");
    assert_eq!(One.synchronous_commit(), "local");
    assert_eq!(Quorum.synchronous_commit(), "on");
    assert_eq!(All.synchronous_commit(), "remote_apply");
}

#[test]
fn base_url_must_be_an_origin() {
    assert!(parse_base_url("https://sn.ip").is_ok());
    assert!(parse_base_url("https://sn.ip/x").is_err());
    assert!(parse_base_url("ftp://sn.ip").is_err());
    assert_eq!(
        origin_string(&parse_base_url("https://SN.ip").unwrap()),
        "https://sn.ip"
    );
}

/// `[default: X]` in `serve --help` is written by hand: setting each flag to the value its
/// help shows must give the same settings as leaving it out.
#[test]
fn the_defaults_serve_help_shows_are_the_defaults() {
    use clap::{CommandFactory, Parser, Subcommand};
    /// `snip serve` as the binary parses it (the whole command line is in `cli`).
    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }
    #[derive(Subcommand)]
    enum Command {
        Serve(Box<ServeArgs>),
    }
    let serve = |args: &[&str]| -> Settings {
        let cli = Cli::try_parse_from([&["snip", "serve"], args].concat()).unwrap();
        let Command::Serve(args) = cli.command;
        args.load().unwrap()
    };
    let plain = format!("{:?}", serve(&[]));
    let mut command = Cli::command();
    let serve_command = command.find_subcommand_mut("serve").unwrap();
    let mut checked = 0;
    for arg in serve_command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let help = arg.get_long_help().or(arg.get_help()).unwrap().to_string();
        let Some((_, rest)) = help.split_once("[default: ") else {
            continue;
        };
        let value = rest.split_once(']').unwrap().0;
        if value.contains('<') || value.contains(' ') {
            continue; // "http://<bound address>", "pretty on a terminal, else json"
        }
        let flag = format!("--{long}");
        assert_eq!(
            format!("{:?}", serve(&[&flag, value])),
            plain,
            "{flag} {value} is not the default"
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} defaults checked");
}

#[test]
fn listen_must_be_host_and_port() {
    for good in ["127.0.0.1:8080", "0.0.0.0:0", "[::1]:80", "localhost:8080"] {
        assert!(check_listen(good).is_ok(), "{good}");
    }
    for bad in [
        "notanaddress",
        "127.0.0.1",
        ":8080",
        "127.0.0.1:99999",
        "a b:80",
    ] {
        assert!(check_listen(bad).is_err(), "{bad}");
    }
}

#[test]
fn debug_of_a_secret_hides_it() {
    assert_eq!(
        format!("{:?}", Secret::new("hunter2".into())),
        "Secret(***)"
    );
}
