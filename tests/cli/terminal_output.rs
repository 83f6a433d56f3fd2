//! Colours (only on a terminal, never with `NO_COLOR`), completions, the man page.

use super::*;

/// Colours only on a terminal (run under `script`, which gives the command a pseudo-terminal)
/// and never with `NO_COLOR=1`, on stdout and on the `snip:` of errors. (Every other test
/// checks that captured output never has colour codes.)
#[tokio::test]
async fn colours_only_on_a_terminal_and_never_with_no_color() {
    let Some(script) = common::required_tool("script", "bsdutils") else {
        return;
    };
    let server = start_server(&[]);
    let sandbox = Sandbox::new();
    sandbox
        .remote(&server)
        .run(&["link", "create", "https://example.com/c", "--code", "col1"])
        .ok();
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let on_terminal = |code: &str, envs: &[(&str, &str)]| -> (Option<i32>, String) {
        let line = [
            SNIP,
            "link",
            "show",
            code,
            "--server",
            &server.base,
            "--key",
            &server.admin_key,
        ]
        .map(quote)
        .join(" ");
        let mut cmd = sandbox.command(&script.display().to_string());
        cmd.args(["-qec", &line, "/dev/null"])
            .envs(envs.iter().copied());
        let (status, out, _) = bounded_output(cmd, b"", RUN_BOUND, "script snip link show");
        (status.code(), String::from_utf8_lossy(&out).into_owned())
    };
    let short_url = format!("{}/col1", server.base);

    let (code, out) = on_terminal("col1", &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("\x1b[1m{short_url}")),
        "the short URL is bold on a terminal: {out:?}"
    );
    let (code, out) = on_terminal("col1", &[("NO_COLOR", "1")]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&short_url), "{out:?}");
    assert!(!out.contains('\x1b'), "NO_COLOR=1: no colours: {out:?}");

    let (code, out) = on_terminal("nope1", &[]);
    assert_eq!(code, Some(4), "{out}");
    assert!(
        out.contains("\x1b[31msnip:"),
        "a red snip: on a terminal: {out:?}"
    );
    let (code, out) = on_terminal("nope1", &[("NO_COLOR", "1")]);
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("snip: link not found"), "{out:?}");
    assert!(!out.contains('\x1b'), "NO_COLOR=1: no colours: {out:?}");
}

/// `snip completions bash|zsh|fish` print a script that knows `snip` and its subcommands; an
/// unknown shell is a usage error; `snip man` prints a roff man page of snip.
#[test]
fn completions_and_the_man_page() {
    let sandbox = Sandbox::new();
    for shell in ["bash", "zsh", "fish"] {
        let run = sandbox.run(&["completions", shell]);
        let script = run.ok();
        for word in ["snip", "link", "login", "completions"] {
            assert!(script.contains(word), "{shell}: {word}: {}", run.context());
        }
    }
    sandbox.run(&["completions", "tcsh"]).exits(2);

    let man = sandbox.run(&["man"]);
    let page = man.ok();
    assert!(
        page.starts_with(".ie") || page.starts_with(".TH"),
        "roff: {}",
        man.context()
    );
    assert!(page.contains(".TH snip"), "{}", man.context());
    assert!(page.contains(".SH"), "{}", man.context());
    assert!(page.contains("login"), "{}", man.context());
}
