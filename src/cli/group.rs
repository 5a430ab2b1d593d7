//! `roost group …`: private groups and public rooms, through the daemon's
//! API (`/api/v1/groups…`). GROUP is a group's or room's id or its name.

use anyhow::Result;
use clap::Subcommand;
use roost::api::Empty;
use roost::api::client::{ApiClient, escape};
use roost::api::groups::{
    ChangeView, CreateRequest, GroupRef, GroupRow, GroupSendRequest, GroupSendView, InvitationRow,
    InviteRequest, LogLine, MemberRow, RemoveRequest, RoleRequest,
};
use roost::api::terminal::printable_line as field;

use super::output::{Out, indented};

/// Private groups and public rooms.
#[derive(Debug, Subcommand)]
pub(crate) enum GroupCmd {
    /// Make a private group (you are its creator and admin), or with
    /// `--public` a public room you own.
    Create {
        /// Its name (a public room's: 1-64 of a-z, 0-9, '-', '_', '.').
        name: String,
        /// A public room: anyone may join by name; signed, not encrypted.
        #[arg(long)]
        public: bool,
    },
    /// Invite members (admins); prints `done`, or `requested` when the
    /// creator applies it.
    Invite {
        /// The group's name or id.
        group: String,
        /// IDs or buddy names to invite.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Accept an invitation, or join a public room by its name.
    Join {
        /// An invitation's group id (or name), or a public room's name.
        group: String,
    },
    /// Invitations not yet accepted.
    Invitations,
    /// Leave a group.
    Leave {
        /// The group's name or id.
        group: String,
    },
    /// Remove a member (admins); everyone left gets a fresh key.
    Remove {
        /// The group's name or id.
        group: String,
        /// The member's ID or buddy name.
        id: String,
    },
    /// Make a member an admin (admins): admins add and remove members
    /// and admins.
    Promote {
        /// The group's name or id.
        group: String,
        /// The member's ID or buddy name.
        id: String,
    },
    /// Make an admin a member again (admins; not the creator).
    Demote {
        /// The group's name or id.
        group: String,
        /// The admin's ID or buddy name.
        id: String,
    },
    /// The groups and public rooms you are in.
    List,
    /// A group's members and roles.
    Members {
        /// The group's name or id.
        group: String,
    },
    /// Send a message to a group.
    Send {
        /// The group's name or id.
        group: String,
        /// The text.
        text: String,
    },
    /// A group's messages and membership changes.
    Log {
        /// The group's name or id.
        group: String,
        /// How many lines.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Ban a key from a public room you own: every member drops its
    /// messages.
    Ban {
        /// The room's name or id.
        group: String,
        /// The key's ID (or a buddy's name).
        id: String,
    },
    /// Lift a ban in a public room you own.
    Unban {
        /// The room's name or id.
        group: String,
        /// The key's ID (or a buddy's name).
        id: String,
    },
}

fn path(group: &str, what: &str) -> String {
    format!("groups/{}/{what}", escape(group))
}

/// `promote` or `demote` (`what`) member `id` of `group`.
async fn set_role(api: &ApiClient, out: &Out, group: &str, what: &str, id: String) -> Result<()> {
    let v: ChangeView = api.post(&path(group, what), &RoleRequest { id }).await?;
    out.object(&v, || v.state.clone())
}

/// Runs one `roost group` command.
pub(crate) async fn run(api: &ApiClient, out: &Out, cmd: GroupCmd) -> Result<()> {
    match cmd {
        GroupCmd::Create { name, public } => {
            let g: GroupRef = api.post("groups", &CreateRequest { name, public }).await?;
            out.object(&g, || format!("{} {}", g.id, field(&g.name)))
        }
        GroupCmd::Invite { group, ids } => {
            let v: ChangeView = api
                .post(&path(&group, "invite"), &InviteRequest { ids })
                .await?;
            out.object(&v, || v.state.clone())
        }
        GroupCmd::Join { group } => {
            let g: GroupRef = api.post(&path(&group, "join"), &Empty {}).await?;
            out.object(&g, || format!("joined {} {}", g.id, field(&g.name)))
        }
        GroupCmd::Invitations => {
            let rows: Vec<InvitationRow> = api.get("groups/invitations").await?;
            out.rows(&rows, |r| {
                format!("{} {} from {}", r.id, field(&r.name), r.from)
            })
        }
        GroupCmd::Leave { group } => {
            let v: ChangeView = api.post(&path(&group, "leave"), &Empty {}).await?;
            out.object(&v, || v.state.clone())
        }
        GroupCmd::Remove { group, id } => {
            let v: ChangeView = api
                .post(&path(&group, "remove"), &RemoveRequest { id })
                .await?;
            out.object(&v, || v.state.clone())
        }
        GroupCmd::Promote { group, id } => set_role(api, out, &group, "promote", id).await,
        GroupCmd::Demote { group, id } => set_role(api, out, &group, "demote", id).await,
        GroupCmd::List => {
            let rows: Vec<GroupRow> = api.get("groups").await?;
            out.rows(&rows, |r| {
                let kind = if r.public { "public" } else { "private" };
                format!(
                    "{} {:<20} {} members {kind}",
                    r.id,
                    field(&r.name),
                    r.members
                )
            })
        }
        GroupCmd::Members { group } => {
            let rows: Vec<MemberRow> = api.get(&path(&group, "members")).await?;
            out.rows(&rows, |r| {
                format!("{} {:<20} {}", r.id, field(&r.name), r.role)
            })
        }
        GroupCmd::Send { group, text } => {
            let v: GroupSendView = api
                .post(&path(&group, "send"), &GroupSendRequest { text })
                .await?;
            out.object(&v, || format!("{} {}", v.id, v.state))
        }
        GroupCmd::Log { group, limit } => {
            let rows: Vec<LogLine> = api
                .get(&format!("{}?limit={limit}", path(&group, "log")))
                .await?;
            out.rows(&rows, |l| {
                format!("{:<16} {}", field(&l.from_name), indented(&l.text))
            })
        }
        GroupCmd::Ban { group, id } => {
            let v: ChangeView = api
                .post(&path(&group, "ban"), &RemoveRequest { id })
                .await?;
            out.object(&v, || v.state.clone())
        }
        GroupCmd::Unban { group, id } => {
            let v: ChangeView = api
                .post(&path(&group, "unban"), &RemoveRequest { id })
                .await?;
            out.object(&v, || v.state.clone())
        }
    }
}
