//! The exit codes scripts rely on: refusals, rate limits, unreachable, silent and broken servers.

use super::*;

/// Each refusal of a real server has its exit code, with the problem's detail on stderr as
/// `snip: DETAIL (CODE)`: input refused (422, 413) and client-side usage errors 2, a wrong
/// key 3, an unknown code 4, a taken code 5. Nothing refused is created.
#[tokio::test]
async fn server_refusals_map_to_exit_codes() {
    let server = start_server(&[]);
    let sandbox = Sandbox::new();
    let cli = sandbox.remote(&server);

    cli.run(&["link", "create", "not-a-url"])
        .problem(2, "invalid_url");
    cli.run(&["link", "create", "https://example.com/x", "--code", "a b"])
        .problem(2, "invalid_code");
    cli.run(&[
        "link",
        "create",
        "https://example.com/x",
        "--max-clicks",
        "0",
    ])
    .problem(2, "invalid_field");
    cli.run(&[
        "link",
        "create",
        "https://example.com/x",
        "--expires",
        "2001-01-01T00:00:00Z",
    ])
    .problem(2, "invalid_field");
    let huge_title = "t".repeat(70_000);
    cli.run(&[
        "link",
        "create",
        "https://example.com/x",
        "--title",
        &huge_title,
    ])
    .problem(2, "payload_too_large");
    // Refused before asking the server.
    cli.run(&[
        "link",
        "create",
        "https://example.com/x",
        "--expires",
        "soon",
    ])
    .exits(2)
    .says("--expires");
    sandbox
        .remote_as("ftp://example.com", &server.admin_key)
        .run(&["link", "list"])
        .exits(2)
        .says("--server");
    cli.run(&["link", "create", "https://example.com/x", "--no-such-flag"])
        .exits(2);
    cli.run(&["link", "frobnicate"]).exits(2);
    assert_eq!(
        cli.run(&["link", "list", "--json"]).json(),
        json!([]),
        "nothing refused was created"
    );

    sandbox
        .remote_as(&server.base, &random_secret())
        .run(&["link", "list"])
        .problem(3, "unauthorized");

    for args in [
        &["link", "show", "nope1"][..],
        &["link", "edit", "nope1", "--title", "x"],
        &["link", "disable", "nope1"],
        &["link", "enable", "nope1"],
        &["link", "rm", "nope1"],
        &["link", "stats", "nope1"],
        &["link", "qr", "nope1"],
    ] {
        cli.run(args).problem(4, "not_found");
    }

    cli.run(&[
        "link",
        "create",
        "https://example.com/a",
        "--code",
        "taken1",
    ])
    .ok();
    let taken = cli.run(&[
        "link",
        "create",
        "https://example.com/b",
        "--code",
        "taken1",
    ]);
    taken.exits(5);
    assert_eq!(
        taken.stderr.trim_end(),
        "snip: code taken1 is taken (code_taken)",
        "{}",
        taken.context()
    );
    assert_eq!(taken.stdout, "", "nothing on stdout");
    assert_eq!(
        cli.run(&["link", "show", "taken1", "--json"]).json()["url"],
        "https://example.com/a",
        "the first link is untouched"
    );
}

/// A key over its rate limit (`serve --rate-limit 1`) gets 429 from the server: exit 6 with
/// the problem on stderr.
#[tokio::test]
async fn a_rate_limited_key_exits_6() {
    let server = start_server(&["--rate-limit", "1"]);
    let sandbox = Sandbox::new();
    let cli = sandbox.remote(&server);
    // One request per second with a burst of one: back-to-back runs soon hit the limit.
    let mut seen = Vec::new();
    let limited = loop {
        let run = cli.run(&["link", "list", "--limit", "1", "--json"]);
        seen.push(run.code);
        if run.code != Some(0) {
            break run;
        }
        assert!(seen.len() < 30, "no 429 in 30 back-to-back runs: {seen:?}");
    };
    limited.problem(6, "rate_limited");
}

/// A server nothing listens on (`127.0.0.1:1`) exits 69 at once, saying it cannot be reached;
/// `login` to it exits 69 too and saves nothing.
#[tokio::test]
async fn an_unreachable_server_exits_69_quickly() {
    let sandbox = Sandbox::new();
    let cli = sandbox.remote_as("http://127.0.0.1:1", &random_secret());
    for args in [
        &["link", "list"][..],
        &["link", "create", "https://example.com/x"],
        &["key", "list"],
    ] {
        let run = cli.run(args);
        run.exits(69).says("cannot be reached").says("snip: ");
        assert!(
            run.took < Duration::from_secs(10),
            "quickly: {}",
            run.context()
        );
    }
    sandbox
        .run(&[
            "login",
            "--server",
            "http://127.0.0.1:1",
            "--key",
            &random_secret(),
        ])
        .exits(69)
        .says("cannot be reached");
    assert!(
        !sandbox.config_file().exists(),
        "a failed login saves nothing"
    );
}

/// A server that accepts the connection but never answers: with `--timeout 2` the command
/// gives up after about two seconds with exit 69, saying it did not answer in time.
#[tokio::test]
async fn a_server_that_never_answers_exits_69_after_the_timeout() {
    // Connections complete in the kernel's backlog; nobody ever reads or answers.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind the silent server");
    let base = format!("http://{}", silent.local_addr().unwrap());
    let sandbox = Sandbox::new();
    let started = Instant::now();
    let run = sandbox.run_full(
        &[
            "link",
            "list",
            "--server",
            &base,
            "--key",
            &random_secret(),
            "--timeout",
            "2",
        ],
        &[],
        "",
        Duration::from_secs(15),
    );
    run.exits(69).says("did not answer in time");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(15),
        "waited for the 2 s timeout, not much longer: {took:?}; {}",
        run.context()
    );
    drop(silent);
}

/// A server error (5xx) is "server unavailable", exit 69, with the problem's detail or the
/// start of a non-JSON body on stderr; a 200 answer snip cannot read fails with exit 1.
#[tokio::test]
async fn a_server_error_exits_69_and_an_unreadable_answer_exits_1() {
    let sandbox = Sandbox::new();
    let key = random_secret();

    let problem = json!({
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "code": "store_unavailable",
        "detail": "the store does not answer",
    })
    .to_string();
    let unavailable = FakeServer::answering(
        "503 Service Unavailable",
        "application/problem+json",
        &problem,
    );
    sandbox
        .remote_as(&unavailable.base(), &key)
        .run(&["link", "show", "abc"])
        .problem(69, "store_unavailable")
        .says("the store does not answer");
    let requests = unavailable.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(
        requests[0].starts_with("GET /api/v1/links/abc "),
        "{requests:?}"
    );
    assert!(
        requests[0].to_ascii_lowercase().contains(&format!(
            "authorization: bearer {}",
            key.to_ascii_lowercase()
        )),
        "the key is sent as a bearer token: {requests:?}"
    );

    let broken =
        FakeServer::answering("500 Internal Server Error", "text/plain", "something broke");
    sandbox
        .remote_as(&broken.base(), &key)
        .run(&["link", "list"])
        .exits(69)
        .says("something broke");

    let garbage = FakeServer::answering("200 OK", "application/json", "this is not json");
    let run = sandbox
        .remote_as(&garbage.base(), &key)
        .run(&["link", "show", "abc"]);
    run.exits(1).says("snip: ");
    assert_eq!(run.stdout, "", "{}", run.context());
}
