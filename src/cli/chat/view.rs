//! Drawing the terminal chat: the conversations on the left, the open one
//! on the right, the input line and a help line below. Only the 16 basic
//! colours (any terminal, over SSH too) and no mouse. Everything from
//! other people goes through [`printable_line`], so a name, note or
//! message cannot carry escape sequences to the terminal.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph};
use roost::api::terminal::printable_line;

use super::model::{App, Conversation};

/// Width of the conversation list, in columns.
const LIST_WIDTH: u16 = 26;
/// What the keys do, on the bottom line.
pub(crate) const HELP: &str =
    "Enter send · Tab/↑↓ switch · PgUp/PgDn scroll · /get file · /help · Esc quit";

/// Draws the whole chat.
pub(crate) fn draw(frame: &mut Frame, app: &App) {
    let [main, input, help] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let [list, pane] =
        Layout::horizontal([Constraint::Length(LIST_WIDTH), Constraint::Min(10)]).areas(main);
    draw_list(frame, app, list);
    draw_pane(frame, app, pane);
    draw_input(frame, app, input);
    let help_line = match &app.notice {
        Some(n) => Line::from(vec![
            Span::styled(
                printable_line(n).into_owned(),
                Style::new().fg(Color::Yellow),
            ),
            Span::raw("  "),
            Span::styled(HELP, Style::new().fg(Color::DarkGray)),
        ]),
        None => Line::styled(HELP, Style::new().fg(Color::DarkGray)),
    };
    frame.render_widget(Paragraph::new(help_line), help);
}

/// The colour of a presence status.
fn status_colour(status: &str) -> Color {
    match status {
        "online" => Color::Green,
        "away" => Color::Yellow,
        "busy" => Color::Red,
        _ => Color::DarkGray,
    }
}

/// One conversation in the list: an unread marker and count, the name and
/// the presence, the note below.
fn list_item(c: &Conversation) -> ListItem<'static> {
    let mut first = vec![Span::styled(
        if c.unread > 0 { "* " } else { "  " },
        Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
    )];
    let name_style = if c.unread > 0 {
        Style::new().add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    };
    first.push(Span::styled(
        printable_line(&c.title).into_owned(),
        name_style,
    ));
    if c.unread > 0 {
        first.push(Span::styled(
            format!(" ({})", c.unread),
            Style::new().fg(Color::Yellow),
        ));
    }
    let mut lines = Vec::new();
    match &c.presence {
        Some(p) => {
            first.push(Span::styled(
                format!(" {}", p.status),
                Style::new().fg(status_colour(&p.status)),
            ));
            lines.push(Line::from(first));
            if let Some(note) = p.note.as_deref().filter(|n| !n.is_empty()) {
                lines.push(Line::styled(
                    format!("    {}", printable_line(note)),
                    Style::new().fg(Color::DarkGray),
                ));
            }
        }
        None => {
            first.push(Span::styled(" request", Style::new().fg(Color::Magenta)));
            lines.push(Line::from(first));
        }
    }
    ListItem::new(lines)
}

fn draw_list(frame: &mut Frame, app: &App, area: Rect) {
    let items: Vec<ListItem> = app.convs.iter().map(list_item).collect();
    let list = List::new(items)
        .block(Block::new().borders(Borders::ALL).title(" conversations "))
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state =
        ListState::default().with_selected((!app.convs.is_empty()).then_some(app.selected));
    frame.render_stateful_widget(list, area, &mut state);
}

/// `ms` as `HH:MM` (UTC).
fn clock(ms: u64) -> String {
    let full = roost::clock::format_utc(ms); // "YYYY-MM-DD HH:MM UTC"
    full.get(11..16).unwrap_or("--:--").to_string()
}

/// The colour of one of our messages' states.
fn state_colour(state: &str) -> Color {
    match state {
        "read" => Color::Green,
        "delivered" => Color::Cyan,
        "failed" => Color::Red,
        _ => Color::DarkGray,
    }
}

/// The columns `s` takes on a terminal (a CJK character or an emoji two).
fn columns(s: &str) -> usize {
    Span::raw(s).width()
}

/// `s` cut into pieces of at most `width` columns (one row at least, even
/// for an empty `s`), appended to `out`.
fn split_to_width(s: &str, width: usize, out: &mut Vec<String>) {
    let mut row = String::new();
    let mut used = 0;
    for c in s.chars() {
        let mut buf = [0u8; 4];
        let w = columns(c.encode_utf8(&mut buf));
        if used + w > width && !row.is_empty() {
            out.push(std::mem::take(&mut row));
            used = 0;
        }
        row.push(c);
        used += w;
    }
    out.push(row);
}

/// The longest end of `s` that fits in `width` columns.
fn tail_to_width(s: &str, width: usize) -> &str {
    let mut used = 0;
    for (i, c) in s.char_indices().rev() {
        let mut buf = [0u8; 4];
        used += columns(c.encode_utf8(&mut buf));
        if used > width {
            return &s[i + c.len_utf8()..];
        }
    }
    s
}

/// A conversation's messages as screen rows of at most `width` columns,
/// oldest first: `HH:MM > text [state]` for ours, `HH:MM < text` for
/// theirs, long or multi-line bodies continued on indented rows.
pub(crate) fn rows(c: &Conversation, width: usize) -> Vec<Line<'static>> {
    const INDENT: &str = "        ";
    let body_width = width.saturating_sub(INDENT.len()).max(1);
    let mut out = Vec::new();
    for m in &c.lines {
        let arrow = if m.out { ">" } else { "<" };
        let arrow_style = Style::new().fg(if m.out { Color::Blue } else { Color::Magenta });
        let mut chunks = Vec::new();
        for text_line in m.text.split('\n') {
            split_to_width(&printable_line(text_line), body_width, &mut chunks);
        }
        // Our message's state follows its text, on a row of its own when
        // the last one has no room left for it.
        let tag = m.out.then(|| format!(" [{}]", m.state));
        if let Some(tag) = &tag
            && chunks.last().map_or(0, |c| columns(c)) + columns(tag) > body_width
        {
            chunks.push(String::new());
        }
        let last = chunks.len().saturating_sub(1);
        for (n, chunk) in chunks.into_iter().enumerate() {
            let mut spans = if n == 0 {
                vec![
                    Span::styled(clock(m.sent_at), Style::new().fg(Color::DarkGray)),
                    Span::raw(" "),
                    Span::styled(arrow, arrow_style),
                    Span::raw(" "),
                ]
            } else {
                vec![Span::raw(INDENT)]
            };
            spans.push(Span::raw(chunk));
            if let (true, Some(tag)) = (n == last, &tag) {
                spans.push(Span::styled(
                    tag.clone(),
                    Style::new().fg(state_colour(&m.state)),
                ));
            }
            out.push(Line::from(spans));
        }
    }
    out
}

fn draw_pane(frame: &mut Frame, app: &App, area: Rect) {
    let Some(c) = app.current() else {
        let empty = Paragraph::new("No buddies yet: add one with `roost buddy add <ID>`.")
            .block(Block::new().borders(Borders::ALL));
        frame.render_widget(empty, area);
        return;
    };
    let mut title = vec![Span::raw(format!(" {} ", printable_line(&c.title)))];
    if let Some(p) = &c.presence {
        title.push(Span::styled(
            p.status.clone(),
            Style::new().fg(status_colour(&p.status)),
        ));
        if let Some(note) = p.note.as_deref().filter(|n| !n.is_empty()) {
            title.push(Span::raw(format!(": {}", printable_line(note))));
        }
        title.push(Span::raw(" "));
    }
    let block = Block::new()
        .borders(Borders::ALL)
        .title(Line::from(title))
        .title_bottom(" times UTC ");
    let inner = block.inner(area);
    let all = rows(c, usize::from(inner.width));
    let height = usize::from(inner.height);
    let top = all.len().saturating_sub(height);
    let start = top.saturating_sub(app.scroll);
    let shown: Vec<Line> = all.into_iter().skip(start).take(height).collect();
    frame.render_widget(Paragraph::new(shown).block(block), area);
}

fn draw_input(frame: &mut Frame, app: &App, area: Rect) {
    let to = app
        .current()
        .map(|c| format!(" to {} ", printable_line(&c.title)))
        .unwrap_or_default();
    let block = Block::new().borders(Borders::ALL).title(to);
    let inner = block.inner(area);
    // The end of a long line stays in view.
    let width = usize::from(inner.width.saturating_sub(1));
    let typed = printable_line(&app.input);
    let shown = tail_to_width(&typed, width);
    let cursor_x = inner.x + u16::try_from(columns(shown)).unwrap_or(u16::MAX);
    frame.render_widget(Paragraph::new(shown.to_string()).block(block), area);
    frame.set_cursor_position(Position::new(
        cursor_x.min(inner.right().saturating_sub(1)),
        inner.y,
    ));
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
