//! The large-group fast path, its pure rules (see docs/rooms.md, "Large
//! groups: gossip, then catch-up from members").
//!
//! In a group of at least [`FastConfig::threshold`] members, a message is
//! published once on a gossipsub topic only members can name (derived
//! from the epoch secret), and nothing else: no 1:1 copy, no
//! confirmation, so the sender writes the message a handful of times
//! (its mesh) whatever the group's size. A member that missed it (away,
//! or out of the mesh for a while) catches up from other members, who all
//! keep the signed message in their logs (`super::sync`).
//!
//! The store job that files a gossip message ([`take_gossip`]) runs the
//! same receive path as a 1:1 copy; the actor is `fast_service`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use libp2p::PeerId;

use super::Ctx;
use super::receive::{self, Taken};
use super::roster::{EpochView, GroupError};
use crate::store::{Relation, Store, StoreError};
use crate::wire::group::{
    GroupBody, GroupId, Header, MsgBody, SignedState, decode_body, open_message,
};

/// Prefix of every group topic, so the network task tells them from the
/// public rooms' topics.
pub const TOPIC_PREFIX: &str = crate::net::pubsub::GROUP_TOPIC_PREFIX;

/// Largest group message published on gossip: what fits in the gossipsub
/// frame roost allows (its envelope included). A larger one goes 1:1 only.
pub const MAX_GOSSIP_MESSAGE: usize = crate::wire::room::MAX_GOSSIP_BYTES;

pub use crate::config::FastConfig;

impl FastConfig {
    /// Whether a message of `len` bytes to a group of `members` takes the
    /// fast path.
    pub fn applies(&self, members: usize, len: usize) -> bool {
        members >= self.threshold && len <= MAX_GOSSIP_MESSAGE
    }
}

/// The gossipsub topic of `group`'s epoch `epoch` under its secret: only
/// members can name it, and it changes with every epoch, so a removed
/// member cannot follow the next one.
pub fn topic(secret: &[u8; 32], group: &GroupId, epoch: u64) -> String {
    let mut h = blake3::Hasher::new_derive_key("roost group topic v1");
    h.update(secret);
    h.update(&group.0);
    h.update(&epoch.to_be_bytes());
    format!("{TOPIC_PREFIX}{}", hex::encode(h.finalize().as_bytes()))
}

/// A large group's message as the send job leaves it: what the messaging
/// service publishes.
#[derive(Debug, Clone)]
pub(crate) struct Publish {
    /// The epoch's topic.
    pub(crate) topic: String,
    /// The `Body::Group` bytes.
    pub(crate) data: Vec<u8>,
}

/// What became of a gossip message.
#[derive(Debug, PartialEq, Eq)]
pub enum GossipVerdict {
    /// Taken (new or a duplicate): forward it.
    Took,
    /// Not for us now (its epoch's state has not come): not forwarded,
    /// nobody penalised.
    Ignore,
    /// Refused: not forwarded, its forwarder penalised.
    Reject(GroupError),
}

/// A gossip message that passed [`precheck`]: its signature checked once,
/// so the store job that files it ([`take_gossip`]) does not check it
/// again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The sender its header names, who signed it: its author.
    pub sender: PeerId,
    /// As signed.
    pub signed: SignedState,
    /// What [`open_message`] made of `signed`.
    pub body: MsgBody,
}

/// The checks a gossip message passes before it is forwarded or filed: a
/// group message (never a state or a request), signed by the sender its
/// header names (its author, whoever gossiped it), on the topic it
/// claims.
pub fn precheck(
    topic: &str,
    bytes: &[u8],
    topic_of: impl Fn(&Header) -> Option<String>,
) -> Result<Checked, GroupError> {
    let GroupBody::Message(signed) = decode_body(bytes)? else {
        return Err(GroupError::Malformed);
    };
    let body = open_message(&signed)?;
    let sender = PeerId::from_bytes(&body.header.sender).map_err(|_| GroupError::Malformed)?;
    if topic_of(&body.header).as_deref() != Some(topic) {
        return Err(GroupError::NotMember);
    }
    Ok(Checked {
        sender,
        signed,
        body,
    })
}

/// Files a gossip message (`bytes` on `topic`, judged [`Checked`]
/// already) through the same path as a 1:1 copy from its sender, against
/// the stored rows: the topic must be the one the stored group names for
/// its epoch. A store job. A sender we blocked is ignored, as its 1:1
/// copies are refused (`messenger::accept::decide`): nothing filed, and
/// its forwarder not penalised (it cannot know whom we block).
pub(crate) fn take_gossip(
    s: &Store,
    ctx: &Ctx,
    topic: &str,
    bytes: &[u8],
    checked: Checked,
    now: u64,
) -> Result<(GossipVerdict, Taken), StoreError> {
    let Checked {
        sender,
        signed,
        body,
    } = checked;
    if s.relation(&sender)? == Relation::Blocked {
        return Ok((GossipVerdict::Ignore, Taken::default()));
    }
    // One read of the group row (its state is the large part): the topic
    // is checked against it, and the message filed with it.
    let h = &body.header;
    let row = s.group(&h.group_id)?.filter(|row| {
        epoch_secret(row, h.epoch).is_some_and(|e| self::topic(&e, &h.group_id, h.epoch) == topic)
    });
    let Some(row) = row else {
        return Ok((
            GossipVerdict::Reject(GroupError::NotMember),
            Taken::default(),
        ));
    };
    match receive::take_checked(s, ctx, &sender, row, (bytes, &signed, body), now)? {
        Ok(t) => Ok((GossipVerdict::Took, t)),
        Err(GroupError::Later) => Ok((GossipVerdict::Ignore, Taken::default())),
        Err(e) => Ok((GossipVerdict::Reject(e), Taken::default())),
    }
}

/// The secret `row` holds for `epoch`: the previous epoch's when it is
/// that one, else the current one (a header of any other epoch then names
/// a topic we do not follow, and is refused for it).
pub(crate) fn epoch_secret(row: &crate::store::GroupRow, epoch: u64) -> Option<[u8; 32]> {
    match &row.prev {
        Some(p) if p.epoch == epoch => p.secret,
        _ => row.secret,
    }
}

/// Which topics a node should follow: the current and (within its grace)
/// previous epoch of every large group it has joined, with the group and
/// epoch each stands for. A pending invitation is not followed: its
/// roster is whatever a stranger wrote, and following it would have us
/// dial those peers and tell them we hold its secret before the user
/// accepted.
pub(crate) fn wanted_topics(
    groups: &[(GroupId, crate::store::GroupRow)],
    states: &super::opened::OpenedStates,
    cfg: &FastConfig,
    now: u64,
) -> HashMap<String, (GroupId, u64)> {
    let mut out = HashMap::new();
    for (id, row) in groups {
        if row.gone || !row.joined {
            continue;
        }
        let Ok(opened) = states.open(id, &row.state) else {
            continue;
        };
        let st = &opened.state;
        if st.roster.len() < cfg.threshold {
            continue;
        }
        if let Some(e) = row.secret {
            out.insert(topic(&e, id, st.epoch), (*id, st.epoch));
        }
        if let Some(p) = &row.prev
            && let Some(e) = p.secret
            && now < p.ended_at.saturating_add(super::roster::GRACE_MS)
        {
            out.insert(topic(&e, id, p.epoch), (*id, p.epoch));
        }
    }
    out
}

/// When the previous epoch of one of `groups` we joined stops being
/// followed (its grace ends, [`wanted_topics`]), if one still is at
/// `now`: the fast path's actor reads the groups again then.
pub(crate) fn grace_end(groups: &[(GroupId, crate::store::GroupRow)], now: u64) -> Option<u64> {
    groups
        .iter()
        .filter(|(_, row)| row.joined && !row.gone)
        .filter_map(|(_, row)| row.prev.as_ref())
        .filter(|p| p.secret.is_some())
        .map(|p| p.ended_at.saturating_add(super::roster::GRACE_MS))
        .filter(|end| now < *end)
        .min()
}

/// Whether the fast path's upkeep round at `now` reads the groups again
/// ([`wanted_topics`], [`speakers`]). Everything else that changes them
/// comes with an event or [`super::Ctx::refresh`], which the actor
/// answers at once; so a round reads them only when the last read or a
/// subscription `failed`, or a previous epoch's grace ended
/// ([`grace_end`]), not every round: each read decodes every group's
/// row, a large group's whole roster with it, on every node every 5 s.
pub(crate) fn refresh_due(failed: bool, grace_end: Option<u64>, now: u64) -> bool {
    failed || grace_end.is_some_and(|end| now >= end)
}

/// Who may speak on each followed topic, and whom we blocked, as the
/// actor keeps them in memory: a gossip message is judged with them
/// ([`judge`]) and forwarded at once, before the store job that files it
/// runs. Waiting for that job (a queue behind every other store job of
/// the node, on a thread of its own) made every hop of a large group's
/// message as slow as the node's store. The store job checks the message
/// again against the stored rows ([`take_gossip`]).
#[derive(Debug, Default)]
pub(crate) struct Speakers {
    /// Per topic followed: its group and its epoch's members.
    topics: HashMap<String, (GroupId, Arc<EpochView>)>,
    /// The keys we blocked (PeerId bytes): their messages are neither
    /// filed nor forwarded.
    blocked: HashSet<Vec<u8>>,
}

/// The [`Speakers`] of the `wanted` topics of `groups`; `blocked` are the
/// keys we blocked.
pub(crate) fn speakers(
    groups: &[(GroupId, crate::store::GroupRow)],
    states: &super::opened::OpenedStates,
    wanted: &HashMap<String, (GroupId, u64)>,
    blocked: HashSet<Vec<u8>>,
) -> Speakers {
    let rows: HashMap<&GroupId, &crate::store::GroupRow> =
        groups.iter().map(|(id, row)| (id, row)).collect();
    let mut topics = HashMap::new();
    for (topic, (group, epoch)) in wanted {
        let Some(row) = rows.get(group) else { continue };
        let Ok(opened) = states.open(group, &row.state) else {
            continue;
        };
        let view = if opened.view.epoch == *epoch {
            opened.view.clone()
        } else {
            match receive::prev_view(row) {
                Some(v) if v.epoch == *epoch => Arc::new(v),
                _ => continue,
            }
        };
        topics.insert(topic.clone(), (*group, view));
    }
    Speakers { topics, blocked }
}

/// The verdict on a gossip message on `topic`, before it is filed: taken
/// (`Ok`: forward it, then file it) when a member of the topic's epoch
/// signed it for that group and epoch; ignored on a topic we do not
/// follow or from a key we blocked; refused otherwise.
pub(crate) fn judge(
    speakers: &Speakers,
    topic: &str,
    bytes: &[u8],
) -> Result<Checked, GossipVerdict> {
    let Some((group, view)) = speakers.topics.get(topic) else {
        return Err(GossipVerdict::Ignore);
    };
    let topic_of = |h: &Header| {
        let member = view.members.contains(&h.sender);
        (h.group_id == *group && h.epoch == view.epoch && member).then(|| topic.to_string())
    };
    let checked = precheck(topic, bytes, topic_of).map_err(GossipVerdict::Reject)?;
    if speakers.blocked.contains(&checked.body.header.sender) {
        return Err(GossipVerdict::Ignore);
    }
    Ok(checked)
}

/// The topics followed after a round: of the `wanted` ones, those
/// followed `before` and those `subscribed` now. A topic whose
/// subscription failed is not recorded, so the next round tries again.
pub(crate) fn followed_after(
    wanted: HashMap<String, (GroupId, u64)>,
    before: &HashMap<String, (GroupId, u64)>,
    subscribed: &HashSet<String>,
) -> HashMap<String, (GroupId, u64)> {
    wanted
        .into_iter()
        .filter(|(t, _)| before.contains_key(t) || subscribed.contains(t))
        .collect()
}

/// Which members to dial so gossipsub can build a mesh: up to `k` roster
/// members that are neither us nor to `skip` (connected already, or
/// waiting out a failed dial), starting at a place that
/// differs per node and round, so members spread their dials over the
/// roster rather than all dialling its first entries.
pub fn pick_dials(
    roster: &[PeerId],
    me: &PeerId,
    skip: &dyn Fn(&PeerId) -> bool,
    round: u64,
    k: usize,
) -> Vec<PeerId> {
    if roster.is_empty() {
        return Vec::new();
    }
    let mut h = blake3::Hasher::new();
    h.update(&me.to_bytes());
    h.update(&round.to_be_bytes());
    let start = u64::from_be_bytes(h.finalize().as_bytes()[..8].try_into().unwrap_or([0; 8]))
        as usize
        % roster.len();
    roster
        .iter()
        .cycle()
        .skip(start)
        .take(roster.len())
        .filter(|p| *p != me && !skip(p))
        .take(k)
        .copied()
        .collect()
}

#[cfg(test)]
#[path = "fast_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "fast_store_tests.rs"]
mod store_tests;
