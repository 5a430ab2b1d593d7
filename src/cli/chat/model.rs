//! The terminal chat's state and rules, without a terminal or a socket:
//! [`App::handle`] takes one [`Input`] (a key, an answer of the daemon, a
//! live event) and returns the [`Effect`]s the I/O loop carries out (API
//! calls, quitting). Everything the chat decides is here, so it is tested
//! by feeding inputs and reading state and effects.

use std::collections::HashMap;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use roost::api::{BuddyRow, EventView, FileRow, MessageView, OfferedFile};
use roost::wire::files::PART_TYPE;

/// Longest input line kept, in characters: a message is at most 64 KiB,
/// and a line typed by hand is far shorter.
pub(crate) const MAX_INPUT: usize = 4000;
/// Lines a PgUp/PgDn moves the conversation.
pub(crate) const PAGE: usize = 10;
/// States of messages not (yet) in a conversation pane, kept so an event
/// that overtakes the message it is about is not lost; bounded.
const MAX_PENDING_STATES: usize = 1024;

/// What a conversation is with. Only buddies (and strangers who wrote)
/// today; rooms and file transfers become further variants, listed in the
/// same column.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ConvId {
    /// A one-to-one conversation with a peer, by its ID.
    Peer(String),
}

impl ConvId {
    /// The peer ID the API names this conversation by.
    pub(crate) fn api_name(&self) -> &str {
        match self {
            Self::Peer(id) => id,
        }
    }
}

/// A buddy's presence as last told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Presence {
    /// online | away | busy | offline.
    pub(crate) status: String,
    /// Its note, if any.
    pub(crate) note: Option<String>,
}

/// One message in a conversation pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// The message id (states are matched by it).
    pub(crate) id: String,
    /// Ours (true) or theirs.
    pub(crate) out: bool,
    /// queued | stored | delivered | read | failed (ours); unread | read.
    pub(crate) state: String,
    /// Sender's clock, Unix ms.
    pub(crate) sent_at: u64,
    /// The body as text; for a file offer, the file's line
    /// ([`file_line`]), kept up to date as the transfer moves on.
    pub(crate) text: String,
    /// The file a file offer offers.
    pub(crate) file: Option<OfferedFile>,
}

impl From<&MessageView> for Line {
    fn from(m: &MessageView) -> Self {
        Self {
            id: m.id.clone(),
            out: m.direction == "out",
            state: m.state.clone(),
            sent_at: m.sent_at,
            text: m.text.clone(),
            file: m.file.as_deref().cloned(),
        }
    }
}

/// Whether a message has a line: the parts of a small file follow its
/// offer and have none.
fn shown(m: &MessageView) -> bool {
    m.content_type != PART_TYPE
}

/// How far a transfer is, as its events and rows tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileState {
    /// Bytes here and verified (or held, ours).
    pub(crate) done: u64,
    /// The file's size.
    pub(crate) size: u64,
    /// offered | downloading | waiting | paused | complete | failed.
    pub(crate) state: String,
}

/// A byte count for people: `1.2 MiB`.
pub(crate) fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    #[allow(clippy::cast_precision_loss)] // one decimal is shown
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// The line of a file offer: `📎 name · 1.2 MiB · downloading 40 %`, or
/// `… · complete`; `offered` while no state is known.
pub(crate) fn file_line(f: &OfferedFile, state: Option<&FileState>) -> String {
    let now = match state {
        None => "offered".to_string(),
        Some(s) if matches!(s.state.as_str(), "downloading" | "waiting" | "paused") => {
            let pct = if s.size == 0 {
                100
            } else {
                u128::from(s.done) * 100 / u128::from(s.size)
            };
            format!("{} {pct} %", s.state)
        }
        Some(s) => s.state.clone(),
    };
    format!("📎 {} · {} · {now}", f.name, human_size(f.size))
}

/// One entry of the left column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conversation {
    pub(crate) id: ConvId,
    /// The buddy's name (or the start of a stranger's ID).
    pub(crate) title: String,
    /// `None` for a stranger, whose presence we do not get.
    pub(crate) presence: Option<Presence>,
    /// Incoming messages not yet read.
    pub(crate) unread: usize,
    /// Messages, oldest first, without duplicates.
    pub(crate) lines: Vec<Line>,
}

/// Keys the chat reacts to, from a terminal's key events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    Char(char),
    Enter,
    Backspace,
    Next,
    Prev,
    PageUp,
    PageDown,
    Quit,
}

impl Key {
    /// The chat's key for a terminal key event, if it has one. Only
    /// presses count (a terminal that reports releases would type twice).
    pub(crate) fn from_event(k: KeyEvent) -> Option<Self> {
        if k.kind == KeyEventKind::Release {
            return None;
        }
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        Some(match k.code {
            KeyCode::Char('c' | 'd') if ctrl => Self::Quit,
            KeyCode::Char(_) if ctrl => return None,
            KeyCode::Char(c) => Self::Char(c),
            KeyCode::Enter => Self::Enter,
            KeyCode::Backspace => Self::Backspace,
            KeyCode::Tab | KeyCode::Down => Self::Next,
            KeyCode::BackTab | KeyCode::Up => Self::Prev,
            KeyCode::PageUp => Self::PageUp,
            KeyCode::PageDown => Self::PageDown,
            KeyCode::Esc => Self::Quit,
            _ => return None,
        })
    }
}

/// Everything the chat reacts to.
// One input at a time passes through a small channel: a live event
// inline costs a few hundred bytes per slot, less than a box per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub(crate) enum Input {
    Key(Key),
    /// The daemon's buddies, received messages and file transfers, once
    /// at the start.
    Snapshot {
        buddies: Vec<BuddyRow>,
        inbox: Vec<MessageView>,
        files: Vec<FileRow>,
    },
    /// A conversation's history.
    Log(ConvId, Vec<MessageView>),
    /// The daemon took our message.
    Sent {
        to: ConvId,
        id: String,
        text: String,
        sent_at: u64,
    },
    /// A live event from the daemon.
    Event(EventView),
    /// The daemon's row of a file, as a `get` answered it.
    File(FileRow),
    /// Something failed; shown on the help line.
    Error(String),
}

/// What the I/O loop must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    LoadLog(ConvId),
    MarkRead(ConvId),
    Send {
        to: ConvId,
        text: String,
    },
    /// Download (or resume) the file with this id.
    GetFile(String),
    Quit,
}

/// What `/help` and an unknown command show.
pub(crate) const COMMANDS: &str =
    "commands: /get downloads the newest file offered here · //text sends /text";

/// The chat's whole state.
#[derive(Debug, Default)]
pub(crate) struct App {
    pub(crate) convs: Vec<Conversation>,
    /// Index into `convs` of the open conversation.
    pub(crate) selected: usize,
    pub(crate) input: String,
    /// Lines scrolled up from the newest.
    pub(crate) scroll: usize,
    /// The last error or notice, shown beside the help.
    pub(crate) notice: Option<String>,
    /// States seen for messages not in a pane yet.
    pending: HashMap<String, String>,
    /// File transfers by id (bounded by the daemon's rows and the events
    /// of its transfers).
    pub(crate) files: HashMap<String, FileState>,
}

/// How far a state is along its way: a later event never moves a message
/// back (events and fetched histories can cross).
fn rank(state: &str) -> u8 {
    match state {
        "stored" => 1,
        "delivered" => 2,
        "read" => 3,
        "failed" => 4,
        _ => 0, // queued, unread
    }
}

impl App {
    /// The open conversation.
    pub(crate) fn current(&self) -> Option<&Conversation> {
        self.convs.get(self.selected)
    }

    /// Applies one input; returns what to do about it.
    pub(crate) fn handle(&mut self, input: Input) -> Vec<Effect> {
        match input {
            Input::Key(k) => self.key(k),
            Input::Snapshot {
                buddies,
                inbox,
                files,
            } => {
                for f in files {
                    self.file_row(f);
                }
                self.snapshot(buddies, inbox)
            }
            Input::File(f) => {
                // The answer may come after an event that said `complete`.
                if self.files.get(&f.id).is_none_or(|s| s.state != "complete") {
                    let id = f.id.clone();
                    self.file_row(f);
                    self.refresh_file(&id);
                }
                Vec::new()
            }
            Input::Log(id, msgs) => {
                let lines: Vec<Line> = msgs.iter().filter(|m| shown(m)).map(Line::from).collect();
                let i = self.conv_index(&id, None);
                for l in lines {
                    self.add_line(i, l);
                }
                Vec::new()
            }
            Input::Sent {
                to,
                id,
                text,
                sent_at,
            } => {
                let i = self.conv_index(&to, None);
                self.add_line(
                    i,
                    Line {
                        id,
                        out: true,
                        state: "queued".into(),
                        sent_at,
                        text,
                        file: None,
                    },
                );
                Vec::new()
            }
            Input::Event(ev) => self.event(ev),
            Input::Error(e) => {
                self.notice = Some(e);
                Vec::new()
            }
        }
    }

    fn key(&mut self, k: Key) -> Vec<Effect> {
        match k {
            Key::Quit => return vec![Effect::Quit],
            Key::Char(c) => {
                if self.input.chars().count() < MAX_INPUT {
                    self.input.push(c);
                }
            }
            Key::Backspace => {
                self.input.pop();
            }
            Key::Enter => return self.enter(),
            Key::Next | Key::Prev if !self.convs.is_empty() => {
                let n = self.convs.len();
                let step = if k == Key::Next { 1 } else { n - 1 };
                return self.open((self.selected + step) % n);
            }
            Key::Next | Key::Prev => {}
            Key::PageUp => {
                let lines = self.current().map_or(0, |c| c.lines.len());
                self.scroll = (self.scroll + PAGE).min(lines);
            }
            Key::PageDown => self.scroll = self.scroll.saturating_sub(PAGE),
        }
        Vec::new()
    }

    /// The typed line: a message to the open conversation, or a command
    /// (`/…`; `//` starts a message with `/`). An unknown command stays
    /// in the input, to be corrected.
    fn enter(&mut self) -> Vec<Effect> {
        let text = self.input.trim().to_string();
        if text.is_empty() {
            return Vec::new();
        }
        let message = match text.strip_prefix('/') {
            None => text,
            Some(rest) if rest.starts_with('/') => rest.to_string(),
            Some(command) => return self.command(command),
        };
        let Some(c) = self.current() else {
            return Vec::new();
        };
        let to = c.id.clone();
        self.input.clear();
        self.scroll = 0;
        vec![Effect::Send { to, text: message }]
    }

    fn command(&mut self, command: &str) -> Vec<Effect> {
        match command.trim() {
            "get" => {
                self.input.clear();
                let Some(f) = self.newest_to_get() else {
                    self.notice = Some("no file offered here is waiting to be got".into());
                    return Vec::new();
                };
                self.notice = Some(format!(
                    "getting {}: it lands in the daemon's files folder (`roost files` says where)",
                    f.name
                ));
                vec![Effect::GetFile(f.id)]
            }
            "help" => {
                self.input.clear();
                self.notice = Some(COMMANDS.into());
                Vec::new()
            }
            other => {
                self.notice = Some(format!("unknown command /{other}; {COMMANDS}"));
                Vec::new()
            }
        }
    }

    /// The newest file offered to us in the open conversation that is
    /// neither here nor on its way.
    fn newest_to_get(&self) -> Option<OfferedFile> {
        let c = self.current()?;
        c.lines.iter().rev().find_map(|l| {
            let f = l.file.as_ref().filter(|_| !l.out)?;
            let state = self.files.get(&f.id).map(|s| s.state.as_str());
            (!matches!(state, Some("complete" | "downloading" | "waiting"))).then(|| f.clone())
        })
    }

    fn file_row(&mut self, f: FileRow) {
        self.files.insert(
            f.id,
            FileState {
                done: f.done,
                size: f.size,
                state: f.state,
            },
        );
    }

    /// Opens conversation `i`: fetches its history (again: what was sent
    /// to it from elsewhere, e.g. by `roost send`, comes no other way), and
    /// marks it read if anything in it is unread.
    fn open(&mut self, i: usize) -> Vec<Effect> {
        self.selected = i;
        self.scroll = 0;
        let Some(c) = self.convs.get_mut(i) else {
            return Vec::new();
        };
        let mut out = vec![Effect::LoadLog(c.id.clone())];
        if c.unread > 0 {
            c.unread = 0;
            out.push(Effect::MarkRead(c.id.clone()));
        }
        out
    }

    fn snapshot(&mut self, buddies: Vec<BuddyRow>, inbox: Vec<MessageView>) -> Vec<Effect> {
        let mut buddies = buddies;
        buddies.sort_by_key(|b| b.name.to_lowercase());
        for b in buddies {
            let i = self.conv_index(&ConvId::Peer(b.id.clone()), Some(&b.name));
            self.convs[i].presence = Some(Presence {
                status: b.status,
                note: b.note,
            });
        }
        for m in inbox.iter().filter(|m| m.state == "unread" && shown(m)) {
            let i = self.conv_index(&ConvId::Peer(m.peer.clone()), None);
            self.convs[i].unread += 1;
        }
        self.open(self.selected)
    }

    fn event(&mut self, ev: EventView) -> Vec<Effect> {
        match ev {
            EventView::Message(m) | EventView::MessageSent(m) if !shown(&m) => Vec::new(),
            EventView::MessageSent(m) => {
                // Ours, sent from here or from elsewhere (`roost send`).
                let i = self.conv_index(&ConvId::Peer(m.peer.clone()), None);
                self.add_line(i, Line::from(&m));
                Vec::new()
            }
            EventView::FileProgress {
                id,
                done,
                size,
                state,
            } => {
                self.files
                    .insert(id.clone(), FileState { done, size, state });
                self.refresh_file(&id);
                Vec::new()
            }
            EventView::Message(m) => {
                let id = ConvId::Peer(m.peer.clone());
                let i = self.conv_index(&id, None);
                let new = self.add_line(i, Line::from(&m));
                if !new || m.direction != "in" {
                    return Vec::new();
                }
                if i == self.selected {
                    // Seen as it arrives: the open conversation is read.
                    return vec![Effect::MarkRead(id)];
                }
                self.convs[i].unread += 1;
                Vec::new()
            }
            EventView::State { id, peer, state } => {
                let i = self.conv_index(&ConvId::Peer(peer), None);
                match self.convs[i].lines.iter_mut().find(|l| l.id == id) {
                    Some(l) if rank(&state) > rank(&l.state) => l.state = state,
                    Some(_) => {}
                    None => {
                        if self.pending.len() >= MAX_PENDING_STATES {
                            self.pending.clear();
                        }
                        self.pending.insert(id, state);
                    }
                }
                Vec::new()
            }
            EventView::Presence { id, status, note } => {
                let i = self.conv_index(&ConvId::Peer(id), None);
                self.convs[i].presence = Some(Presence { status, note });
                Vec::new()
            }
            EventView::BuddyRequest { id } => {
                self.notice = Some(format!(
                    "buddy request from {id}: `roost buddy add {id}` accepts it"
                ));
                Vec::new()
            }
            // Rooms and groups are not conversations of the terminal chat
            // yet: their events pass it by.
            _ => Vec::new(),
        }
    }

    /// The index of conversation `id`, added (after the others) if new.
    fn conv_index(&mut self, id: &ConvId, name: Option<&str>) -> usize {
        if let Some(i) = self.convs.iter().position(|c| &c.id == id) {
            return i;
        }
        let title = name.map_or_else(|| id.api_name().chars().take(12).collect(), str::to_string);
        self.convs.push(Conversation {
            id: id.clone(),
            title,
            presence: None,
            unread: 0,
            lines: Vec::new(),
        });
        self.convs.len() - 1
    }

    /// Writes the lines of the offers of file `id` again from its state.
    fn refresh_file(&mut self, id: &str) {
        let state = self.files.get(id);
        for l in self.convs.iter_mut().flat_map(|c| c.lines.iter_mut()) {
            if let Some(f) = l.file.as_ref().filter(|f| f.id == id) {
                l.text = file_line(f, state);
            }
        }
    }

    /// Adds `line` to conversation `i` in sending order, unless there;
    /// a copy already there keeps the later of the two states. Returns
    /// whether it was new.
    fn add_line(&mut self, i: usize, mut line: Line) -> bool {
        if let Some(f) = &line.file {
            line.text = file_line(f, self.files.get(&f.id));
        }
        if let Some(state) = self.pending.remove(&line.id)
            && rank(&state) > rank(&line.state)
        {
            line.state = state;
        }
        let lines = &mut self.convs[i].lines;
        if let Some(old) = lines.iter_mut().find(|l| l.id == line.id) {
            if rank(&line.state) > rank(&old.state) {
                old.state = line.state;
            }
            return false;
        }
        let at = lines.partition_point(|l| (l.sent_at, &l.id) <= (line.sent_at, &line.id));
        lines.insert(at, line);
        // Scrolled up, the view stays on the lines being read.
        if i == self.selected && self.scroll > 0 {
            self.scroll += 1;
        }
        true
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
pub(crate) mod tests;
