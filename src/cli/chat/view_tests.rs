use ratatui::Terminal;
use ratatui::backend::TestBackend;
use roost::api::EventView;

use super::super::model::tests::{ALICE, msg, two_buddies};
use super::super::model::{ConvId, Input};
use super::*;

/// `app` drawn on a `w`×`h` test terminal, one string per row.
fn screen(app: &App, w: u16, h: u16) -> Vec<String> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| draw(f, app)).unwrap();
    let buf = t.backend().buffer().clone();
    (0..h)
        .map(|y| {
            (0..w)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
        })
        .collect()
}

fn has(screen: &[String], text: &str) -> bool {
    screen.iter().any(|row| row.contains(text))
}

#[test]
fn the_screen_shows_buddies_unread_markers_messages_and_states() {
    let (mut app, _) = two_buddies();
    app.handle(Input::Log(
        ConvId::Peer(ALICE.into()),
        vec![
            msg("a1", ALICE, false, "read", 3_600_000, "hi there"),
            msg("m1", ALICE, true, "delivered", 3_660_000, "hello alice"),
        ],
    ));
    let s = screen(&app, 80, 16);
    let all = s.join("\n");
    assert!(has(&s, "  alice online"), "{all}");
    assert!(
        has(&s, "* bob (2) away"),
        "bob has an unread marker and count:\n{all}"
    );
    assert!(has(&s, "    lunch"), "bob's note:\n{all}");
    assert!(has(&s, "01:00 < hi there"), "{all}");
    assert!(has(&s, "01:01 > hello alice [delivered]"), "{all}");
    assert!(has(&s, " to alice "), "{all}");
    assert!(has(&s, "Enter send"), "the help line:\n{all}");

    // A state changing live is redrawn.
    app.handle(Input::Event(EventView::State {
        id: "m1".into(),
        peer: ALICE.into(),
        state: "read".into(),
    }));
    assert!(has(&screen(&app, 80, 16), "01:01 > hello alice [read]"));
}

#[test]
fn escape_sequences_from_others_are_shown_not_obeyed() {
    let (mut app, _) = two_buddies();
    app.handle(Input::Event(EventView::Message(msg(
        "e",
        ALICE,
        false,
        "unread",
        0,
        "\u{1b}[2Jgotcha",
    ))));
    let s = screen(&app, 80, 12);
    assert!(has(&s, "\\u{1b}[2Jgotcha"), "{}", s.join("\n"));
}

#[test]
fn the_newest_rows_fit_the_pane_and_long_bodies_wrap() {
    let (mut app, _) = two_buddies();
    let log: Vec<_> = (0..30)
        .map(|i| {
            msg(
                &format!("x{i:02}"),
                ALICE,
                false,
                "read",
                0,
                &format!("line {i}"),
            )
        })
        .collect();
    app.handle(Input::Log(ConvId::Peer(ALICE.into()), log));
    let s = screen(&app, 60, 12);
    assert!(has(&s, "< line 29"), "{}", s.join("\n"));
    assert!(!has(&s, "< line 20"), "{}", s.join("\n"));
    app.scroll = 10;
    let s = screen(&app, 60, 12);
    assert!(
        has(&s, "< line 19") && !has(&s, "< line 29"),
        "{}",
        s.join("\n")
    );

    let conv = &mut app.convs[0];
    conv.lines.clear();
    conv.lines.push(super::super::model::Line {
        id: "long".into(),
        out: true,
        state: "queued".into(),
        sent_at: 0,
        text: "abcdefghij".repeat(3),
        file: None,
    });
    let rows: Vec<String> = rows(conv, 30).iter().map(|l| l.to_string()).collect();
    assert_eq!(
        rows,
        [
            "00:00 > abcdefghijabcdefghijab",
            "        cdefghij [queued]"
        ]
    );
    // No room left on the last row: the state gets a row of its own.
    conv.lines[0].text = "abcdefghij".repeat(2);
    let narrow: Vec<String> = super::rows(conv, 20)
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert_eq!(
        narrow,
        [
            "00:00 > abcdefghijab",
            "        cdefghij",
            "         [queued]"
        ]
    );
}

#[test]
fn wide_characters_take_two_columns_when_rows_are_cut() {
    let mut out = Vec::new();
    split_to_width("日本語のテキスト", 6, &mut out);
    assert_eq!(out, ["日本語", "のテキ", "スト"]);
    let mut out = Vec::new();
    split_to_width("", 6, &mut out);
    assert_eq!(out, [""], "an empty line is still a row");
    // The input line shows the end of what was typed.
    assert_eq!(tail_to_width("abc日本", 5), "c日本");
    assert_eq!(tail_to_width("abc日本", 4), "日本");
    assert_eq!(tail_to_width("ab", 5), "ab");
}
