//! The chat page in a real browser: the `chat_server` example serves its page, two headless
//! Chromium pages (driven by `tests/browser/chat_e2e.mjs` through playwright-core) and one
//! `chat_client` example process join, each sends, and every participant sees every message
//! exactly once, as `"<sender>: <text>"`. A message carrying markup is shown as literal text.
//! Chromium's WebSocket negotiates permessage-deflate with the chat server, and small and
//! large messages go through it; the same over `https://` and `wss://` with the chat server's
//! `--tls-cert`/`--tls-key`, Chromium trusting the test CA (added to the NSS database of the
//! browser's `$HOME`, as a user would add a private CA), not ignoring certificate errors.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use ws_tests::certs::TestCerts;
use ws_tests::{chromium, free_port, node, tests_file, Peer};

const WAIT: Duration = Duration::from_secs(20);
const XSS: &str = "<img src=x onerror=alert(1)>";

/// Builds the two examples in release mode (a no-op when they are up to date) and returns the
/// directory holding them.
fn build_examples() -> PathBuf {
    ws_tests::build_examples("ws-facade", &["chat_server", "chat_client"])
}

/// Starts `chat_server --port <free port> <extra>`, retrying on another port if the one picked
/// was taken in between (at most 3 tries).
fn start_chat_server(examples: &std::path::Path, extra: &[&str]) -> (Peer, u16) {
    let mut failures = Vec::new();
    for _ in 0..3 {
        let port = free_port();
        let mut server = Peer::spawn(
            "chat_server",
            Command::new(examples.join("chat_server"))
                .args(["--port", &port.to_string()])
                .args(extra),
        )
        .with_grace(Duration::ZERO);
        match server.try_next_line(WAIT) {
            Some(line)
                if line == format!("[chat] ws://localhost:{port}/chat")
                    || line == format!("[chat] wss://localhost:{port}/chat") =>
            {
                return (server, port)
            }
            other => failures.push(format!(
                "port {port}: first line {other:?}, stderr {:?}",
                server.stderr()
            )),
        }
    }
    panic!("chat_server did not start: {failures:#?}");
}

/// Reads the driver's `collect` answer: per page, its status, markup counts and rows.
struct PageView {
    status: String,
    markup: String,
    rows: Vec<String>,
}

/// A JSON string literal for a plain ASCII text (what the driver prints with JSON.stringify).
fn json(text: &str) -> String {
    assert!(
        text.chars()
            .all(|c| c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\'),
        "json() only quotes plain ASCII: {text:?}"
    );
    format!("\"{text}\"")
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn chat_page_in_chromium_and_chat_client_see_every_message_once() {
    let node = node(&["playwright-core"]);
    chromium();
    let examples = build_examples();
    let (mut server, port) = start_chat_server(&examples, &[]);
    server.line_where(WAIT, |l| l.starts_with("[chat] open http://localhost:"));

    // Two pages, loaded from the server under test, join one after the other.
    let mut browser = Peer::spawn(
        "chromium driver (chat_e2e.mjs)",
        Command::new(&node)
            .arg(tests_file("browser/chat_e2e.mjs"))
            .arg(format!("http://127.0.0.1:{port}"))
            .args(["ann", "cat"]),
    );
    let ready = browser.next_line(Duration::from_secs(60));
    if ready != "ready" {
        browser.fail(&format!("expected `ready`, got {ready:?}"));
    }
    assert_eq!(server.next_line(WAIT), "[chat] join ann (1 online)");
    assert_eq!(server.next_line(WAIT), "[chat] join cat (2 online)");

    // Each page types its message (not sent yet).
    browser.send_line("type ann hello from ann");
    assert_eq!(browser.next_line(WAIT), "typed ann");
    browser.send_line(&format!("type cat {XSS}"));
    assert_eq!(browser.next_line(WAIT), "typed cat");

    // The chat_client joins; it posts its three messages 200 ms after connecting, 300 ms
    // apart, and stays until it has received its own three and the pages' two (`--expect 5`,
    // at most 10 s): the pages submit their forms as soon as it joined.
    let mut dan = Peer::spawn(
        "chat_client dan",
        Command::new(examples.join("chat_client")).args([
            "dan",
            "--port",
            &port.to_string(),
            "--expect",
            "5",
        ]),
    );
    assert_eq!(server.next_line(WAIT), "[chat] join dan (3 online)");
    let joined = std::time::Instant::now();
    // Enter in the send box submits the form.
    browser.send_line("submit ann enter");
    browser.send_line("submit cat enter");
    assert_eq!(browser.next_line(WAIT), "sent ann");
    assert_eq!(browser.next_line(WAIT), "sent cat");
    let sent_after = joined.elapsed();

    let status = dan.finish(WAIT);
    let left_after = joined.elapsed();
    eprintln!("pages sent {sent_after:?} after dan joined; dan left after {left_after:?}");
    assert!(
        status.success(),
        "chat_client exit: {status:?}, stderr {}",
        dan.stderr()
    );
    assert_eq!(server.next_line(WAIT), "[chat] leave dan");

    // With dan gone, ann sends once more with a click on the Send button.
    browser.send_line("type ann ann clicks send");
    assert_eq!(browser.next_line(WAIT), "typed ann");
    browser.send_line("submit ann click");
    assert_eq!(browser.next_line(WAIT), "sent ann");
    // What everyone must see, each exactly once.
    let expected = sorted(vec![
        "ann: hello from ann".to_owned(),
        format!("cat: {XSS}"),
        "dan: hello chat".to_owned(),
        "dan: anyone here?".to_owned(),
        "dan: goodbye".to_owned(),
    ]);
    let dans_own = ["dan: hello chat", "dan: anyone here?", "dan: goodbye"];

    // Collect what each page shows.
    browser.send_line(&format!("collect {}", expected.len() + 1));
    let mut views: Vec<(String, PageView)> = Vec::new();
    for n in 0.. {
        let line = browser.next_line(WAIT);
        if line == "done" {
            break;
        }
        if n > 100 {
            browser.fail("more than 100 lines in the collect answer");
        }
        let (kind, rest) = line.split_once(' ').unwrap_or((&line, ""));
        let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
        if views.last().is_none_or(|(n, _)| n != name) {
            views.push((
                name.to_owned(),
                PageView {
                    status: String::new(),
                    markup: String::new(),
                    rows: Vec::new(),
                },
            ));
        }
        let view = &mut views.last_mut().unwrap().1;
        match kind {
            "status" => view.status = value.to_owned(),
            "markup" => view.markup = value.to_owned(),
            "row" => view.rows.push(value.to_owned()),
            _ => browser.fail(&format!("unexpected line {line:?}")),
        }
        assert!(
            views.len() <= 2,
            "more pages than opened: {:?}",
            browser.seen()
        );
    }
    let names: Vec<&str> = views.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ann", "cat"]);

    let context = format!(
        "\n--- timing: pages sent {sent_after:?} after dan joined, dan exited after {left_after:?}\
         \n--- chat_server stdout:\n{}\n--- chat_client stdout:\n{}\n--- driver stdout:\n{}",
        server.seen().join("\n"),
        dan.seen().join("\n"),
        browser.seen().join("\n")
    );

    // The chat_client printed each broadcast once, as `[dan] <sender>: <text>`.
    let dan_lines: Vec<String> = dan
        .seen()
        .iter()
        .map(|l| {
            l.strip_prefix("[dan] ")
                .unwrap_or_else(|| panic!("unexpected chat_client line {l:?}{context}"))
                .to_owned()
        })
        .collect();
    assert_eq!(
        sorted(dan_lines.clone()),
        expected,
        "chat_client lines{context}"
    );
    let order: Vec<&String> = dan_lines
        .iter()
        .filter(|l| dans_own.contains(&l.as_str()))
        .collect();
    assert_eq!(order, dans_own, "dan's messages out of order{context}");

    let expected_rows = sorted(
        expected
            .iter()
            .chain([&"ann: ann clicks send".to_owned()])
            .map(|m| json(m))
            .collect(),
    );
    for (name, view) in &views {
        assert_eq!(
            sorted(view.rows.clone()),
            expected_rows,
            "page {name} rows{context}"
        );
        let order: Vec<&String> = view
            .rows
            .iter()
            .filter(|r| dans_own.iter().any(|m| json(m) == **r))
            .collect();
        assert_eq!(order.len(), 3);
        assert!(
            order[0].contains("hello chat") && order[2].contains("goodbye"),
            "page {name}: dan's messages out of order: {order:?}"
        );
        // Still connected after the chat_client left.
        assert_eq!(view.status, "\"connected\" up", "page {name} status");
        // The markup message is a literal text row: no element, no image, no alert.
        assert_eq!(
            view.markup, "0 0 0",
            "page {name}: extra elements in the log / img elements / dialogs"
        );
        assert!(view.rows.contains(&json(&format!("cat: {XSS}"))));
        assert_eq!(view.rows.last(), Some(&json("ann: ann clicks send")));
    }
    assert!(
        browser.finish(WAIT).success(),
        "driver exit status; stderr:\n{}",
        browser.stderr()
    );
}

/// Starts `deflate_probe.mjs` on the chat page at `base`, with `home` as the browser's `$HOME`
/// when given (its NSS database says which CAs it trusts).
fn deflate_probe(node: &std::path::Path, base: &str, home: Option<&std::path::Path>) -> Peer {
    let mut command = Command::new(node);
    command
        .arg(tests_file("browser/deflate_probe.mjs"))
        .arg(base);
    if let Some(home) = home {
        command.env("HOME", home);
    }
    Peer::spawn(
        &format!("chromium driver (deflate_probe.mjs {base})"),
        &mut command,
    )
}

/// The probe's report: compression negotiated, a small and a large message round-tripped.
fn expect_compressed_round_trips(mut browser: Peer) {
    // What Chromium offers is `permessage-deflate; client_max_window_bits`; the server's
    // answer, as the page sees it:
    assert_eq!(
        browser.next_line(Duration::from_secs(60)),
        "extensions \"permessage-deflate; server_max_window_bits=12; client_max_window_bits=12\""
    );
    assert_eq!(browser.next_line(WAIT), "echo 2 ok");
    // 3 000 records, 208 KiB: several frames each way, compressed.
    assert_eq!(browser.next_line(WAIT), "echo 213004 ok");
    assert_eq!(browser.next_line(WAIT), "done");
    browser.finish(WAIT);
}

#[test]
fn chromium_negotiates_permessage_deflate_with_the_chat_server() {
    let node = node(&["playwright-core"]);
    chromium();
    let examples = build_examples();
    // --verbose: the driver's debug line for each connection shows its extensions.
    let (mut server, port) = start_chat_server(&examples, &["--verbose"]);
    server.line_where(WAIT, |l| l.starts_with("[chat] open http://localhost:"));
    let browser = deflate_probe(&node, &format!("http://127.0.0.1:{port}"), None);
    expect_compressed_round_trips(browser);
    // The server's side of it: the probe's connection, compressed.
    let logs = server.stderr();
    assert!(
        logs.lines().any(|l| l.contains("server connection open")
            && l.contains(r#"path="/chat?id=probe""#)
            && l.contains(r#"extensions="permessage-deflate; server_max_window_bits=12; client_max_window_bits=12""#)),
        "{logs}"
    );
}

/// A `$HOME` whose NSS database (`.pki/nssdb`, where Chromium on Linux keeps the certificates
/// a user trusts) trusts the CA of `certs` to identify servers.
fn home_trusting(certs: &TestCerts) -> PathBuf {
    let home = certs.dir().join("home");
    let nssdb = home.join(".pki/nssdb");
    std::fs::create_dir_all(&nssdb).unwrap();
    let db = format!("sql:{}", nssdb.display());
    let certutil = |args: &[&str]| {
        let out = Command::new("certutil")
            .args(["-d", &db])
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "certutil ({e}): install Debian's libnss3-tools; \
                     `bash .ci/run peers` does it"
                )
            });
        assert!(
            out.status.success(),
            "certutil {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    certutil(&["-N", "--empty-password"]);
    let ca = certs.ca();
    certutil(&[
        "-A",
        "-t",
        "C,,",
        "-n",
        "ws-tests CA",
        "-i",
        ca.to_str().unwrap(),
    ]);
    home
}

#[test]
fn chat_page_over_https_and_chat_over_wss_in_chromium_trusting_the_test_ca() {
    let node = node(&["playwright-core"]);
    chromium();
    let examples = build_examples();
    let certs = TestCerts::new();
    let home = home_trusting(&certs);
    let (cert, key) = (certs.cert(), certs.key());
    let (mut server, port) = start_chat_server(
        &examples,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--verbose",
        ],
    );
    server.line_where(WAIT, |l| l.starts_with("[chat] open https://localhost:"));
    // Certificate errors are not ignored: a browser whose $HOME does not trust the CA refuses
    // the page.
    let untrusting = certs.dir().join("home-without-the-ca");
    std::fs::create_dir_all(&untrusting).unwrap();
    let mut refused = deflate_probe(
        &node,
        &format!("https://localhost:{port}"),
        Some(&untrusting),
    );
    let error = refused.next_line(Duration::from_secs(60));
    assert!(
        error.starts_with("error ") && error.contains("ERR_CERT_AUTHORITY_INVALID"),
        "{error}"
    );
    refused.finish(WAIT);
    let browser = deflate_probe(&node, &format!("https://localhost:{port}"), Some(&home));
    expect_compressed_round_trips(browser);
    let logs = server.stderr();
    assert!(
        logs.lines()
            .any(|l| l.contains("plain HTTP request answered")
                && l.contains(r#"path="/?name=page""#)
                && l.contains("status=200")),
        "the page was served: {logs}"
    );
}
