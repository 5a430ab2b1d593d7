//! `roost room …`: public rooms through the daemon's API
//! (`/api/v1/rooms…`, see docs/rooms-public.md). ROOM is a room's name or
//! its id.

use anyhow::Result;
use clap::Subcommand;
use roost::api::Empty;
use roost::api::client::{ApiClient, escape};
use roost::api::rooms::{
    RoomLogRow, RoomMemberRow, RoomName, RoomPeer, RoomRow, RoomSent, RoomText, RoomView,
};
use roost::api::terminal::printable_line as field;

use super::output::{Out, indented};

/// Public rooms: anyone may join by name; messages are signed, not
/// encrypted.
#[derive(Debug, Subcommand)]
pub(crate) enum RoomCmd {
    /// Create a public room owned by me (the name must be free).
    Create {
        /// 1-64 characters of a-z, 0-9, '-', '_', '.' (case is ignored).
        name: String,
    },
    /// Join a public room by its name.
    Join {
        /// The room's name.
        name: String,
    },
    /// Say something in a room.
    Send {
        /// The room's name or id.
        room: String,
        /// The text (≤ 4096 bytes).
        text: String,
    },
    /// Show a room's last messages.
    Log {
        /// The room's name or id.
        room: String,
        /// How many of the latest messages.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// The rooms I am in.
    List,
    /// The members of a room I see now (connected peers subscribed to it).
    Members {
        /// The room's name or id.
        room: String,
    },
    /// Leave a room (its log is forgotten).
    Leave {
        /// The room's name or id.
        room: String,
    },
    /// Ban a key from a room I own: every member drops its messages.
    Ban {
        /// The room's name or id.
        room: String,
        /// The key's ID (or a buddy's name).
        id: String,
    },
    /// Lift a ban.
    Unban {
        /// The room's name or id.
        room: String,
        /// The key's ID (or a buddy's name).
        id: String,
    },
}

/// Runs one `roost room` command.
pub(crate) async fn run(client: &ApiClient, out: &Out, cmd: RoomCmd) -> Result<()> {
    let room_path = |room: &str, what: &str| format!("rooms/{}/{what}", escape(room));
    match cmd {
        RoomCmd::Create { name } => {
            let v: RoomView = client.post("rooms", &RoomName { name }).await?;
            out.object(&v, || format!("created {} ({})", field(&v.name), v.id))
        }
        RoomCmd::Join { name } => {
            let v: RoomView = client.post("rooms/join", &RoomName { name }).await?;
            out.object(&v, || format!("joined {} ({})", field(&v.name), v.id))
        }
        RoomCmd::Send { room, text } => {
            let v: RoomSent = client
                .post(&room_path(&room, "send"), &RoomText { text })
                .await?;
            out.object(&v, || format!("{} {}", v.state, v.id))
        }
        RoomCmd::Log { room, limit } => {
            let rows: Vec<RoomLogRow> = client
                .get(&format!("{}?limit={limit}", room_path(&room, "log")))
                .await?;
            out.rows(&rows, |m| {
                let who = m.from_name.as_deref().unwrap_or(&m.from);
                format!("{}: {}", field(who), indented(&m.text))
            })
        }
        RoomCmd::List => {
            let rows: Vec<RoomRow> = client.get("rooms").await?;
            out.rows(&rows, |r| {
                format!("{:<24} {:>4} members  {}", field(&r.name), r.members, r.id)
            })
        }
        RoomCmd::Members { room } => {
            let rows: Vec<RoomMemberRow> = client.get(&room_path(&room, "members")).await?;
            out.rows(&rows, |m| {
                let name = m
                    .name
                    .as_deref()
                    .map(|n| field(n).into_owned())
                    .unwrap_or_default();
                format!("{:<7} {} {name}", m.role, m.id)
            })
        }
        RoomCmd::Leave { room } => {
            let v: Empty = client.post(&room_path(&room, "leave"), &Empty {}).await?;
            out.object(&v, || "left".into())
        }
        RoomCmd::Ban { room, id } => {
            let v: Empty = client
                .post(&room_path(&room, "ban"), &RoomPeer { id })
                .await?;
            out.object(&v, || "banned".into())
        }
        RoomCmd::Unban { room, id } => {
            let v: Empty = client
                .post(&room_path(&room, "unban"), &RoomPeer { id })
                .await?;
            out.object(&v, || "unbanned".into())
        }
    }
}
