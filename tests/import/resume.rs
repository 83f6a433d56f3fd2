//! Ctrl-C and resume: every row imported exactly once.

use super::*;

/// An import of a few thousand rows (TSV) stopped by SIGINT once its first checkpoint is written
/// exits 130 after the batch in flight, keeps the checkpoint and says how to resume; the same
/// command again resumes and completes: every row imported exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn an_import_stopped_by_ctrl_c_resumes_and_imports_every_row_once() {
    const ROWS: usize = 5000;
    let server = spawn_server(&[]);
    let user = User::new();
    let file = numbered_tsv(&user, "many.tsv", "r", ROWS);
    let checkpoint = beside(&file, "import-checkpoint");
    let file_arg = file.display().to_string();
    let args: Vec<String> = [
        "import",
        "--from",
        "tsv",
        &file_arg,
        "--batch",
        "100",
        "--no-progress",
        "--server",
        &server.base,
        "--key",
        &server.admin_key,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();

    let mut child = user
        .command(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn snip import");
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    // The first checkpoint: at least one batch is done.
    let deadline = Instant::now() + POLL_BOUND;
    while !checkpoint.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "snip import ended ({status}) before a checkpoint was seen: {}",
                String::from_utf8_lossy(&stderr.join().unwrap())
            );
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint within {POLL_BOUND:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
    let deadline = Instant::now() + RUN_BOUND;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("snip import did not stop within {RUN_BOUND:?} of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let first = Run {
        args: args.clone(),
        out: Output {
            status,
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        },
    };
    assert_eq!(first.code(), Some(130), "{}", first.context());
    assert!(
        first.stderr().contains("interrupted")
            && first
                .stderr()
                .contains("run the same command again to resume"),
        "{}",
        first.context()
    );
    assert!(
        checkpoint.exists(),
        "the checkpoint stays: {}",
        first.context()
    );
    let [imported1, present1, taken1, rejected1] = parse_summary(&first);
    assert_eq!(
        (present1, taken1, rejected1),
        (0, 0, 0),
        "{}",
        first.context()
    );
    assert!(
        imported1 > 0 && imported1 < ROWS as u64,
        "stopped part way: {}",
        first.context()
    );
    assert_eq!(imported1 % 100, 0, "whole batches: {}", first.context());
    assert_eq!(
        all_links(&server).await.len() as u64,
        imported1,
        "the server has what the summary says"
    );

    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let second = user.run(&args);
    second.ok();
    assert!(
        second.stderr().contains(&format!(
            "resuming an interrupted import after row {imported1}"
        )),
        "{}",
        second.context()
    );
    // The resumed run's summary is the whole import's (the checkpoint carries the counts of
    // the interrupted run): every row imported once, none sent twice (nothing "present").
    second.summary(ROWS as u64, 0, 0, 0);
    assert!(!checkpoint.exists(), "the checkpoint is removed at the end");
    let links = all_links(&server).await;
    assert_eq!(links.len(), ROWS, "exactly one link per row");
    let mut codes: Vec<String> = links.iter().map(common::code_of).collect();
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), ROWS);

    // Finished: a third run finds everything present.
    let third = user.run(&args);
    third.ok();
    third.summary(0, ROWS as u64, 0, 0);
}
