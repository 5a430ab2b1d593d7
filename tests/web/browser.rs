//! The browser side of tests/web.rs: a chromedriver process, headless
//! Chromium sessions, logging in through `roost open --print`, raw HTTP
//! requests for the guard's refusals, and screenshots.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use fantoccini::{Client, ClientBuilder};
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
