//! The browser side of tests/web.rs: a chromedriver process, headless
//! Chromium sessions, logging in through `roost open --print`, raw HTTP
//! requests for the guard's refusals, and screenshots.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::common::{Daemon, eventually, roost};

pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";
pub(crate) const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process, killed and reaped when the test ends.
pub(crate) struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    pub(crate) async fn start() -> Self {
        for (path, what) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromedriver")] {
            assert!(
                Path::new(path).exists(),
                "{what} is missing at {path}: the web app's browser tests need it \
                 (`apt-get install chromium chromium-driver`; .ci/run installs them)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Self { child, port };
        eventually("chromedriver listens", || async {
            TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
        })
        .await;
        driver
    }

    /// A new headless browser with its own profile (so its own cookies).
    pub(crate) async fn browser(&self, width: u32, height: u32) -> Client {
        let caps = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--hide-scrollbars",
                    "--force-device-scale-factor=1",
                    format!("--window-size={width},{height}"),
                ],
            }
        });
        let caps = caps.as_object().expect("an object").clone();
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a chromedriver session")
    }
}

/// Runs `script` in the page and returns its result.
pub(crate) async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.expect("script runs")
}

/// Waits until `script` returns a truthy value in the page.
pub(crate) async fn until(c: &Client, what: &str, script: &str) -> Value {
    eventually(what, || async {
        let v = js(c, script).await;
        let truthy = !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0));
        truthy.then_some(v)
    })
    .await
}

/// Logs `c` in through `roost open --print`'s link; returns the app's base
/// URL (`http://127.0.0.1:PORT`) and the spent login token.
pub(crate) async fn login(c: &Client, d: &Daemon) -> (String, String) {
    let out = roost(d.dir.path(), &["open", "--print"]);
    assert!(out.status.success(), "roost open --print: {out:?}");
    let url = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    let (base, token) = url.split_once("/login#").expect("a /login#<token> link");
    assert_eq!(token.len(), 64, "{url}");
    c.goto(&url).await.expect("open the login link");
    until(
        c,
        "the app is open and its event stream live",
        "return location.pathname === '/' && document.getElementById('conn')?.dataset.state === 'live'",
    )
    .await;
    // Set once; still there at the end proves nothing below reloaded the page.
    js(c, "window.stayed = true; return 1").await;
    (base.to_string(), token.to_string())
}

pub(crate) fn row(id: &str, tail: &str) -> String {
    format!("return document.querySelector('li.buddy[data-id=\"{id}\"]'){tail}")
}

/// One HTTP/1.1 request over a fresh TCP connection: the status and body.
pub(crate) fn http(addr: &str, request_head: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the API");
    write!(
        s,
        "{request_head}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read the answer");
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

pub(crate) fn output_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("test-output/web");
    std::fs::create_dir_all(&dir).expect("create the screenshot dir");
    dir
}

pub(crate) async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    let path = output_dir().join(name);
    std::fs::write(&path, png).expect("write the screenshot");
    eprintln!("screenshot: {}", path.display());
}

/// The texts in A's conversation with B, as the daemon has them.
pub(crate) fn log_texts(a: &Daemon, b: &Daemon) -> Vec<String> {
    a.rows(&["log", &b.id.to_string(), "--limit", "1000"])
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Two daemons that are buddies (A calls B "Bob", B calls A "Alice"), B
/// bootstrapped from A: what every two-page test starts from.
pub(crate) async fn buddies() -> (Daemon, Daemon) {
    let a = Daemon::start(None).await;
    let b = Daemon::start(Some(&a.addr().await)).await;
    a.befriend("Alice", &b, "Bob");
    (a, b)
}

/// A browser for each daemon, each logged in through its own link.
pub(crate) async fn two_pages(driver: &Driver, a: &Daemon, b: &Daemon) -> (Client, Client) {
    let ca = driver.browser(1100, 840).await;
    let cb = driver.browser(1100, 840).await;
    login(&ca, a).await;
    login(&cb, b).await;
    (ca, cb)
}

/// Types `text` into the element `id` and presses Enter.
pub(crate) async fn type_enter(c: &Client, id: &str, text: &str) {
    let input = c.find(Locator::Id(id)).await.expect("the input");
    input.send_keys(text).await.expect("type");
    input
        .send_keys(&char::from(fantoccini::key::Key::Enter).to_string())
        .await
        .expect("Enter");
}

/// Clicks the element `css` matches.
pub(crate) async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// The `Cookie:` header line of `c`'s session with the app at `base`.
pub(crate) async fn session_cookie(c: &Client, base: &str) -> String {
    let port = base.rsplit(':').next().expect("a port");
    let cookie = c
        .get_named_cookie(&format!("roost_session_{port}"))
        .await
        .expect("the browser holds the session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    format!("Cookie: {}={}\r\n", cookie.name(), cookie.value())
}

/// One request without a body over a fresh TCP connection: the status,
/// the header block and the body's exact bytes (an answer slower than the
/// test deadline fails the test).
pub(crate) fn http_bytes(addr: &str, request_head: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect to the API");
    s.set_read_timeout(Some(crate::common::DEADLINE))
        .expect("a read timeout");
    write!(s, "{request_head}Connection: close\r\n\r\n").expect("send");
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).expect("read the answer");
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&resp[..end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    (status, head, resp[end + 4..].to_vec())
}

/// Checks that neither page was reloaded since its login (the flag
/// [`login`] set is still there), then closes both browsers.
pub(crate) async fn not_reloaded_then_close(ca: Client, cb: Client) {
    for c in [&ca, &cb] {
        assert_eq!(
            js(c, "return window.stayed === true").await,
            json!(true),
            "nothing reloaded the page"
        );
    }
    let _ = ca.close().await;
    let _ = cb.close().await;
}
