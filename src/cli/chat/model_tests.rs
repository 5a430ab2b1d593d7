use super::*;

pub(crate) const ALICE: &str = "12D3KooWAlice";
pub(crate) const BOB: &str = "12D3KooWBob";

pub(crate) fn buddy(id: &str, name: &str, status: &str, note: Option<&str>) -> BuddyRow {
    BuddyRow {
        id: id.into(),
        name: name.into(),
        status: status.into(),
        note: note.map(str::to_string),
        activity: None,
        location: None,
        until: None,
        hidden: false,
        blocked: false,
    }
}

pub(crate) fn msg(
    id: &str,
    peer: &str,
    out: bool,
    state: &str,
    at: u64,
    text: &str,
) -> MessageView {
    MessageView {
        id: id.into(),
        direction: if out { "out" } else { "in" }.into(),
        state: state.into(),
        peer: peer.into(),
        from: if out { "me".into() } else { peer.into() },
        from_name: None,
        sent_at: at,
        content_type: "text/plain".into(),
        subject: None,
        text: text.into(),
        base64: data_encoding::BASE64.encode(text.as_bytes()),
        size: text.len(),
        request: false,
        file: None,
    }
}

/// Alice (selected, one unread) and Bob (two unread), snapshot applied.
pub(crate) fn two_buddies() -> (App, Vec<Effect>) {
    let mut app = App::default();
    let fx = app.handle(Input::Snapshot {
        buddies: vec![
            buddy(BOB, "bob", "away", Some("lunch")),
            buddy(ALICE, "alice", "online", None),
        ],
        inbox: vec![
            msg("a1", ALICE, false, "unread", 1, "hi"),
            msg("b1", BOB, false, "unread", 2, "yo"),
            msg("b2", BOB, false, "unread", 3, "there?"),
            msg("b0", BOB, false, "read", 0, "old"),
        ],
        files: Vec::new(),
    });
    (app, fx)
}

fn key(app: &mut App, k: Key) -> Vec<Effect> {
    app.handle(Input::Key(k))
}

fn type_text(app: &mut App, s: &str) {
    for c in s.chars() {
        assert!(key(app, Key::Char(c)).is_empty());
    }
}

fn peer(id: &str) -> ConvId {
    ConvId::Peer(id.into())
}

#[test]
fn the_snapshot_lists_buddies_by_name_counts_unread_and_opens_the_first() {
    let (app, fx) = two_buddies();
    let titles: Vec<&str> = app.convs.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(titles, ["alice", "bob"]);
    assert_eq!(app.selected, 0);
    // Opening alice fetches her history and reads her unread message.
    assert_eq!(
        fx,
        [Effect::LoadLog(peer(ALICE)), Effect::MarkRead(peer(ALICE))]
    );
    assert_eq!(app.convs[0].unread, 0);
    assert_eq!(app.convs[1].unread, 2, "only unread messages count");
    assert_eq!(
        app.convs[1].presence,
        Some(Presence {
            status: "away".into(),
            note: Some("lunch".into())
        })
    );
}

#[test]
fn switching_opens_the_next_conversation_and_marks_it_read_once() {
    let (mut app, _) = two_buddies();
    assert_eq!(
        key(&mut app, Key::Next),
        [Effect::LoadLog(peer(BOB)), Effect::MarkRead(peer(BOB))]
    );
    assert_eq!((app.selected, app.convs[1].unread), (1, 0));
    app.handle(Input::Log(
        peer(BOB),
        vec![msg("b1", BOB, false, "read", 2, "yo")],
    ));
    // Round to alice, and back to bob: nothing unread, only the history
    // fetched again (it may have grown from elsewhere).
    assert_eq!(key(&mut app, Key::Next), [Effect::LoadLog(peer(ALICE))]);
    assert_eq!(app.selected, 0);
    assert_eq!(key(&mut app, Key::Prev), [Effect::LoadLog(peer(BOB))]);
    assert_eq!(app.selected, 1);
}

#[test]
fn enter_sends_the_trimmed_input_to_the_open_conversation() {
    let (mut app, _) = two_buddies();
    type_text(&mut app, "  hello bob ");
    assert_eq!(
        key(&mut app, Key::Enter),
        [Effect::Send {
            to: peer(ALICE),
            text: "hello bob".into()
        }]
    );
    assert_eq!(app.input, "");
    // Nothing to send: nothing happens.
    type_text(&mut app, "   ");
    assert_eq!(key(&mut app, Key::Enter), []);
    key(&mut app, Key::Backspace);
    assert_eq!(app.input, "  ");
    // With no conversation at all, the input stays.
    let mut empty = App::default();
    type_text(&mut empty, "x");
    assert_eq!(key(&mut empty, Key::Enter), []);
    assert_eq!(empty.input, "x");
}

#[test]
fn quit_keys_quit_and_other_keys_map_as_documented() {
    use ratatui::crossterm::event::{KeyCode as C, KeyEvent, KeyEventKind, KeyModifiers as M};
    let k = |code, m| Key::from_event(KeyEvent::new(code, m));
    assert_eq!(k(C::Esc, M::NONE), Some(Key::Quit));
    assert_eq!(k(C::Char('c'), M::CONTROL), Some(Key::Quit));
    assert_eq!(k(C::Char('c'), M::NONE), Some(Key::Char('c')));
    assert_eq!(k(C::Char('C'), M::SHIFT), Some(Key::Char('C')));
    assert_eq!(k(C::Char('x'), M::CONTROL), None);
    assert_eq!(k(C::Tab, M::NONE), Some(Key::Next));
    assert_eq!(k(C::Down, M::NONE), Some(Key::Next));
    assert_eq!(k(C::BackTab, M::SHIFT), Some(Key::Prev));
    assert_eq!(k(C::Up, M::NONE), Some(Key::Prev));
    assert_eq!(k(C::PageUp, M::NONE), Some(Key::PageUp));
    assert_eq!(k(C::PageDown, M::NONE), Some(Key::PageDown));
    let mut release = KeyEvent::new(C::Char('a'), M::NONE);
    release.kind = KeyEventKind::Release;
    assert_eq!(Key::from_event(release), None);
    let (mut app, _) = two_buddies();
    assert_eq!(key(&mut app, Key::Quit), [Effect::Quit]);
}

#[test]
fn the_input_line_is_bounded() {
    let mut app = App::default();
    for _ in 0..MAX_INPUT + 10 {
        key(&mut app, Key::Char('é'));
    }
    assert_eq!(app.input.chars().count(), MAX_INPUT);
}

#[test]
fn a_message_in_the_open_conversation_is_read_elsewhere_unread() {
    let (mut app, _) = two_buddies();
    let fx = app.handle(Input::Event(EventView::Message(msg(
        "a2", ALICE, false, "unread", 5, "new",
    ))));
    assert_eq!(fx, [Effect::MarkRead(peer(ALICE))]);
    assert_eq!(app.convs[0].unread, 0);
    assert_eq!(
        app.convs[0].lines.last().map(|l| l.text.as_str()),
        Some("new")
    );
    let fx = app.handle(Input::Event(EventView::Message(msg(
        "b3", BOB, false, "unread", 6, "psst",
    ))));
    assert_eq!(fx, []);
    assert_eq!(app.convs[1].unread, 3);
    // The same message again (a replay of the stream) counts once.
    app.handle(Input::Event(EventView::Message(msg(
        "b3", BOB, false, "unread", 6, "psst",
    ))));
    assert_eq!(app.convs[1].unread, 3);
    // A stranger who writes gets a conversation of its own, unread.
    app.handle(Input::Event(EventView::Message(msg(
        "s1",
        "12D3KooWStrangerXYZ",
        false,
        "unread",
        7,
        "hey",
    ))));
    let s = app.convs.last().unwrap();
    assert_eq!(
        (s.title.as_str(), s.unread, s.presence.as_ref()),
        ("12D3KooWStra", 1, None)
    );
}

#[test]
fn states_only_move_forward_even_when_an_event_overtakes_its_message() {
    let (mut app, _) = two_buddies();
    // `delivered` arrives before the daemon's answer to our send.
    app.handle(Input::Event(EventView::State {
        id: "m1".into(),
        peer: ALICE.into(),
        state: "delivered".into(),
    }));
    app.handle(Input::Sent {
        to: peer(ALICE),
        id: "m1".into(),
        text: "hi".into(),
        sent_at: 9,
    });
    let line = |app: &App| {
        app.convs[0]
            .lines
            .iter()
            .find(|l| l.id == "m1")
            .cloned()
            .unwrap()
    };
    assert_eq!(line(&app).state, "delivered");
    assert!(line(&app).out);
    app.handle(Input::Event(EventView::State {
        id: "m1".into(),
        peer: ALICE.into(),
        state: "read".into(),
    }));
    assert_eq!(line(&app).state, "read");
    // A history fetched before the receipt does not move it back.
    app.handle(Input::Log(
        peer(ALICE),
        vec![msg("m1", ALICE, true, "stored", 9, "hi")],
    ));
    assert_eq!(line(&app).state, "read");
    assert_eq!(
        app.convs[0].lines.iter().filter(|l| l.id == "m1").count(),
        1
    );
}

#[test]
fn a_history_merges_with_what_arrived_while_it_was_fetched() {
    let (mut app, _) = two_buddies();
    app.handle(Input::Event(EventView::Message(msg(
        "a3", ALICE, false, "unread", 30, "live",
    ))));
    app.handle(Input::Log(
        peer(ALICE),
        vec![
            msg("a1", ALICE, false, "read", 10, "hi"),
            msg("m", ALICE, true, "read", 20, "yo"),
        ],
    ));
    let texts: Vec<&str> = app.convs[0].lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["hi", "yo", "live"]);
}

#[test]
fn presence_and_requests_update_live() {
    let (mut app, _) = two_buddies();
    app.handle(Input::Event(EventView::Presence {
        id: BOB.into(),
        status: "offline".into(),
        note: None,
    }));
    assert_eq!(
        app.convs[1].presence.as_ref().map(|p| p.status.as_str()),
        Some("offline")
    );
    app.handle(Input::Event(EventView::BuddyRequest {
        id: "12D3KooWNew".into(),
    }));
    assert!(
        app.notice
            .as_deref()
            .unwrap()
            .contains("roost buddy add 12D3KooWNew")
    );
    app.handle(Input::Error("the daemon went away".into()));
    assert_eq!(app.notice.as_deref(), Some("the daemon went away"));
}

#[test]
fn paging_scrolls_within_the_history_and_new_lines_keep_the_view() {
    let (mut app, _) = two_buddies();
    let log: Vec<MessageView> = (0..25)
        .map(|i| msg(&format!("x{i:02}"), ALICE, false, "read", i, "x"))
        .collect();
    app.handle(Input::Log(peer(ALICE), log));
    key(&mut app, Key::PageUp);
    key(&mut app, Key::PageUp);
    key(&mut app, Key::PageUp);
    assert_eq!(app.scroll, 25, "no further than the history");
    key(&mut app, Key::PageDown);
    assert_eq!(app.scroll, 15);
    app.handle(Input::Event(EventView::Message(msg(
        "y", ALICE, false, "unread", 99, "y",
    ))));
    assert_eq!(app.scroll, 16, "the lines being read stay in view");
    // Sending returns to the newest.
    type_text(&mut app, "z");
    key(&mut app, Key::Enter);
    assert_eq!(app.scroll, 0);
}

/// A file offer from `peer` (`out`: ours to it) of `name`, `size` bytes.
fn offer(id: &str, peer: &str, out: bool, at: u64, file: &str, size: u64) -> MessageView {
    let mut m = msg(id, peer, out, if out { "queued" } else { "unread" }, at, "");
    m.content_type = roost::wire::files::OFFER_TYPE.into();
    m.text = String::new();
    m.file = Some(Box::new(OfferedFile {
        id: file.into(),
        name: "report.pdf".into(),
        size,
        mime: "application/pdf".into(),
    }));
    m
}

/// The daemon's row of incoming file `id` (`report.pdf`, `size` bytes,
/// all of them here) from `peer`, in `state`.
fn file_row(id: &str, peer: &str, size: u64, state: &str) -> FileRow {
    FileRow {
        id: id.into(),
        name: "report.pdf".into(),
        size,
        done: size,
        state: state.into(),
        peer: peer.into(),
        direction: "in".into(),
        mime: "application/pdf".into(),
        blake3: String::new(),
        path: None,
        sources: 1,
        dropped: 0,
        served: 0,
        error: None,
    }
}

fn part(id: &str, peer: &str, at: u64) -> MessageView {
    let mut m = msg(id, peer, false, "unread", at, "");
    m.content_type = PART_TYPE.into();
    m
}

fn progress(app: &mut App, id: &str, done: u64, size: u64, state: &str) {
    app.handle(Input::Event(EventView::FileProgress {
        id: id.into(),
        done,
        size,
        state: state.into(),
    }));
}

fn texts(app: &App, who: &str) -> Vec<String> {
    let i = app
        .convs
        .iter()
        .position(|c| c.id == peer(who))
        .expect("the conversation");
    app.convs[i].lines.iter().map(|l| l.text.clone()).collect()
}

#[test]
fn an_offer_is_a_readable_line_that_follows_its_transfer_and_parts_have_none() {
    let (mut app, _) = two_buddies();
    app.handle(Input::Event(EventView::Message(offer(
        "o1",
        ALICE,
        false,
        10,
        "f1",
        5 * 1024 * 1024,
    ))));
    app.handle(Input::Event(EventView::Message(part("p1", ALICE, 11))));
    assert_eq!(
        texts(&app, ALICE),
        vec!["📎 report.pdf · 5.0 MiB · offered".to_string()]
    );
    progress(&mut app, "f1", 2 * 1024 * 1024, 5 << 20, "downloading");
    assert_eq!(
        texts(&app, ALICE),
        vec!["📎 report.pdf · 5.0 MiB · downloading 40 %".to_string()]
    );
    progress(&mut app, "f1", 5 * 1024 * 1024, 5 << 20, "complete");
    assert_eq!(
        texts(&app, ALICE),
        vec!["📎 report.pdf · 5.0 MiB · complete".to_string()]
    );
    // A history fetched later has the same offer and its parts: one line.
    app.handle(Input::Log(
        peer(ALICE),
        vec![
            offer("o1", ALICE, false, 10, "f1", 5 << 20),
            part("p1", ALICE, 11),
        ],
    ));
    assert_eq!(texts(&app, ALICE).len(), 1);
}

#[test]
fn the_snapshot_gives_a_files_state_and_parts_are_not_unread() {
    let mut app = App::default();
    let mut seen = offer("o", BOB, false, 1, "f", 1500);
    seen.state = "read".into();
    app.handle(Input::Snapshot {
        buddies: vec![
            buddy(BOB, "bob", "online", None),
            buddy(ALICE, "alice", "online", None),
        ],
        inbox: vec![
            seen,
            part("p", BOB, 2),
            msg("a1", ALICE, false, "unread", 3, "hi"),
        ],
        files: vec![file_row("f", BOB, 1500, "complete")],
    });
    // Bob's conversation is not the open one, so nothing marked it read:
    // its unread part is simply not counted.
    let bob = app.convs.iter().position(|c| c.id == peer(BOB)).unwrap();
    assert_ne!(
        bob, app.selected,
        "bob's conversation must not be the open one"
    );
    assert_eq!(app.convs[bob].unread, 0, "a part counted as unread");
    app.open(bob);
    app.handle(Input::Log(
        peer(BOB),
        vec![offer("o", BOB, false, 1, "f", 1500)],
    ));
    assert_eq!(texts(&app, BOB), vec!["📎 report.pdf · 1.5 KiB · complete"]);
}

#[test]
fn our_message_sent_from_elsewhere_shows_once() {
    let (mut app, _) = two_buddies();
    let mine = msg("m1", BOB, true, "queued", 50, "sent by roost send");
    app.handle(Input::Event(EventView::MessageSent(mine.clone())));
    // Our own send's answer for the same message adds nothing.
    app.handle(Input::Sent {
        to: peer(BOB),
        id: "m1".into(),
        text: "sent by roost send".into(),
        sent_at: 50,
    });
    app.handle(Input::Event(EventView::MessageSent(mine)));
    let bob = texts(&app, BOB);
    assert_eq!(
        bob.iter().filter(|t| *t == "sent by roost send").count(),
        1,
        "{bob:?}"
    );
    assert_eq!(
        app.convs
            .iter()
            .find(|c| c.id == peer(BOB))
            .map(|c| c.unread),
        Some(2)
    );
}

/// Types `line` and presses Enter: the effects.
fn enter_line(app: &mut App, line: &str) -> Vec<Effect> {
    type_text(app, line);
    key(app, Key::Enter)
}

#[test]
fn get_asks_for_the_newest_offer_here_that_is_neither_here_nor_coming() {
    let (mut app, _) = two_buddies();
    let mine = offer("o3", ALICE, true, 30, "f3", 1 << 20);
    for m in [
        offer("o1", ALICE, false, 10, "f1", 1 << 20),
        offer("o2", ALICE, false, 20, "f2", 1 << 20),
    ] {
        app.handle(Input::Event(EventView::Message(m)));
    }
    app.handle(Input::Event(EventView::MessageSent(mine)));
    progress(&mut app, "f2", 0, 1 << 20, "downloading");
    // Ours (f3) is not ours to get, f2 is coming: f1.
    assert_eq!(enter_line(&mut app, "/get"), [Effect::GetFile("f1".into())]);
    assert_eq!(app.input, "", "the command is taken from the input");
    assert!(
        app.notice
            .as_deref()
            .is_some_and(|n| n.contains("getting report.pdf"))
    );
    // The daemon's answer updates the line at once.
    let mut row = file_row("f1", ALICE, 1 << 20, "waiting");
    row.done = 0;
    app.handle(Input::File(row.clone()));
    assert_eq!(
        texts(&app, ALICE)[0],
        "📎 report.pdf · 1.0 MiB · waiting 0 %"
    );
    // An answer that comes after the file completed does not undo it.
    progress(&mut app, "f1", 1 << 20, 1 << 20, "complete");
    app.handle(Input::File(row.clone()));
    assert_eq!(texts(&app, ALICE)[0], "📎 report.pdf · 1.0 MiB · complete");
    assert_eq!(enter_line(&mut app, "/get"), [], "nothing left to get");
    assert!(app.notice.as_deref().is_some_and(|n| n.contains("no file")));
    // A download that stopped can be asked for again.
    row.id = "f2".into();
    row.state = "paused".into();
    app.handle(Input::File(row));
    assert_eq!(enter_line(&mut app, "/get"), [Effect::GetFile("f2".into())]);
}

#[test]
fn a_line_starting_with_a_slash_is_a_command_and_two_slashes_send_one() {
    let (mut app, _) = two_buddies();
    assert_eq!(
        enter_line(&mut app, "//shrug"),
        [Effect::Send {
            to: peer(ALICE),
            text: "/shrug".into()
        }]
    );
    assert_eq!(
        enter_line(&mut app, "/shrug"),
        [],
        "an unknown command was sent"
    );
    assert_eq!(app.input, "/shrug", "kept, to be corrected");
    assert!(
        app.notice
            .as_deref()
            .is_some_and(|n| n.contains("unknown command /shrug"))
    );
    app.input.clear();
    assert_eq!(enter_line(&mut app, "/help"), []);
    assert_eq!(app.notice.as_deref(), Some(COMMANDS));
    assert_eq!(app.input, "");
}
