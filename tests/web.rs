//! The web app in a real headless Chromium (driven through chromedriver)
//! against two real daemons: logging in with `roost open`'s link, live
//! presence, a message typed in one page arriving live in the other and
//! turning `delivered` then `read`, a buddy going away, and the guard
//! refusing requests without the session, with a foreign Host or Origin.
//! Screenshots go to `target/test-output/web/`.
//!
//! Chromium and chromedriver must be installed (`apt-get install chromium
//! chromium-driver`; `.ci/run` does it): without them the test fails.

#[allow(dead_code)]
#[path = "web/browser.rs"]
mod browser;
mod common;

use std::process::Command;

use browser::{
    Driver, buddies, click, http, js, log_texts, login, row, screenshot, session_cookie,
    type_enter, until,
};
use common::{Daemon, eventually};
use fantoccini::{Client, Locator};
use serde_json::json;

/// A's page logs in (its link then refused a second time) and shows B's
/// presence live; B's page logs in and shows A's. Returns A's base URL.
async fn logins_and_presence(ca: &Client, cb: &Client, a: &Daemon, b: &Daemon) -> String {
    let (ida, idb) = (a.id.to_string(), b.id.to_string());
    let (base_a, spent) = login(ca, a).await;
    let host = base_a.trim_start_matches("http://");
    let (status, body) = http(
        host,
        &format!(
            "POST /login HTTP/1.1\r\nHost: {host}\r\nOrigin: {base_a}\r\nContent-Type: application/json\r\n"
        ),
        &json!({ "token": spent }).to_string(),
    );
    assert_eq!(status, 401, "a login link works once: {body}");

    // A's buddy list shows B with its live presence.
    until(
        ca,
        "A's page shows B busy",
        &row(&idb, "?.dataset.status === 'busy'"),
    )
    .await;
    b.rows(&["presence", "set", "online"]);
    until(
        ca,
        "A's page shows B online",
        &row(&idb, "?.dataset.status === 'online'"),
    )
    .await;
    login(cb, b).await;
    until(
        cb,
        "B's page shows A online, with A's note and location",
        &row(
            &ida,
            "?.dataset.status === 'online' && document.querySelector('.preview')?.textContent === 'writing the docs · @ Lyon'",
        ),
    )
    .await;
    base_a
}

/// A script true when the open conversation shows `text` in direction `dir`.
fn shows(dir: &str, text: &str) -> String {
    format!(
        "return [...document.querySelectorAll('#messages li.msg.{dir} .text')].some(t => t.textContent === {})",
        json!(text)
    )
}

/// A types a message: it appears live in B's page (preview, unread) and
/// turns `delivered` in A's. Returns the message's id.
async fn message_arrives_live(ca: &Client, cb: &Client, ida: &str, idb: &str) -> String {
    click(ca, &format!("li.buddy[data-id=\"{idb}\"] button")).await;
    type_enter(ca, "text", TEXT).await;
    let mid = until(
        ca,
        "the message is in A's conversation",
        "return document.querySelector('#messages li.msg.out')?.dataset.id",
    )
    .await;
    let mid = mid.as_str().expect("an id").to_string();
    until(
        cb,
        "B's page shows the message live, unread",
        &row(
            ida,
            &format!(
                "?.querySelector('.preview')?.textContent === {} && \
                 document.querySelector('li.buddy[data-id=\"{ida}\"] .unread')?.textContent === '1'",
                json!(TEXT)
            ),
        ),
    )
    .await;
    until(
        ca,
        "A sees the message delivered",
        &format!("{} === 'delivered'", state_of(&mid)),
    )
    .await;
    assert_eq!(
        js(cb, "return document.getElementById('conv').hidden").await,
        json!(true),
        "B has not opened the conversation yet"
    );
    mid
}

fn state_of(mid: &str) -> String {
    format!("return document.querySelector('#messages li.msg[data-id=\"{mid}\"]')?.dataset.state")
}

/// B opens the conversation: A sees its message read; B's reply arrives
/// live in A's open conversation and turns read there.
async fn read_and_reply(ca: &Client, cb: &Client, ida: &str, mid: &str) {
    click(cb, &format!("li.buddy[data-id=\"{ida}\"] button")).await;
    until(cb, "B's conversation shows the message", &shows("in", TEXT)).await;
    until(
        ca,
        "A sees the message read",
        &format!("{} === 'read'", state_of(mid)),
    )
    .await;
    let reply = "Got it, replying from my page";
    type_enter(cb, "text", reply).await;
    until(
        ca,
        "A's open conversation shows B's reply live",
        &shows("in", reply),
    )
    .await;
    until(
        cb,
        "B sees its reply read (A's conversation is open)",
        "return [...document.querySelectorAll('#messages li.msg.out')].some(m => m.dataset.state === 'read')",
    )
    .await;
    screenshot(ca, "a.png").await;
}

/// Search in A's history leaves the matching message, marked; My ID shows
/// A's ID and its QR code.
async fn search_and_my_id(ca: &Client, ida: &str) {
    ca.find(Locator::Id("search"))
        .await
        .expect("the search field")
        .send_keys("through the BROWSER")
        .await
        .expect("type a search");
    until(
        ca,
        "the search leaves the one matching message",
        "const m = document.querySelectorAll('#messages li.msg'); \
         return m.length === 1 && m[0].querySelector('mark')?.textContent === 'through the browser'",
    )
    .await;
    js(
        ca,
        "const s = document.getElementById('search'); s.value = ''; s.dispatchEvent(new Event('input')); return 1",
    )
    .await;
    click(ca, "#me-btn").await;
    until(
        ca,
        "the QR code of A's ID is drawn",
        "const q = document.getElementById('my-qr'); return q.complete && q.naturalWidth > 0",
    )
    .await;
    assert_eq!(
        js(ca, "return document.getElementById('my-id').textContent").await,
        json!(ida)
    );
    screenshot(ca, "a-my-id.png").await;
    js(ca, "document.getElementById('me-dialog').close(); return 1").await;
}

/// At 360 px nothing scrolls sideways; Esc goes back to the list with the
/// conversation's row focused, `/` then jumps to the filter.
async fn narrow_and_keyboard(cb: &Client, ida: &str) {
    screenshot(cb, "b.png").await;
    cb.set_window_size(360, 740).await.expect("narrow window");
    screenshot(cb, "b-360.png").await;
    let sideways = js(
        cb,
        "return document.documentElement.scrollWidth <= window.innerWidth",
    )
    .await;
    assert_eq!(sideways, json!(true), "no sideways scrolling at 360 px");
    cb.find(Locator::Id("text"))
        .await
        .expect("B's input line")
        .send_keys(&char::from(fantoccini::key::Key::Escape).to_string())
        .await
        .expect("Esc");
    until(
        cb,
        "Esc closed the conversation and focused its row",
        &format!(
            "return document.getElementById('conv').hidden && \
             document.activeElement?.closest('li.buddy')?.dataset.id === '{ida}'"
        ),
    )
    .await;
    screenshot(cb, "b-360-list.png").await;
    cb.find(Locator::Css("li.buddy button"))
        .await
        .expect("a row")
        .send_keys("/")
        .await
        .expect("/");
    until(
        cb,
        "/ focused the filter",
        "return document.activeElement?.id === 'filter'",
    )
    .await;
}

/// A message while A's tab is hidden: a desktop notification (the
/// Notification API, replaced by a recorder), and no read receipt until
/// the tab is shown again.
async fn hidden_tab_notifies(ca: &Client, a: &Daemon, b: &Daemon) {
    let (ida, idb) = (a.id.to_string(), b.id.to_string());
    js(
        ca,
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
        ca,
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
        ca,
        "delete document.hidden; document.dispatchEvent(new Event('visibilitychange')); return 1",
    )
    .await;
    eventually("B's message is read once A's tab is shown", || async {
        (state_b(b).as_deref() == Some("read")).then_some(())
    })
    .await;
}

/// `POST /api/v1/send` of `text` to `to` over raw HTTP with these `Host`,
/// `Origin` and cookie lines: the status and body.
fn post_send(
    addr: &str,
    host: &str,
    origin: Option<&str>,
    cookie: &str,
    to: &str,
    text: &str,
) -> (u16, String) {
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    http(
        addr,
        &format!(
            "POST /api/v1/send HTTP/1.1\r\nHost: {host}\r\n{origin}{cookie}Content-Type: application/json\r\n"
        ),
        &json!({"to": to, "text": text}).to_string(),
    )
}

/// The guard: requests without the cookie, with a foreign Host or Origin,
/// or with the cookie but no Origin are refused and send nothing; a
/// control request with everything right is taken.
async fn guard_refuses(ca: &Client, a: &Daemon, b: &Daemon, base_a: &str) {
    let idb = b.id.to_string();
    let port = base_a.rsplit(':').next().expect("a port").to_string();
    let cookie = session_cookie(ca, base_a).await;
    let addr = base_a.trim_start_matches("http://").to_string();
    let send = |host: &str, origin: Option<&str>, cookie: &str, text: &str| {
        post_send(&addr, host, origin, cookie, &idb, text)
    };
    // DNS rebinding: a page of evil.example, whose name now resolves to
    // 127.0.0.1, names itself as Host and Origin.
    let evil_host = format!("evil.example:{port}");
    let evil_origin = format!("http://evil.example:{port}");
    let refused = [
        (
            "no cookie",
            send(&addr, Some(base_a), "", "sentinel: no cookie"),
            401,
        ),
        (
            "foreign Host",
            send(
                &evil_host,
                Some(&evil_origin),
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
    let control = send(&addr, Some(base_a), &cookie, "control: all checks passed");
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
        !read_body.contains(TEXT),
        "nothing of the log leaked: {read_body}"
    );
    let texts = log_texts(a, b);
    assert!(
        texts.iter().any(|t| t == "control: all checks passed"),
        "{texts:?}"
    );
    let sentinels: Vec<_> = texts.iter().filter(|t| t.starts_with("sentinel")).collect();
    assert!(
        sentinels.is_empty(),
        "refused requests sent nothing: {sentinels:?}"
    );
}

/// B goes away: A's page shows it without a reload; then Hide me and
/// Block from the conversation's header show their markers.
async fn b_leaves_then_hide_and_block(ca: &Client, a: &Daemon, b: &mut Daemon) {
    let idb = b.id.to_string();
    b.kill();
    until(
        ca,
        "A's page shows B offline",
        &row(&idb, "?.dataset.status === 'offline'"),
    )
    .await;
    assert_eq!(
        js(ca, "return window.stayed === true").await,
        json!(true),
        "no reload"
    );
    screenshot(ca, "a-after-b-left.png").await;
    for (button, mark) in [("hide-btn", "hidden"), ("block-btn", "blocked")] {
        click(ca, &format!("#{button}")).await;
        until(
            ca,
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
}

/// A third node's buddy request arrives live and is accepted from the page.
async fn request_accepted(ca: &Client, a: &Daemon) {
    let ida = a.id.to_string();
    let c = Daemon::start(Some(&a.addr().await)).await;
    let idc = c.id.to_string();
    c.rows(&["buddy", "add", &ida]);
    until(
        ca,
        "A's page shows C's buddy request",
        &format!("return !document.getElementById('requests').hidden && document.querySelector('li.request[data-id=\"{idc}\"]')"),
    )
    .await;
    screenshot(ca, "a-request.png").await;
    click(ca, &format!("li.request[data-id=\"{idc}\"] button.accept")).await;
    until(
        ca,
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
}

/// The message A types in its page.
const TEXT: &str = "Hello Bob, this came through the browser";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_chat_live_through_two_daemons() {
    let driver = Driver::start().await;
    let (a, mut b) = buddies().await;
    let (ida, idb) = (a.id.to_string(), b.id.to_string());
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
    let base_a = logins_and_presence(&ca, &cb, &a, &b).await;
    let mid = message_arrives_live(&ca, &cb, &ida, &idb).await;
    read_and_reply(&ca, &cb, &ida, &mid).await;
    search_and_my_id(&ca, &ida).await;
    narrow_and_keyboard(&cb, &ida).await;
    hidden_tab_notifies(&ca, &a, &b).await;
    guard_refuses(&ca, &a, &b, &base_a).await;
    b_leaves_then_hide_and_block(&ca, &a, &mut b).await;
    request_accepted(&ca, &a).await;
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
