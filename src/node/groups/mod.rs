//! Private groups, end to end (see docs/rooms.md).
//!
//! A group message is sealed once under its sender's chain ([`keys`]) and
//! signed by its sender. In a small group each member's copy of those
//! same bytes rides in that member's ordinary 1:1 envelope as
//! `Body::Group`, through the outbox, links and mailboxes every 1:1
//! message uses; a large group's goes out once over gossip ([`fast`]),
//! and members catch up what they missed from each other ([`sync`]).
//! The creator is the
//! one key authority: it signs every state (roster, epoch) and hands each
//! new epoch's secret to every member 1:1 ([`ops::issue`]); other admins
//! ask it. The rules are pure ([`roster`], [`keys`]); [`ops`] and
//! [`receive`] are store jobs that apply them; the `NodeHandle` methods
//! here run those jobs through the messaging service, which queues the
//! 1:1 messages they leave.

pub mod fast;
pub mod fast_limits;
pub(crate) mod fast_service;
mod fast_util;
pub mod keys;
mod opened;
mod ops;
pub(crate) mod receive;
pub mod roster;
pub mod sync;
mod sync_jobs;
#[cfg(test)]
mod test_peer;

use std::sync::Arc;

use libp2p::PeerId;
use serde_bytes::ByteBuf;

use super::messenger::Request;
use super::{NodeError, NodeHandle};
use crate::crypto::Sealer;
use crate::identity::Identity;
use crate::store::{LogRow, Store, StoreError};
use crate::wire::group::{GroupId, Header, Op, Role};
use crate::wire::message::Envelope;
pub use roster::GroupError;

/// What group jobs need of the node: its identity (to sign states and
/// messages), its sealer (to seal 1:1 messages) and when a group takes
/// the fast path.
pub(crate) struct Ctx {
    pub(crate) identity: Identity,
    pub(crate) sealer: Arc<Sealer>,
    pub(crate) fast: fast::FastConfig,
    /// Told of the changes to what the fast path follows that no event
    /// announces — an invitation accepted, a key blocked or unblocked —
    /// so its actor reads the groups again at once; its upkeep does not
    /// read them otherwise ([`fast::refresh_due`]).
    pub(crate) refresh: tokio::sync::Notify,
    /// Catch-up questions this node has sent (`sync`), for tests to tell
    /// a message gossip brought from one a catch-up brought.
    pub(crate) asks: std::sync::atomic::AtomicUsize,
    /// Messages this node filed from catch-up answers, for the same tests.
    pub(crate) relayed: std::sync::atomic::AtomicUsize,
    /// How many catch-up questions each asker may have answered, so a
    /// member asking in a loop cannot spend our disk and uplink.
    pub(crate) answers: std::sync::Mutex<sync::AnswerLimit>,
    /// Our groups' states, opened once rather than for every message.
    pub(crate) states: opened::OpenedStates,
}

impl Ctx {
    /// The context of `identity`, sharing the node's sealer.
    pub(crate) fn new(
        identity: Identity,
        sealer: Arc<Sealer>,
        fast: fast::FastConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            identity,
            sealer,
            fast,
            refresh: tokio::sync::Notify::new(),
            asks: Default::default(),
            relayed: Default::default(),
            answers: std::sync::Mutex::new(sync::answer_limit()),
            states: Default::default(),
        })
    }
}

/// What the node tells listeners about groups.
#[derive(Debug, Clone)]
pub enum GroupEvent {
    /// A group message arrived.
    Message {
        /// Which group.
        group: GroupId,
        /// Its sender.
        from: PeerId,
        /// Its id.
        id: String,
        /// The sender's clock, Unix ms.
        sent_at: u64,
        /// The text.
        text: String,
    },
    /// The membership changed.
    Change {
        /// Which group.
        group: GroupId,
        /// The change in words.
        text: String,
    },
    /// We were invited.
    Invitation {
        /// Which group.
        group: GroupId,
        /// Its name.
        name: String,
        /// Who invited us (the creator).
        from: PeerId,
    },
}

/// Why a group call failed.
#[derive(Debug, thiserror::Error)]
pub enum GroupOpError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A rule refused it.
    #[error(transparent)]
    Group(#[from] GroupError),
    /// No group has that name or id.
    #[error("no group is called {0:?} (give a name from `roost group list` or an id)")]
    Unknown(String),
    /// Several groups have that name.
    #[error("several groups are called {name:?}; use an id: {}", ids.join(", "))]
    Ambiguous {
        /// The name.
        name: String,
        /// Their ids.
        ids: Vec<String>,
    },
    /// No group with that id.
    #[error("no such group")]
    UnknownGroup,
    /// A name that is empty or too long.
    #[error("a group name is 1 to 64 bytes")]
    BadName,
    /// The OS gave no randomness.
    #[error("no randomness")]
    NoRandomness,
    /// A 1:1 copy could not be sealed.
    #[error("cannot seal: {0}")]
    Seal(String),
}

/// What an operation answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A group was made.
    Created(GroupId, String),
    /// A message was sent (its id).
    Sent(String),
    /// The change was asked of the creator, who applies it when it gets it.
    Requested,
    /// Done here.
    Done,
}

/// What a store job of a group operation leaves.
pub(crate) struct GroupDone {
    /// 1:1 messages written to the outbox; the service queues them.
    pub(crate) out: Vec<(PeerId, Envelope)>,
    /// For listeners.
    pub(crate) events: Vec<GroupEvent>,
    /// For the caller.
    pub(crate) answer: Answer,
    /// A large group's message: published once on its epoch's topic.
    pub(crate) fast: Option<fast::Publish>,
}

type Outcome = Result<GroupDone, GroupOpError>;

/// A group operation as a store job, run flushed by the messaging service.
pub(crate) type Job = Box<dyn FnOnce(&Store) -> Outcome + Send>;

/// The id of a group message: 16 bytes of the hash of its header, hex.
fn msg_id(h: &Header) -> String {
    let mut x = blake3::Hasher::new_derive_key("roost group message id v1");
    x.update(&h.group_id.0);
    x.update(&h.epoch.to_be_bytes());
    x.update(&h.n.to_be_bytes());
    x.update(&h.sender);
    hex::encode(&x.finalize().as_bytes()[..16])
}

/// The group a user named: an id (64 hex characters) or the name of one
/// group we are in.
fn resolve(s: &Store, text: &str) -> Result<GroupId, GroupOpError> {
    if let Ok(id) = text.parse::<GroupId>()
        && s.group(&id)?.is_some()
    {
        return Ok(id);
    }
    let ids: Vec<GroupId> = s
        .groups()?
        .into_iter()
        .filter(|(_, row)| !row.gone && row.state.open().is_ok_and(|st| st.name == text))
        .map(|(id, _)| id)
        .collect();
    match ids.as_slice() {
        [] => Err(GroupOpError::Unknown(text.to_string())),
        [one] => Ok(*one),
        _ => Err(GroupOpError::Ambiguous {
            name: text.to_string(),
            ids: ids.iter().map(|i| i.to_string()).collect(),
        }),
    }
}

/// A group as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// Its id.
    pub id: GroupId,
    /// Its name.
    pub name: String,
    /// How many members.
    pub members: usize,
    /// Its epoch.
    pub epoch: u64,
    /// Accepted (false: an invitation).
    pub joined: bool,
    /// Who created it.
    pub creator: PeerId,
}

/// One line of a group's log, as shown.
pub type GroupLine = LogRow;

impl NodeHandle {
    fn group_ctx(&self) -> Arc<Ctx> {
        self.inner.groups.clone()
    }

    async fn group_job(
        &self,
        f: impl FnOnce(&Store, &Ctx, u64) -> Outcome + Send + 'static,
    ) -> Result<Answer, NodeError> {
        let ctx = self.group_ctx();
        let now = self.next_sent_at();
        let job: Job = Box::new(move |s| f(s, &ctx, now));
        Ok(self
            .request(|reply| Request::Group { job, reply })
            .await??)
    }

    /// Makes a private group named `name` with us as creator and admin.
    pub async fn group_create(&self, name: &str) -> Result<(GroupId, String), NodeError> {
        let name = name.to_string();
        match self
            .group_job(move |s, ctx, now| ops::create(s, ctx, &name, now))
            .await?
        {
            Answer::Created(id, name) => Ok((id, name)),
            _ => Err(NodeError::Stopped),
        }
    }

    /// Invites `ids` into `group` (an admin's call: the creator issues the
    /// new state at once; another admin's request waits for the creator).
    pub async fn group_invite(&self, group: &str, ids: Vec<PeerId>) -> Result<Answer, NodeError> {
        let group = group.to_string();
        let op = Op::Add(ids.iter().map(|p| ByteBuf::from(p.to_bytes())).collect());
        self.group_job(move |s, ctx, now| ops::change(s, ctx, &resolve(s, &group)?, op, now))
            .await
    }

    /// Removes `id` from `group` (admins only); a fresh epoch secret goes
    /// to every remaining member.
    pub async fn group_remove(&self, group: &str, id: PeerId) -> Result<Answer, NodeError> {
        let group = group.to_string();
        let op = Op::Remove(id.to_bytes());
        self.group_job(move |s, ctx, now| ops::change(s, ctx, &resolve(s, &group)?, op, now))
            .await
    }

    /// Makes member `id` of `group` an admin or, `role` being
    /// [`Role::Member`], a member again (admins only; a fresh epoch like
    /// every change).
    pub async fn group_set_role(
        &self,
        group: &str,
        id: PeerId,
        role: Role,
    ) -> Result<Answer, NodeError> {
        let group = group.to_string();
        let op = Op::SetRole(id.to_bytes(), role);
        self.group_job(move |s, ctx, now| ops::change(s, ctx, &resolve(s, &group)?, op, now))
            .await
    }

    /// Leaves `group`.
    pub async fn group_leave(&self, group: &str) -> Result<Answer, NodeError> {
        let group = group.to_string();
        self.group_job(move |s, ctx, now| ops::change(s, ctx, &resolve(s, &group)?, Op::Leave, now))
            .await
    }

    /// Accepts the invitation to `group` (its id, or its name).
    pub async fn group_join(&self, group: &str) -> Result<GroupId, NodeError> {
        let group = group.to_string();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.group_job(move |s, _, _| {
            let id = resolve(s, &group)?;
            let _ = tx.send(id);
            ops::join(s, &id)
        })
        .await?;
        self.group_ctx().refresh.notify_one();
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Sends `text` to `group`; when this returns, every member's copy is
    /// in the durable outbox. Returns the message's id.
    pub async fn group_send(&self, group: &str, text: &str) -> Result<String, NodeError> {
        let (group, text) = (group.to_string(), text.to_string());
        match self
            .group_job(move |s, ctx, now| ops::send(s, ctx, &resolve(s, &group)?, &text, now))
            .await?
        {
            Answer::Sent(id) => Ok(id),
            _ => Err(NodeError::Stopped),
        }
    }

    /// The groups we are in (`joined`) or invited to.
    pub async fn group_list(&self) -> Result<Vec<GroupInfo>, NodeError> {
        self.read(|s| {
            let mut out = Vec::new();
            for (id, row) in s.groups()? {
                let Ok(st) = row.state.open() else { continue };
                if row.gone {
                    continue;
                }
                out.push(GroupInfo {
                    id,
                    name: st.name.clone(),
                    members: st.roster.len(),
                    epoch: st.epoch,
                    joined: row.joined,
                    creator: st.creator_id().unwrap_or(PeerId::random()),
                });
            }
            Ok(out)
        })
        .await
    }

    /// The members of `group` and their roles.
    pub async fn group_members(&self, group: &str) -> Result<Vec<(PeerId, Role)>, NodeError> {
        let group = group.to_string();
        let res = self
            .read(move |s| {
                Ok(resolve(s, &group).and_then(|id| {
                    let row = s.group(&id)?.ok_or(GroupOpError::UnknownGroup)?;
                    let st = row.state.open().map_err(GroupError::from)?;
                    Ok(st
                        .roster
                        .iter()
                        .filter_map(|m| Some((PeerId::from_bytes(&m.id).ok()?, m.role)))
                        .collect::<Vec<_>>())
                }))
            })
            .await?;
        Ok(res?)
    }

    /// The last `limit` lines of `group`'s log (messages and membership
    /// changes), oldest first.
    pub async fn group_log(&self, group: &str, limit: usize) -> Result<Vec<GroupLine>, NodeError> {
        let group = group.to_string();
        let res = self
            .read(move |s| Ok(resolve(s, &group).and_then(|id| Ok(s.group_log(&id, limit)?))))
            .await?;
        Ok(res?)
    }

    /// Tries to open a signed group message (`wire`, as a log line holds
    /// it) from `from` with the secrets this node holds, changing nothing:
    /// lets tests show who can read which message.
    #[cfg(feature = "test-util")]
    pub async fn group_try_open(
        &self,
        from: PeerId,
        wire: Vec<u8>,
    ) -> Result<Result<String, GroupError>, NodeError> {
        self.read(move |s| receive::try_open(s, &from, &wire)).await
    }

    /// The envelopes this node holds in mailboxes for `recipient`: what a
    /// mailbox holder can see.
    #[cfg(feature = "test-util")]
    pub async fn held_envelopes(&self, recipient: PeerId) -> Result<Vec<Envelope>, NodeError> {
        self.read(move |s| {
            Ok(s.held_for(&recipient)?
                .into_iter()
                .map(|(_, e)| e)
                .collect())
        })
        .await
    }

    /// Sends a group message claiming `claimed` as its sender, sealed
    /// under `claimed`'s chain (every member can derive it) and signed
    /// with our own key: what a member impersonating another would send.
    #[cfg(feature = "test-util")]
    pub async fn group_send_forged(
        &self,
        group: &str,
        claimed: PeerId,
        text: &str,
    ) -> Result<(), NodeError> {
        let (group, text) = (group.to_string(), text.to_string());
        self.group_job(move |s, ctx, now| {
            ops::send_forged(s, ctx, &resolve(s, &group)?, &claimed, &text, now)
        })
        .await?;
        Ok(())
    }
}

impl From<GroupOpError> for NodeError {
    fn from(e: GroupOpError) -> Self {
        NodeError::Group(e)
    }
}
