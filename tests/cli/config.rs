//! `snip login|logout`, the config file, and where the server and key come from (flags, variables, the saved file).

use super::*;

/// `snip login` checks the key first (a wrong key: exit 3, nothing saved; a later wrong key
/// leaves the saved file as it was), reads the key from stdin without `--key`, saves the
/// server and key in `$XDG_CONFIG_HOME/snip/config.toml` (file 0600, directory 0700) which
/// later commands use; `snip logout` deletes it, and then commands exit 2 naming `snip login`.
#[tokio::test]
async fn login_saves_a_0600_config_that_commands_use_and_logout_removes_it() {
    let server = start_server(&[]);
    let sandbox = Sandbox::new();

    sandbox
        .run_full(
            &["login", "--server", &server.base],
            &[],
            &format!("{}\n", random_secret()),
            RUN_BOUND,
        )
        .problem(3, "unauthorized");
    assert!(!sandbox.config_file().exists(), "a wrong key is not saved");

    let with_slash = format!("{}/", server.base);
    sandbox
        .run_full(
            &["login", "--server", &with_slash],
            &[],
            &format!("{}\n", server.admin_key),
            RUN_BOUND,
        )
        .ok();
    let file = sandbox.config_file();
    assert_eq!(mode(&file), 0o600, "the config file is 0600");
    assert_eq!(mode(file.parent().unwrap()), 0o700, "its directory is 0700");
    let text = std::fs::read_to_string(&file).expect("read the config");
    let saved: toml::Table = toml::from_str(&text).expect("the config is TOML");
    assert_eq!(
        saved["server"].as_str().map(|s| s.trim_end_matches('/')),
        Some(server.base.as_str()),
        "{text}"
    );
    assert_eq!(
        saved["key"].as_str(),
        Some(server.admin_key.as_str()),
        "{text}"
    );

    // Later commands need neither flags nor variables.
    let created = sandbox.run(&[
        "link",
        "create",
        "https://example.com/saved",
        "--code",
        "saved1",
    ]);
    assert_eq!(created.ok(), format!("{}/saved1\n", server.base));
    assert_eq!(
        codes(&sandbox.run(&["link", "list", "--json"]).json()),
        ["saved1"]
    );

    // A failed login leaves the saved file alone.
    sandbox
        .run(&["login", "--server", &server.base, "--key", &random_secret()])
        .exits(3);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);

    sandbox.run(&["logout"]).ok();
    assert!(!file.exists(), "logout deletes the file");
    sandbox.run(&["link", "list"]).exits(2).says("snip login");
    sandbox.run(&["logout"]).ok();

    // `--key` works as well as stdin.
    login(&sandbox, &server);
    assert_eq!(mode(&sandbox.config_file()), 0o600);
    sandbox.run(&["link", "show", "saved1"]).ok();
}

/// A config file that group or others may read holds a secret in the open: commands refuse it
/// with exit 78 and tell how to fix it (`chmod 600`); at 0600 it works; a file that is not
/// valid TOML is refused with exit 78 too.
#[tokio::test]
async fn a_config_file_others_may_read_is_refused_with_exit_78() {
    let server = start_server(&[]);
    let sandbox = Sandbox::new();
    login(&sandbox, &server);
    let file = sandbox.config_file();
    sandbox.run(&["link", "list"]).ok();

    for unsafe_mode in [0o644, 0o640, 0o604] {
        chmod(&file, unsafe_mode);
        sandbox.run(&["link", "list"]).exits(78).says("chmod 600");
    }
    chmod(&file, 0o600);
    sandbox.run(&["link", "list"]).ok();

    std::fs::write(&file, "this is = = not toml\n").expect("spoil the config");
    chmod(&file, 0o600);
    sandbox.run(&["link", "list"]).exits(78).says("snip: ");
}

/// Where the server and key come from: flags before `SNIP_SERVER`/`SNIP_KEY`, and those before
/// the saved file; the variables alone are enough.
#[tokio::test]
async fn flags_beat_variables_and_variables_beat_the_saved_file() {
    let server = start_server(&[]);
    let down = "http://127.0.0.1:1";

    // Variables alone.
    let fresh = Sandbox::new();
    fresh
        .run_env(
            &[
                "link",
                "create",
                "https://example.com/env",
                "--code",
                "env1",
            ],
            &[
                ("SNIP_SERVER", &server.base),
                ("SNIP_KEY", &server.admin_key),
            ],
        )
        .ok();
    // A flag beats its variable.
    fresh
        .run_env(
            &["link", "show", "env1", "--server", &server.base],
            &[("SNIP_SERVER", down), ("SNIP_KEY", &server.admin_key)],
        )
        .ok();
    fresh
        .run_env(
            &["link", "show", "env1", "--key", &server.admin_key],
            &[
                ("SNIP_SERVER", &server.base),
                ("SNIP_KEY", &random_secret()),
            ],
        )
        .ok();

    // Variables beat the saved file.
    let saved = Sandbox::new();
    login(&saved, &server);
    saved.run(&["link", "show", "env1"]).ok();
    // SNIP_SERVER beats the saved server; the saved key stays with the saved server, so
    // there is no key for this one.
    saved
        .run_env(&["link", "show", "env1"], &[("SNIP_SERVER", down)])
        .exits(2)
        .says("--key");
    saved
        .run_env(&["link", "show", "env1"], &[("SNIP_KEY", &random_secret())])
        .problem(3, "unauthorized");
}

/// With no server anywhere (no flag, variable or saved file) a client command is a usage error
/// naming `snip login`; a server without any key is one too.
#[tokio::test]
async fn no_server_or_no_key_is_a_usage_error_naming_snip_login() {
    let sandbox = Sandbox::new();
    for args in [
        &["link", "list"][..],
        &["link", "show", "abc"],
        &["link", "create", "https://example.com/x"],
        &["key", "list"],
    ] {
        sandbox.run(args).exits(2).says("snip login");
    }
    sandbox
        .run(&["link", "list", "--server", "http://127.0.0.1:1"])
        .exits(2)
        .says("--key");
    assert!(!sandbox.config_file().exists());
}

/// The key saved by `snip login` belongs to the saved server: a command pointed at another
/// server (`--server` or `SNIP_SERVER`) must not send it the saved secret.
#[tokio::test]
async fn the_saved_key_is_not_sent_to_another_server() {
    let server = start_server(&[]);
    let sandbox = Sandbox::new();
    login(&sandbox, &server);
    let problem = json!({
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "code": "unauthorized",
        "detail": "a valid API key is required",
    })
    .to_string();
    let other = FakeServer::answering("401 Unauthorized", "application/problem+json", &problem);

    let by_flag = sandbox.run(&["link", "list", "--server", &other.base()]);
    let by_variable = sandbox.run_env(&["link", "list"], &[("SNIP_SERVER", &other.base())]);
    for run in [&by_flag, &by_variable] {
        assert_ne!(run.code, Some(0), "{}", run.context());
    }
    let leaked: Vec<String> = other
        .requests()
        .into_iter()
        .filter(|r| r.contains(&server.admin_key))
        .collect();
    assert!(
        leaked.is_empty(),
        "the key saved for {} was sent to {}:\n{}",
        server.base,
        other.base(),
        leaked.join("\n")
    );
}
