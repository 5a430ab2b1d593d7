//! Files in the web app, in a real headless Chromium against two real
//! daemons that are buddies: a text A sends with `roost send` appears live
//! in A's open page (`message_sent`); A offers B a file with `roost send
//! --file`; B's open page shows the offer as a readable line live, B
//! clicks *Get* and the line turns `complete`; the file served to B's
//! session (`GET /api/v1/files/{id}/content`) is byte-exact; the Files
//! pane lists the transfer; a file picked in A's page is sent (uploaded)
//! and reaches B byte-exact. Screenshots go to `target/test-output/web/`.
//!
//! Chromium and chromedriver must be installed (`apt-get install chromium
//! chromium-driver`; `.ci/run` does it): without them the test fails.

#[allow(dead_code)]
#[path = "web/browser.rs"]
mod browser;
mod common;

use browser::{
    Driver, buddies, click, http_bytes, js, not_reloaded_then_close, screenshot, session_cookie,
    two_pages, until,
};
use common::Daemon;
use fantoccini::{Client, Locator};
use serde_json::json;

/// Size of the offered file: above `inline_kib` (1 MiB), so it moves over
/// the file protocol, and above B's `auto_accept_mib` (1), so B must ask.
const SIZE: usize = 3 * 1024 * 1024 + 123;

/// Bytes no two runs share and no compressor shrinks: pseudo-random from
/// a seed taken from the clock.
fn random_bytes(n: usize) -> Vec<u8> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    common::random::bytes(n, seed)
}

/// B takes files of at most 1 MiB by itself: the test's file waits for
/// *Get*.
async fn ask_before_downloading(b: &mut Daemon) {
    b.restart_with_config("[files]\nauto_accept_mib = 1\n")
        .await;
}

/// Opens the conversation with `peer` in page `c`.
async fn open_conversation(c: &Client, peer: &str) {
    click(c, &format!("li.buddy[data-id=\"{peer}\"] button")).await;
    until(
        c,
        "the conversation is open",
        &format!("return !document.getElementById('conv').hidden && document.getElementById('messages').dataset.peer === '{peer}'"),
    )
    .await;
}

/// A script returning the text of the file line of `file` in the open
/// conversation, in `dir` (`in` or `out`).
fn file_line(file: &str, dir: &str) -> String {
    format!(
        "return document.querySelector('#messages li.msg.{dir} .file[data-file=\"{file}\"] .ftext')?.textContent"
    )
}

/// A `roost send` from A's command line shows in A's open page, once.
async fn own_cli_message_shows_live(ca: &Client, a: &Daemon) {
    let sent = a.rows(&["send", "Bob", "sent from A's command line"]);
    let id = sent[0]["id"].as_str().expect("an id").to_string();
    until(
        ca,
        "A's open page shows the message A's CLI sent",
        &format!(
            "const m = [...document.querySelectorAll('#messages li.msg.out')].filter(m => m.dataset.id === '{id}'); \
             return m.length === 1 && m[0].querySelector('.text').textContent === 'sent from A\\'s command line'"
        ),
    )
    .await;
}

/// `roost send Bob --file PATH` from A's command line; the file's id.
fn offer(a: &Daemon, path: &std::path::Path) -> String {
    let path = path.to_str().expect("a UTF-8 path");
    let sent = a.rows(&["send", "Bob", "--file", path]);
    let file = &sent[0]["file"]["id"];
    file.as_str().expect("a file id").to_string()
}

/// A offers the file: B's open page shows it live as a readable line, A's
/// own page too; returns the file id.
async fn offer_shows_live(ca: &Client, cb: &Client, a: &Daemon, path: &std::path::Path) -> String {
    let file = offer(a, path);
    let want = "holiday.bin · 3.0 MiB · offered";
    until(
        cb,
        "B's open page shows the offer line live",
        &format!("{} === {}", file_line(&file, "in"), json!(want)),
    )
    .await;
    until(
        ca,
        "A's open page shows its own offer line live",
        &format!("{} === {}", file_line(&file, "out"), json!(want)),
    )
    .await;
    file
}

/// A small file (it also rides as part messages) downloads by itself: B's
/// line follows it to `complete` live; its parts have no line of their
/// own, and no line of B's page is empty.
async fn small_file_completes_live(cb: &Client, a: &Daemon, dir: &std::path::Path) {
    let path = dir.join("note.txt");
    std::fs::write(&path, random_bytes(200 * 1024)).expect("write the small file");
    let file = offer(a, &path);
    until(
        cb,
        "B's line of the small file turns complete by itself",
        &format!(
            "{} === 'note.txt · 200.0 KiB · complete'",
            file_line(&file, "in")
        ),
    )
    .await;
    let lines = js(
        cb,
        "return [...document.querySelectorAll('#messages li.msg')]           .map(m => (m.querySelector('.text, .ftext')?.textContent || '').trim())",
    )
    .await;
    let lines: Vec<&str> = lines
        .as_array()
        .expect("a list")
        .iter()
        .map(|l| l.as_str().unwrap_or_default())
        .collect();
    assert_eq!(lines.len(), 3, "a text and two offers, no parts: {lines:?}");
    assert!(
        lines.iter().all(|l| !l.is_empty()),
        "no empty line: {lines:?}"
    );
}

/// B clicks *Get*: the line follows the download to `complete` and offers
/// *Save* through the content route.
async fn get_in_the_page(cb: &Client, file: &str) {
    until(
        cb,
        "B's line offers Get once B's page knows the transfer",
        &format!(
            "return document.querySelector('#messages .file[data-file=\"{file}\"] button.get')"
        ),
    )
    .await;
    click(
        cb,
        &format!("#messages .file[data-file=\"{file}\"] button.get"),
    )
    .await;
    until(
        cb,
        "B's line turns complete, with a Save link to the content",
        &format!(
            "const l = document.querySelector('#messages .file[data-file=\"{file}\"]'); \
             return l?.querySelector('.ftext')?.textContent === 'holiday.bin · 3.0 MiB · complete' \
               && l.querySelector('a.save')?.getAttribute('href') === '/api/v1/files/{file}/content'"
        ),
    )
    .await;
}

/// The bytes served to B's session are the file's.
async fn served_exactly(cb: &Client, b: &Daemon, file: &str, bytes: &[u8]) {
    let base = js(cb, "return location.origin").await;
    let base = base.as_str().expect("the origin").to_string();
    let addr = base.trim_start_matches("http://");
    let cookie = session_cookie(cb, &base).await;
    let (status, head, body) = http_bytes(
        addr,
        &format!("GET /api/v1/files/{file}/content HTTP/1.1\r\nHost: {addr}\r\n{cookie}"),
    );
    assert_eq!(status, 200, "{head}");
    let head = head.to_ascii_lowercase();
    for h in [
        "content-type: application/octet-stream",
        "content-disposition: attachment; filename=\"holiday.bin\"",
        "content-security-policy: sandbox",
        "x-content-type-options: nosniff",
    ] {
        assert!(head.contains(h), "{h} missing: {head}");
    }
    assert_eq!(body.len(), bytes.len(), "the whole file");
    assert_eq!(blake3::hash(&body), blake3::hash(bytes), "byte-exact");
    let rows = b.rows(&["files"]);
    let row = rows.iter().find(|r| r["id"] == json!(file));
    assert_eq!(
        row.map(|r| &r["state"]),
        Some(&json!("complete")),
        "{rows:?}"
    );
}

/// A's page sends a file picked in its file input (an upload): A's page
/// shows its offer line, B's daemon gets the same bytes and B's page
/// shows the line complete, live.
async fn upload_from_the_page(ca: &Client, cb: &Client, b: &Daemon, dir: &std::path::Path) {
    let path = dir.join("from-page.bin");
    let bytes = random_bytes(300 * 1024);
    std::fs::write(&path, &bytes).expect("write the file to upload");
    ca.find(Locator::Id("attach"))
        .await
        .expect("the file input")
        .send_keys(path.to_str().expect("a UTF-8 path"))
        .await
        .expect("pick the file");
    let line = "from-page.bin · 300.0 KiB";
    until(
        ca,
        "A's page shows the offer of the uploaded file",
        &format!(
            "return [...document.querySelectorAll('#messages li.msg.out .ftext')].some(t => t.textContent === '{line} · offered')"
        ),
    )
    .await;
    until(
        cb,
        "B's page shows the uploaded file complete",
        &format!(
            "return [...document.querySelectorAll('#messages li.msg.in .ftext')].some(t => t.textContent === '{line} · complete')"
        ),
    )
    .await;
    let rows = b.rows(&["files"]);
    let row = rows
        .iter()
        .find(|r| r["name"] == json!("from-page.bin"))
        .expect("B has the file");
    assert_eq!(row["state"], json!("complete"), "{row}");
    assert_eq!(
        row["blake3"],
        json!(blake3::hash(&bytes).to_hex().to_string()),
        "the bytes picked in A's page"
    );
}

/// An upload declared larger than the cap is refused at once: nothing is
/// written and nothing offered (the page's upload before it is still the
/// only one).
async fn oversize_upload_refused(ca: &Client, a: &Daemon) {
    let sent_dir = a.dir.path().join("uploads");
    let uploads = || std::fs::read_dir(&sent_dir).map_or(0, Iterator::count);
    assert_eq!(uploads(), 1, "the page's upload is kept");
    let offers = a.rows(&["files"]).len();
    let base = js(ca, "return location.origin").await;
    let base = base.as_str().expect("the origin").to_string();
    let addr = base.trim_start_matches("http://");
    let cookie = session_cookie(ca, &base).await;
    let (status, head, _) = http_bytes(
        addr,
        &format!(
            "POST /api/v1/files/upload?to=Bob&name=huge.bin HTTP/1.1\r\nHost: {addr}\r\n\
             Origin: {base}\r\n{cookie}Content-Length: {}\r\n",
            (2u64 << 30) + 1
        ),
    );
    assert_eq!(status, 413, "{head}");
    assert_eq!(uploads(), 1, "nothing written");
    assert_eq!(a.rows(&["files"]).len(), offers, "nothing offered");
}

/// The Files pane lists the transfer: received from Alice, complete.
async fn files_pane_lists_it(cb: &Client, file: &str) {
    click(cb, "#files-btn").await;
    until(
        cb,
        "B's Files pane lists the file, complete, from Alice",
        &format!(
            "const r = document.querySelector('#file-list li.frow[data-id=\"{file}\"]'); \
             return r && !document.getElementById('fconv').hidden && r.dataset.state === 'complete' \
               && r.dataset.direction === 'in' && r.querySelector('.name').textContent === 'holiday.bin' \
               && r.querySelector('.fstate').textContent === 'complete · 100 %' \
               && r.querySelector('.preview').textContent === 'from Alice' && r.querySelector('a.save')"
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_offered_shows_live_is_fetched_from_the_page_and_served_exact() {
    let driver = Driver::start().await;
    let (a, mut b) = buddies().await;
    ask_before_downloading(&mut b).await;
    let (ida, idb) = (a.id.to_string(), b.id.to_string());
    let (ca, cb) = two_pages(&driver, &a, &b).await;
    open_conversation(&ca, &idb).await;
    open_conversation(&cb, &ida).await;

    own_cli_message_shows_live(&ca, &a).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("holiday.bin");
    let bytes = random_bytes(SIZE);
    std::fs::write(&path, &bytes).expect("write the file");
    let file = offer_shows_live(&ca, &cb, &a, &path).await;
    screenshot(&cb, "files-b-offered.png").await;
    get_in_the_page(&cb, &file).await;
    screenshot(&cb, "files-b-complete.png").await;
    served_exactly(&cb, &b, &file, &bytes).await;
    small_file_completes_live(&cb, &a, dir.path()).await;
    upload_from_the_page(&ca, &cb, &b, dir.path()).await;
    oversize_upload_refused(&ca, &a).await;
    files_pane_lists_it(&cb, &file).await;
    screenshot(&cb, "files-b-pane.png").await;
    not_reloaded_then_close(ca, cb).await;
}
