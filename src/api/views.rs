//! The JSON shapes of the local API's answers (and so of `roost --json`).
//! These are a contract for scripts: fields are only ever added. The bodies
//! clients send are in [`super::requests`].

use serde::{Deserialize, Serialize};

use crate::node::{BuddyView, Event};
use crate::store::{BuddyRequest, Direction, StoredMessage};
use crate::wire::presence::PresenceInfo;

/// Contents of `api.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiInfo {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// Bearer token for every request.
    pub token: String,
    /// Path of the Unix socket serving the same API without a token (the
    /// safer way in: see docs/api.md).
    #[serde(default)]
    pub socket: Option<String>,
}

/// `GET /api/v1/id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdView {
    /// The node's ID.
    pub id: String,
    /// Its listen addresses, each ending in `/p2p/<ID>`.
    pub addrs: Vec<String>,
}

/// `GET /api/v1/invite`: an invite to this node and what it says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InviteView {
    /// The invite's text, `roost:…`, to hand on as it is.
    pub uri: String,
    /// Whose invite: this node's ID.
    pub id: String,
    /// The addresses it carries (without `/p2p/<ID>`).
    pub addrs: Vec<String>,
    /// Unix milliseconds from which it is refused.
    pub expires_at: u64,
    /// The same as a UTC date and time, for people.
    pub expires: String,
}

/// `GET /api/v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusView {
    /// The node's ID.
    pub id: String,
    /// Number of connected peers.
    pub peers: usize,
    /// Its listen addresses.
    pub addrs: Vec<String>,
    /// Messages waiting in the outbox.
    pub outbox: usize,
    /// Mailbox items held for others.
    pub held: usize,
    /// Number of buddies.
    pub buddies: usize,
    /// `public` (others can dial us), `private` (behind a NAT, reachable
    /// through relays) or `unknown` (not tested yet).
    pub reachability: String,
    /// The circuit addresses of the relay reservations we hold.
    pub relays: Vec<String>,
    /// One row per open connection.
    pub connections: Vec<ConnectionRow>,
}

/// One open connection in [`StatusView`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionRow {
    /// The peer's ID.
    pub peer: String,
    /// Its address (a `/p2p-circuit` one for a relayed connection).
    pub addr: String,
    /// Through a relay rather than direct.
    pub relayed: bool,
}

/// `POST /api/v1/send` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendView {
    /// The new message's id.
    pub id: String,
    /// Its state (`queued` right after sending).
    pub state: String,
}

/// `POST /api/v1/read/{peer}` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadView {
    /// How many messages were marked read.
    pub read: usize,
}

/// `POST /api/v1/buddies/{peer}/{action}` answer. The fields are in
/// alphabetical order, the order the JSON has always had.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuddyActionView {
    /// The action done: remove | rename | hide | show | block | unblock.
    pub done: String,
    /// The buddy's ID.
    pub id: String,
}

/// A message as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageView {
    /// Message id.
    pub id: String,
    /// `in` or `out`.
    pub direction: String,
    /// queued | stored | delivered | read | failed (out); unread | read (in).
    pub state: String,
    /// The other party's ID.
    pub peer: String,
    /// Sender's ID.
    pub from: String,
    /// Sender's buddy name, if any (empty for our own messages).
    pub from_name: Option<String>,
    /// Sender's clock, Unix ms.
    pub sent_at: u64,
    /// MIME type.
    pub content_type: String,
    /// Subject, if any.
    pub subject: Option<String>,
    /// The body as text when it is UTF-8; empty when it is not (the bytes
    /// are never guessed into text: see `base64`).
    pub text: String,
    /// The body's exact bytes, standard base64 with padding, whatever its
    /// type. `GET /api/v1/log/{peer}/{id}/body` serves them raw.
    pub base64: String,
    /// The body's size in bytes.
    pub size: usize,
    /// From a key that is not a buddy.
    pub request: bool,
    /// For a file offer (content type `application/vnd.roost.file-offer`):
    /// the file it offers, decoded from its CBOR body, so a window shows a
    /// readable line without decoding it; absent for other messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<OfferedFile>,
}

/// The file a file-offer message offers (its `id` is the transfer's, as in
/// `GET /api/v1/files/{id}` and `file_progress` events).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferedFile {
    /// The transfer's id.
    pub id: String,
    /// The file's name (one path component, checked by the decoder).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its MIME type, as the sender guessed it.
    pub mime: String,
}

impl OfferedFile {
    /// The file an offer's body names; `None` for a body that does not
    /// decode (a broken offer shows as the bytes it is).
    pub fn of(content_type: &str, body: &[u8]) -> Option<Self> {
        if content_type != crate::wire::files::OFFER_TYPE {
            return None;
        }
        let o = crate::wire::files::Offer::decode(body).ok()?;
        Some(Self {
            id: o.file.to_string(),
            name: o.name,
            size: o.size,
            mime: o.mime,
        })
    }
}

impl MessageView {
    /// Builds the view; `me` is our ID, `name` the other party's name.
    pub fn new(m: &StoredMessage, me: &str, name: Option<String>) -> Self {
        let peer = m.peer_id().map(|p| p.to_string()).unwrap_or_default();
        let incoming = m.direction == Direction::In;
        Self {
            id: m.id.to_string(),
            direction: if incoming { "in" } else { "out" }.into(),
            state: m.state.as_str().into(),
            from: if incoming {
                peer.clone()
            } else {
                me.to_string()
            },
            from_name: if incoming { name } else { None },
            peer,
            sent_at: m.sent_at,
            content_type: m.content_type.clone(),
            subject: m.subject.clone(),
            text: std::str::from_utf8(&m.data)
                .map(str::to_string)
                .unwrap_or_default(),
            base64: data_encoding::BASE64.encode(&m.data),
            size: m.data.len(),
            request: m.request,
            file: OfferedFile::of(&m.content_type, &m.data),
        }
    }
}

impl MessageView {
    /// What a terminal shows of the body: its text, or for a body that is
    /// not UTF-8 its type and size (the bytes are in `base64`).
    pub fn shown(&self) -> String {
        if self.text.is_empty() && self.size > 0 {
            format!("[{}, {} bytes]", self.content_type, self.size)
        } else {
            self.text.clone()
        }
    }
}

/// A buddy-list row (`GET /api/v1/buddies`) and a presence row
/// (`GET /api/v1/presence/buddies`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuddyRow {
    /// Its ID.
    pub id: String,
    /// My name for it.
    pub name: String,
    /// online | away | busy | offline, as it last told us.
    pub status: String,
    /// Its note.
    pub note: Option<String>,
    /// Its activity.
    pub activity: Option<String>,
    /// Its location.
    pub location: Option<String>,
    /// Until when.
    pub until: Option<String>,
    /// It sees me offline.
    pub hidden: bool,
    /// It is blocked.
    pub blocked: bool,
}

impl From<&BuddyView> for BuddyRow {
    fn from(b: &BuddyView) -> Self {
        let p = &b.presence;
        Self {
            id: b.peer.to_string(),
            name: b.name.clone(),
            status: p.status.as_str().into(),
            note: p.note.clone(),
            activity: p.activity.clone(),
            location: p.location.clone(),
            until: p.until.clone(),
            hidden: b.hidden,
            blocked: b.blocked,
        }
    }
}

/// A pending buddy request (`GET /api/v1/requests`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestRow {
    /// Who added me.
    pub id: String,
    /// When it arrived, Unix ms.
    pub at: u64,
}

impl From<&BuddyRequest> for RequestRow {
    fn from(r: &BuddyRequest) -> Self {
        Self {
            id: libp2p::PeerId::from_bytes(&r.peer)
                .map(|p| p.to_string())
                .unwrap_or_default(),
            at: r.at,
        }
    }
}

/// My presence (`GET`/`POST /api/v1/presence`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OwnPresence {
    /// online | away | busy | invisible.
    pub status: String,
    /// Note, ≤ 256 characters.
    #[serde(default)]
    pub note: Option<String>,
    /// Activity.
    #[serde(default)]
    pub activity: Option<String>,
    /// Location.
    #[serde(default)]
    pub location: Option<String>,
    /// Until when (free text, e.g. "14:00").
    #[serde(default)]
    pub until: Option<String>,
}

/// One event of `GET /api/v1/events` (SSE `data:`), tagged by `type`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventView {
    /// A new incoming message.
    Message(MessageView),
    /// One of our messages was stored in the outbox, whoever sent it (a
    /// window, `roost send`, a file offer): the same row as `message`.
    MessageSent(MessageView),
    /// One of our messages changed state.
    State {
        /// Message id.
        id: String,
        /// Its recipient.
        peer: String,
        /// Its new state.
        state: String,
    },
    /// A buddy's presence changed.
    Presence {
        /// The buddy.
        id: String,
        /// online | away | busy | offline.
        status: String,
        /// Its note.
        note: Option<String>,
    },
    /// Someone added me.
    BuddyRequest {
        /// Who.
        id: String,
    },
    /// A message shown in a public room we are in (ours included).
    RoomMessage {
        /// The room's id.
        room: String,
        /// The room's name.
        room_name: String,
        /// The message id.
        id: String,
        /// Its sender's ID.
        from: String,
        /// Unix ms, as the sender says.
        sent_at: u64,
        /// The text.
        text: String,
    },
    /// A group message arrived.
    GroupMessage {
        /// The group's id.
        group: String,
        /// The message's id.
        id: String,
        /// Its sender.
        from: String,
        /// The sender's clock, Unix ms.
        sent_at: u64,
        /// The text.
        text: String,
    },
    /// A group's membership changed.
    GroupChange {
        /// The group's id.
        group: String,
        /// The change in words.
        text: String,
    },
    /// I was invited into a group (`group join` accepts).
    GroupInvitation {
        /// The group's id.
        group: String,
        /// Its name.
        name: String,
        /// Who invited me.
        from: String,
    },
    /// A file transfer moved on: on each change of state, and at most
    /// every 250 ms while a download runs.
    FileProgress {
        /// The transfer's id.
        id: String,
        /// Bytes here and verified (a download), or the size (ours).
        done: u64,
        /// The file's size.
        size: u64,
        /// offered | downloading | waiting | paused | complete | failed.
        state: String,
    },
}

impl EventView {
    /// The ID of the peer the event is about: the sender of a message, the
    /// recipient of ours, the buddy whose presence changed, who added me.
    pub fn peer(&self) -> &str {
        match self {
            Self::Message(m) | Self::MessageSent(m) => &m.peer,
            Self::State { peer, .. } => peer,
            Self::Presence { id, .. } | Self::BuddyRequest { id } => id,
            Self::RoomMessage { from, .. } => from,
            Self::GroupMessage { from, .. } | Self::GroupInvitation { from, .. } => from,
            Self::GroupChange { .. } | Self::FileProgress { .. } => "",
        }
    }

    /// The view of a node event; `me` is our ID.
    pub fn new(e: &Event, me: &str) -> Self {
        match e {
            Event::Message(m) => Self::Message(MessageView::new(m, me, None)),
            Event::Sent(m) => Self::MessageSent(MessageView::new(m, me, None)),
            Event::State { id, peer, state } => Self::State {
                id: id.to_string(),
                peer: peer.to_string(),
                state: state.as_str().into(),
            },
            Event::Presence { peer, info } => presence_event(peer, info),
            Event::BuddyRequest { peer } => Self::BuddyRequest {
                id: peer.to_string(),
            },
            Event::Room(r) => Self::RoomMessage {
                room: r.entry.room.to_string(),
                room_name: r.name.clone(),
                id: r.entry.id.clone(),
                from: r.entry.from.to_string(),
                sent_at: r.entry.sent_at,
                text: r.entry.text.clone(),
            },
            Event::Group(g) => crate::api::groups::event_view(g),
            Event::File(p) => Self::FileProgress {
                id: p.id.to_string(),
                done: p.done,
                size: p.size,
                state: p.state.as_str().into(),
            },
        }
    }
}

fn presence_event(peer: &libp2p::PeerId, info: &PresenceInfo) -> EventView {
    EventView::Presence {
        id: peer.to_string(),
        status: info.status.as_str().into(),
        note: info.note.clone(),
    }
}

/// A row of `GET /api/v1/files` (and `roost files`): one transfer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRow {
    /// The file id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Bytes here and verified (received), or held (sent).
    pub done: u64,
    /// offered | downloading | waiting | paused | complete | failed.
    pub state: String,
    /// The other party's ID.
    pub peer: String,
    /// `in` or `out`.
    pub direction: String,
    /// MIME type.
    pub mime: String,
    /// BLAKE3 root, hex.
    pub blake3: String,
    /// Where the file is (ours), or lands or landed (received).
    pub path: Option<String>,
    /// Peers it is fetched from (received).
    pub sources: usize,
    /// Sources dropped for sending bytes that do not verify.
    pub dropped: usize,
    /// Bytes of it this node sent to others since it started.
    pub served: u64,
    /// Why it failed.
    pub error: Option<String>,
}

impl From<&crate::node::files::FileInfo> for FileRow {
    fn from(f: &crate::node::files::FileInfo) -> Self {
        let t = &f.transfer;
        Self {
            id: t.id.to_string(),
            name: t.name.clone(),
            size: t.size,
            done: f.done,
            state: t.state.as_str().into(),
            peer: t.peer_id().map(|p| p.to_string()).unwrap_or_default(),
            direction: match t.direction {
                crate::store::FileDirection::In => "in",
                crate::store::FileDirection::Out => "out",
            }
            .into(),
            mime: t.mime.clone(),
            blake3: hex::encode(t.root),
            path: t.path.clone(),
            sources: t.sources.len(),
            dropped: t.dropped.len(),
            served: f.served,
            error: t.error.clone(),
        }
    }
}

/// The file part of [`SendFileView`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SentFile {
    /// The file id.
    pub id: String,
    /// Its name as offered.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// `POST /api/v1/files/send` answer (and `roost send --file`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendFileView {
    /// The offer message's id.
    pub id: String,
    /// The offer message's state (`queued` right after sending).
    pub state: String,
    /// The file offered.
    pub file: SentFile,
}
