//! The web app in a real headless Chromium (driven through chromedriver)
//! against two real daemons: logging in with `roost open`'s link, live
//! presence, a message typed in one page arriving live in the other and
//! turning `delivered` then `read`, a buddy going away, and the guard
//! refusing requests without the session, with a foreign Host or Origin.
//! Screenshots go to `target/test-output/web/`.
//!
//! Chromium and chromedriver must be installed (`apt-get install chromium
//! chromium-driver`; `.ci/run` does it): without them the test fails.

#[path = "web/browser.rs"]
mod browser;
mod common;

use std::process::Command;

use browser::{Driver, http, js, log_texts, login, row, screenshot, until};
use common::{Daemon, eventually};
use fantoccini::Locator;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_chat_live_through_two_daemons() {
    let driver = Driver::start().await;
    let a = Daemon::start(None).await;
    let mut b = Daemon::start(Some(&a.addr().await)).await;
    let (ida, idb) = (a.id.to_string(), b.id.to_string());
    a.rows(&["buddy", "add", &idb, "--name", "Bob"]);
    b.rows(&["buddy", "add", &ida, "--name", "Alice"]);
    a.rows(&[
        "presence",
        "set",
        "online",
        "--note",
        "writing the docs",
        "--location",
        "Lyon",
    ]);
    b.rows(&[
        "presence",
        "set",
        "busy",
        "--note",
        "in a meeting",
        "--until",
        "15:00",
    ]);

    let ca = driver.browser(1100, 840).await;
    let cb = driver.browser(1100, 840).await;
    let (base_a, spent) = login(&ca, &a).await;
    let (status, body) = http(
        base_a.trim_start_matches("http://"),
        &format!(
            "POST /login HTTP/1.1\r\nHost: {}\r\nOrigin: {base_a}\r\nContent-Type: application/json\r\n",
            base_a.trim_start_matches("http://")
        ),
        &json!({ "token": spent }).to_string(),
    );
    assert_eq!(status, 401, "a login link works once: {body}");

    // A's buddy list shows B with its live presence.
    until(
        &ca,
        "A's page shows B busy",
        &row(&idb, "?.dataset.status === 'busy'"),
    )
    .await;
    b.rows(&["presence", "set", "online"]);
    until(
        &ca,
        "A's page shows B online",
        &row(&idb, "?.dataset.status === 'online'"),
    )
    .await;
    login(&cb, &b).await;
    until(
        &cb,
        "B's page shows A online, with A's note and location",
        &row(
            &ida,
            "?.dataset.status === 'online' && document.querySelector('.preview')?.textContent === 'writing the docs · @ Lyon'",
        ),
    )
    .await;

    // A opens the conversation and types a message, Enter sends it.
    ca.find(Locator::Css(&format!("li.buddy[data-id=\"{idb}\"] button")))
        .await
        .expect("B's row")
        .click()
        .await
        .expect("open B");
    let text = "Hello Bob, this came through the browser";
    let input = ca.find(Locator::Id("text")).await.expect("the input line");
    input.send_keys(text).await.expect("type");
    input
        .send_keys(&char::from(fantoccini::key::Key::Enter).to_string())
        .await
        .expect("Enter");
    let mid = until(
        &ca,
        "the message is in A's conversation",
        "return document.querySelector('#messages li.msg.out')?.dataset.id",
    )
    .await;
    let mid = mid.as_str().expect("an id").to_string();
    let state_a = format!(
        "return document.querySelector('#messages li.msg[data-id=\"{mid}\"]')?.dataset.state"
    );

    // It appears live in B's page: preview and unread count on A's row.
    until(
        &cb,
        "B's page shows the message live, unread",
        &row(
            &ida,
            &format!(
                "?.querySelector('.preview')?.textContent === {} && \
                 document.querySelector('li.buddy[data-id=\"{ida}\"] .unread')?.textContent === '1'",
                json!(text)
            ),
        ),
    )
    .await;
    until(
        &ca,
        "A sees the message delivered",
        &format!("{state_a} === 'delivered'"),
    )
    .await;
    assert_eq!(
        js(&cb, "return document.getElementById('conv').hidden").await,
        json!(true),
        "B has not opened the conversation yet"
    );

    // B opens the conversation: the message is there, and A sees it read.
    cb.find(Locator::Css(&format!("li.buddy[data-id=\"{ida}\"] button")))
        .await
        .expect("A's row")
        .click()
        .await
        .expect("open A");
    until(
        &cb,
        "B's conversation shows the message",
        &format!(
            "return [...document.querySelectorAll('#messages li.msg.in .text')].some(t => t.textContent === {})",
            json!(text)
        ),
    )
    .await;
    until(
        &ca,
        "A sees the message read",
        &format!("{state_a} === 'read'"),
    )
    .await;
    let reply = "Got it, replying from my page";
    let input_b = cb.find(Locator::Id("text")).await.expect("B's input line");
    input_b.send_keys(reply).await.expect("type");
    input_b
        .send_keys(&char::from(fantoccini::key::Key::Enter).to_string())
        .await
        .expect("Enter");
    until(
        &ca,
        "A's open conversation shows B's reply live",
        &format!(
            "return [...document.querySelectorAll('#messages li.msg.in .text')].some(t => t.textContent === {})",
            json!(reply)
        ),
    )
    .await;
    until(
        &cb,
        "B sees its reply read (A's conversation is open)",
        "return [...document.querySelectorAll('#messages li.msg.out')].some(m => m.dataset.state === 'read')",
    )
    .await;
    screenshot(&ca, "a.png").await;
    // Search in A's history: only the matching message stays, marked.
    ca.find(Locator::Id("search"))
        .await
        .expect("the search field")
        .send_keys("through the BROWSER")
        .await
        .expect("type a search");
    until(
        &ca,
        "the search leaves the one matching message",
        "const m = document.querySelectorAll('#messages li.msg'); \
         return m.length === 1 && m[0].querySelector('mark')?.textContent === 'through the browser'",
    )
    .await;
    js(
        &ca,
        "const s = document.getElementById('search'); s.value = ''; s.dispatchEvent(new Event('input')); return 1",
    )
    .await;
    ca.find(Locator::Id("me-btn"))
        .await
        .expect("the My ID button")
        .click()
        .await
        .expect("open My ID");
    until(
        &ca,
        "the QR code of A's ID is drawn",
        "const q = document.getElementById('my-qr'); return q.complete && q.naturalWidth > 0",
    )
    .await;
    assert_eq!(
        js(&ca, "return document.getElementById('my-id').textContent").await,
        json!(ida)
    );
    screenshot(&ca, "a-my-id.png").await;
    js(
        &ca,
        "document.getElementById('me-dialog').close(); return 1",
    )
    .await;
    screenshot(&cb, "b.png").await;
    cb.set_window_size(360, 740).await.expect("narrow window");
    screenshot(&cb, "b-360.png").await;
    let sideways = js(
        &cb,
        "return document.documentElement.scrollWidth <= window.innerWidth",
    )
    .await;
    assert_eq!(sideways, json!(true), "no sideways scrolling at 360 px");
    // Keyboard: Esc in the input line goes back to the list, with the
    // conversation's row focused; `/` then jumps to the filter.
    cb.find(Locator::Id("text"))
        .await
        .expect("B's input line")
        .send_keys(&char::from(fantoccini::key::Key::Escape).to_string())
        .await
        .expect("Esc");
    until(
        &cb,
        "Esc closed the conversation and focused its row",
        &format!(
            "return document.getElementById('conv').hidden && \
             document.activeElement?.closest('li.buddy')?.dataset.id === '{ida}'"
        ),
    )
    .await;
    screenshot(&cb, "b-360-list.png").await;
    cb.find(Locator::Css("li.buddy button"))
        .await
        .expect("a row")
        .send_keys("/")
        .await
        .expect("/");
    until(
        &cb,
        "/ focused the filter",
        "return document.activeElement?.id === 'filter'",
    )
    .await;

    // A message while A's tab is hidden: a desktop notification (the
    // Notification API, replaced by a recorder), and no read receipt until
    // the tab is shown again.
    js(
        &ca,
        "window.notes = []; \
         window.Notification = class { constructor(title, o) { notes.push([title, o.body]); } \
           static get permission() { return 'granted'; } }; \
         Object.defineProperty(document, 'hidden', { configurable: true, get: () => true }); \
         return 1",
    )
    .await;
    let sent = b.rows(&["send", &ida, "are you there?"]);
    let pinged = sent[0]["id"].as_str().expect("an id").to_string();
    until(
        &ca,
        "a desktop notification for B's message",
        "return window.notes.length === 1 && notes[0][0] === 'Bob' && notes[0][1] === 'are you there?'",
    )
    .await;
    let state_b = |b: &Daemon| {
        b.rows(&["log", &ida])
            .iter()
            .find(|m| m["id"] == json!(pinged))
            .map(|m| m["state"].as_str().unwrap_or_default().to_string())
    };
    let at_a: Vec<_> = a
        .rows(&["log", &idb])
        .into_iter()
        .filter(|m| m["id"] == json!(pinged))
        .collect();
    assert_eq!(at_a[0]["state"], json!("unread"), "not read while hidden");
    js(
        &ca,
        "delete document.hidden; document.dispatchEvent(new Event('visibilitychange')); return 1",
    )
    .await;
    eventually("B's message is read once A's tab is shown", || async {
        (state_b(&b).as_deref() == Some("read")).then_some(())
    })
    .await;

    // The guard. The session cookie of A's browser, and a control request
    // with everything right, which the daemon takes.
    let port = base_a.rsplit(':').next().expect("a port").to_string();
    let cookie = ca
        .get_named_cookie(&format!("roost_session_{port}"))
        .await
        .expect("A's browser holds the session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    let cookie = format!("Cookie: {}={}\r\n", cookie.name(), cookie.value());
    let addr = base_a.trim_start_matches("http://").to_string();
    let send = |host: &str, origin: Option<&str>, cookie: &str, text: &str| {
        let origin = origin
            .map(|o| format!("Origin: {o}\r\n"))
            .unwrap_or_default();
        http(
            &addr,
            &format!(
                "POST /api/v1/send HTTP/1.1\r\nHost: {host}\r\n{origin}{cookie}Content-Type: application/json\r\n"
            ),
            &json!({"to": idb, "text": text}).to_string(),
        )
    };
    let refused = [
        (
            "no cookie",
            send(&addr, Some(&base_a), "", "sentinel: no cookie"),
            401,
        ),
        (
            "foreign Host",
            // DNS rebinding: a page of evil.example, whose name now
            // resolves to 127.0.0.1, names itself as Host and Origin.
            send(
                &format!("evil.example:{port}"),
                Some(&format!("http://evil.example:{port}")),
                &cookie,
                "sentinel: foreign host",
            ),
            403,
        ),
        (
            "foreign Origin",
            send(
                &addr,
                Some("http://evil.example"),
                &cookie,
                "sentinel: foreign origin",
            ),
            403,
        ),
        (
            "cookie without Origin",
            send(&addr, None, &cookie, "sentinel: no origin"),
            403,
        ),
    ];
    let (read_status, read_body) = http(
        &addr,
        &format!("GET /api/v1/log/{idb} HTTP/1.1\r\nHost: rebound.example:{port}\r\n{cookie}"),
        "",
    );
    let control = send(&addr, Some(&base_a), &cookie, "control: all checks passed");
    assert_eq!(
        control.0, 200,
        "the control request is taken: {}",
        control.1
    );
    for (what, (status, body), want) in &refused {
        assert_eq!(status, want, "{what}: {body}");
    }
    assert_eq!(read_status, 403, "a read with a foreign Host: {read_body}");
    assert!(
        !read_body.contains(text),
        "nothing of the log leaked: {read_body}"
    );
    let texts = log_texts(&a, &b);
    assert!(
        texts.iter().any(|t| t == "control: all checks passed"),
        "{texts:?}"
    );
    let sentinels: Vec<_> = texts.iter().filter(|t| t.starts_with("sentinel")).collect();
    assert!(
        sentinels.is_empty(),
        "refused requests sent nothing: {sentinels:?}"
    );

    // B goes away: A's page shows it without a reload.
    b.kill();
    until(
        &ca,
        "A's page shows B offline",
        &row(&idb, "?.dataset.status === 'offline'"),
    )
    .await;
    assert_eq!(
        js(&ca, "return window.stayed === true").await,
        json!(true),
        "no reload"
    );
    screenshot(&ca, "a-after-b-left.png").await;

    // Hide and block from the conversation's header: the markers show.
    for (button, mark) in [("hide-btn", "hidden"), ("block-btn", "blocked")] {
        ca.find(Locator::Id(button))
            .await
            .expect("the button")
            .click()
            .await
            .expect("click");
        until(
            &ca,
            &format!("B's row is marked {mark}"),
            &row(
                &idb,
                &format!("?.querySelector('.mark[data-mark=\"{mark}\"]')"),
            ),
        )
        .await;
    }
    let marks = a.rows(&["buddy", "list"]);
    assert_eq!(marks[0]["hidden"], json!(true), "{marks:?}");
    assert_eq!(marks[0]["blocked"], json!(true), "{marks:?}");

    // A buddy request arrives live and is accepted from the page.
    let c = Daemon::start(Some(&a.addr().await)).await;
    let idc = c.id.to_string();
    c.rows(&["buddy", "add", &ida]);
    until(
        &ca,
        "A's page shows C's buddy request",
        &format!("return !document.getElementById('requests').hidden && document.querySelector('li.request[data-id=\"{idc}\"]')"),
    )
    .await;
    screenshot(&ca, "a-request.png").await;
    ca.find(Locator::Css(&format!(
        "li.request[data-id=\"{idc}\"] button.accept"
    )))
    .await
    .expect("the Accept button")
    .click()
    .await
    .expect("accept");
    until(
        &ca,
        "C is on A's buddy list and the request is gone",
        &format!("return document.getElementById('requests').hidden && document.querySelector('li.buddy[data-id=\"{idc}\"]')"),
    )
    .await;
    assert!(
        a.rows(&["buddy", "list"])
            .iter()
            .any(|r| r["id"] == json!(idc)),
        "the daemon has C as a buddy"
    );

    let _ = ca.close().await;
    let _ = cb.close().await;
}

/// `roost open` hands the link to `$BROWSER` without printing the token,
/// and prints the link when no browser can be started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roost_open_starts_the_browser_or_prints_the_link() {
    use std::os::unix::fs::PermissionsExt;
    let a = Daemon::start(None).await;
    let tools = tempfile::tempdir().expect("temp dir");
    let opened = tools.path().join("opened");
    let browser = tools.path().join("browser");
    std::fs::write(
        &browser,
        format!("#!/bin/sh\necho \"$1\" > {}\n", opened.display()),
    )
    .expect("write the fake browser");
    std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let run = |browser: &str| {
        Command::new(env!("CARGO_BIN_EXE_roost"))
            .arg("--data-dir")
            .arg(a.dir.path())
            .arg("open")
            .env_remove("ROOST_HOME")
            .env("BROWSER", browser)
            .env("PATH", tools.path())
            .output()
            .expect("run roost open")
    };

    let out = run(&browser.display().to_string());
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    // The browser gets a page in the data dir, not the link: its command
    // line is readable by every local user.
    let argv = eventually("the browser was started", || async {
        std::fs::read_to_string(&opened)
            .ok()
            .filter(|l| l.ends_with('\n'))
    })
    .await;
    let page_path = std::path::PathBuf::from(argv.trim());
    assert_eq!(page_path, a.dir.path().join("open.html"), "{argv}");
    let mode = std::fs::metadata(&page_path)
        .expect("the page")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let page = std::fs::read_to_string(&page_path).expect("read the page");
    let start = page.find("url=").expect("a refresh") + 4;
    let link = &page[start..start + page[start..].find('"').expect("the link ends")];
    assert!(
        link.starts_with("http://127.0.0.1:") && link.contains("/login#"),
        "{page}"
    );
    assert!(page.contains(&format!("<a href=\"{link}\">")), "{page}");
    let token = link.rsplit('#').next().expect("a token").to_string();
    assert_eq!(token.len(), 64, "{link}");
    assert!(!argv.contains(&token), "the token is not in argv: {argv}");
    assert!(!said.contains(&token), "the token is not printed: {said}");
    // The link in the page is a live one: it logs in.
    let base = &link[..link.find("/login#").expect("a login link")];
    let host = base.trim_start_matches("http://");
    let (status, body) = http(
        host,
        &format!(
            "POST /login HTTP/1.1\r\nHost: {host}\r\nOrigin: {base}\r\nContent-Type: application/json\r\n"
        ),
        &json!({ "token": token }).to_string(),
    );
    assert!(
        (200..300).contains(&status),
        "the page's link logs in: {status} {body}"
    );

    // No $BROWSER that starts, no xdg-open on PATH: the link is printed.
    let out = run("/nonexistent/browser");
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.contains("No browser could be started"), "{said}");
    assert!(
        said.lines()
            .any(|l| l.starts_with("http://127.0.0.1:") && l.contains("/login#")),
        "{said}"
    );
}
