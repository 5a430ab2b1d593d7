//! Groups in the web app, in a real headless Chromium against two real
//! daemons that are buddies: A makes a group in its page and invites B
//! picked from the buddy list; B's page shows the invitation live and
//! accepts it; A's message appears live in B's page (an unread count on the
//! group's row), B's reply appears live in A's open group. Screenshots go
//! to `target/test-output/web/`.
//!
//! Chromium and chromedriver must be installed (`apt-get install chromium
//! chromium-driver`; `.ci/run` does it): without them the test fails.

#[allow(dead_code)]
#[path = "web/browser.rs"]
mod browser;
mod common;

use browser::{
    Driver, buddies, click, js, not_reloaded_then_close, row, screenshot, two_pages, type_enter,
    until,
};
use fantoccini::{Client, Locator};
use serde_json::json;

/// A script true when the open group shows a message `text` (from `from`
/// as named, or mine when `from` is None).
fn shows(text: &str, from: Option<&str>) -> String {
    let who = match from {
        Some(name) => format!(
            "m.classList.contains('in') && m.querySelector('.from')?.textContent === {}",
            json!(name)
        ),
        None => "m.classList.contains('out')".to_string(),
    };
    format!(
        "return [...document.querySelectorAll('#gmessages li.gmsg')].some(m => \
         m.querySelector('.text')?.textContent === {} && {who})",
        json!(text)
    )
}

/// A makes a group in its page (it opens with its creation line) and
/// invites B picked from the buddy list. Returns the group's id.
async fn make_and_invite(ca: &Client, ida: &str, idb: &str) -> String {
    type_enter(ca, "new-group-name", "Weekend trip").await;
    let gid = until(
        ca,
        "A's page lists the new group and opens it",
        "const r = [...document.querySelectorAll('#group-list li.group')]\
           .find(li => li.querySelector('.name')?.textContent === 'Weekend trip'); \
         return r && !document.getElementById('gconv').hidden \
           && document.getElementById('gconv-name').textContent === 'Weekend trip' \
           && [...document.querySelectorAll('#gmessages li.sys')].some(s => s.textContent.includes('created the group')) \
           && r.dataset.id",
    )
    .await;
    let gid = gid.as_str().expect("a group id").to_string();
    assert_eq!(gid.len(), 64, "{gid}");
    click(ca, "#gmembers-btn").await;
    until(
        ca,
        "the members pane lists A as admin and offers B",
        &format!(
            "return document.querySelector('#gmember-list li.member[data-id=\"{ida}\"]')?.dataset.role === 'admin' \
             && [...document.querySelectorAll('#ginvite-pick option')].some(o => o.value === '{idb}')"
        ),
    )
    .await;
    ca.find(Locator::Id("ginvite-pick"))
        .await
        .expect("the buddy picker")
        .select_by_value(idb)
        .await
        .expect("pick B");
    click(ca, "#ginvite button[type=submit]").await;
    until(
        ca,
        "A's page says B is invited, lists B and shows the change",
        &format!(
            "return document.getElementById('ginvite-msg').textContent === 'invited Bob' \
             && document.querySelector('#gmember-list li.member[data-id=\"{idb}\"]')?.dataset.role === 'member' \
             && [...document.querySelectorAll('#gmessages li.sys')].some(s => s.textContent === 'added Bob' || s.textContent.startsWith('added Bob ·'))"
        ),
    )
    .await;
    gid
}

/// B's page shows the invitation live, from Alice; B accepts it.
async fn invitation_accepted(cb: &Client, gid: &str) {
    until(
        cb,
        "B's page shows the invitation live",
        &format!(
            "const i = document.querySelector('#ginvite-list li.ginvite[data-id=\"{gid}\"]'); \
             return i && !document.getElementById('group-invites').hidden \
               && i.querySelector('.name').textContent === 'Weekend trip' \
               && i.textContent.includes('from Alice')"
        ),
    )
    .await;
    screenshot(cb, "groups-b-invited.png").await;
    click(
        cb,
        &format!("#ginvite-list li.ginvite[data-id=\"{gid}\"] button.accept"),
    )
    .await;
    until(
        cb,
        "B's page lists the group, two members, the invitation gone",
        &format!(
            "return document.querySelector('#group-list li.group[data-id=\"{gid}\"] .status')?.textContent === '2 members' \
             && document.getElementById('group-invites').hidden"
        ),
    )
    .await;
}

/// A's group message counts live as unread on B's row, shows from Alice
/// when B opens the group; B's reply shows live in A's open group.
async fn messages_both_ways(ca: &Client, cb: &Client, gid: &str) {
    let text = "Train at 9, who brings the map?";
    type_enter(ca, "gtext", text).await;
    until(ca, "A's page shows its own message", &shows(text, None)).await;
    until(
        cb,
        "B's page counts A's message live as unread",
        &format!(
            "return document.querySelector('#group-list li.group[data-id=\"{gid}\"] .unread')?.textContent === '1'"
        ),
    )
    .await;
    click(
        cb,
        &format!("#group-list li.group[data-id=\"{gid}\"] button"),
    )
    .await;
    until(
        cb,
        "B's open group shows A's message from Alice, the count gone",
        &format!(
            "{} && !document.querySelector('#group-list li.group[data-id=\"{gid}\"] .unread')",
            shows(text, Some("Alice"))
        ),
    )
    .await;
    let reply = "I will, and the snacks";
    type_enter(cb, "gtext", reply).await;
    until(cb, "B's page shows its reply", &shows(reply, None)).await;
    until(
        ca,
        "A's open group shows B's reply live",
        &shows(reply, Some("Bob")),
    )
    .await;
}

/// No sideways scrolling at 360 px; Esc goes back to the lists with the
/// group's row focused.
async fn narrow_and_escape(cb: &Client, gid: &str) {
    cb.set_window_size(360, 740).await.expect("narrow window");
    screenshot(cb, "groups-b-360.png").await;
    assert_eq!(
        js(
            cb,
            "return document.documentElement.scrollWidth <= window.innerWidth"
        )
        .await,
        json!(true),
        "no sideways scrolling at 360 px"
    );
    cb.find(Locator::Id("gtext"))
        .await
        .expect("B's input line")
        .send_keys(&char::from(fantoccini::key::Key::Escape).to_string())
        .await
        .expect("Esc");
    until(
        cb,
        "Esc closed the group and focused its row",
        &format!(
            "return document.getElementById('gconv').hidden && \
             document.activeElement?.closest('li.group')?.dataset.id === '{gid}'"
        ),
    )
    .await;
    screenshot(cb, "groups-b-360-list.png").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_made_in_one_page_chats_live_with_the_other() {
    let driver = Driver::start().await;
    let (a, b) = buddies().await;
    let (ida, idb) = (a.id.to_string(), b.id.to_string());
    let (ca, cb) = two_pages(&driver, &a, &b).await;
    until(
        &ca,
        "A's page shows B online",
        &row(&idb, "?.dataset.status === 'online'"),
    )
    .await;
    let gid = make_and_invite(&ca, &ida, &idb).await;
    invitation_accepted(&cb, &gid).await;
    messages_both_ways(&ca, &cb, &gid).await;
    screenshot(&ca, "groups-a.png").await;
    screenshot(&cb, "groups-b.png").await;
    narrow_and_escape(&cb, &gid).await;
    not_reloaded_then_close(ca, cb).await;
}
