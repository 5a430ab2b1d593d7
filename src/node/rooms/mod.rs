//! Public rooms: anyone may join by name; the room's record (owner, ban
//! list) is signed by its owner and lives in the DHT under a key derived
//! from the name; members announce themselves as providers of that key,
//! find each other there and meet on a gossipsub topic; messages are
//! signed by their sender and not encrypted; members drop what the
//! owner's ban list or the per-sender rate refuses; a joiner asks members
//! for the last messages.
//!
//! The rules are pure ([`rules`]); this module is the service that drives
//! them: [`Rooms`] holds each room's state behind a lock never held across
//! an `.await`, [`NodeHandle`]'s room methods are here, the handling of
//! gossip and history requests in [`service`].

pub mod rules;
mod service;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use libp2p::PeerId;
use tokio::sync::broadcast;

pub use rules::{RoomLimits, RoomState, Verdict};
pub(crate) use service::spawn;

use super::{Event, NodeError, NodeHandle};
use crate::clock::unix_ms;
use crate::identity::Identity;
use crate::net::NetClient;
use crate::store::{RoomLogEntry, Worker};
use crate::wire::room::{self, Gossip, RoomError, RoomId, RoomRecord};

/// Why a room operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RoomFailure {
    /// Bad name, text or data.
    #[error(transparent)]
    Invalid(#[from] RoomError),
    /// No record for that name in the DHT.
    #[error("no public room is called {0:?}")]
    NoSuchRoom(String),
    /// Not a room we are in.
    #[error("not in a room called {0:?}")]
    NotJoined(String),
    /// The name belongs to another key.
    #[error("the room name {0:?} is owned by {1}")]
    NameTaken(String, PeerId),
    /// Only the owner may change the record.
    #[error("only the room's owner may ban or unban")]
    NotOwner,
    /// Over the cap of rooms or bans.
    #[error("{0}")]
    Full(String),
    /// The network refused (gossipsub).
    #[error("network: {0}")]
    Network(String),
}

/// A message shown in a room (an event on the stream).
#[derive(Debug, Clone)]
pub struct RoomMessageEvent {
    /// The room's name.
    pub name: String,
    /// The message.
    pub entry: RoomLogEntry,
}

/// A row of [`NodeHandle::rooms`].
#[derive(Debug, Clone)]
pub struct RoomSummary {
    /// Its id.
    pub id: RoomId,
    /// Its name.
    pub name: String,
    /// Members seen now (subscribed to its topic), us included.
    pub members: usize,
}

/// A row of [`NodeHandle::room_members`].
#[derive(Debug, Clone)]
pub struct RoomMember {
    /// The member's ID.
    pub id: PeerId,
    /// Whether it signs the room's record.
    pub owner: bool,
}

/// What [`NodeHandle::room_send`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Gossiped to at least one member.
    Sent,
    /// No member was there to take it; it stays in our log, where joiners
    /// find it.
    Alone,
}

impl Sent {
    /// `sent` | `alone`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Alone => "alone",
        }
    }
}

/// The rooms service's shared state.
pub(crate) struct Rooms {
    identity: Identity,
    net: NetClient,
    store: Worker,
    events: broadcast::Sender<Event>,
    limits: RoomLimits,
    state: Mutex<HashMap<RoomId, RoomState>>,
    last_sent_at: AtomicU64,
    /// Gossip frames refused (bad signature or frame, ban, rate, a record
    /// that may not replace ours): tests wait on it to know a frame was
    /// judged.
    dropped: AtomicU64,
    /// Told when a room is entered: the upkeep runs only while we are in
    /// a room, so an idle node with none does not wake for it.
    entered: tokio::sync::Notify,
}

impl Rooms {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, RoomState>> {
        // A panic while holding it leaves plain data behind: go on with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The room `room` names (an id or a name), if we are in it.
    fn resolve(&self, room: &str) -> Result<(RoomId, String), RoomFailure> {
        let state = self.lock();
        let id = RoomId::parse(room)
            .filter(|id| state.contains_key(id))
            .map(Ok)
            .unwrap_or_else(|| RoomId::of_name(room))?;
        state
            .get(&id)
            .map(|s| (id, s.name.clone()))
            .ok_or_else(|| RoomFailure::NotJoined(room.to_string()))
    }

    fn emit(&self, name: &str, entry: RoomLogEntry) {
        let _ = self.events.send(Event::Room(RoomMessageEvent {
            name: name.to_string(),
            entry,
        }));
    }

    fn next_sent_at(&self) -> u64 {
        let now = unix_ms();
        let step = |prev: u64| Some(now.max(prev + 1));
        let prev = self
            .last_sent_at
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, step)
            .unwrap_or(now);
        now.max(prev + 1)
    }

    /// The record of `name` that counts in the DHT now, if any.
    async fn lookup(&self, id: RoomId) -> Result<Option<RoomRecord>, NodeError> {
        let key = id.record_key();
        let values: Vec<Vec<u8>> = self
            .net
            .get_records(key.clone())
            .await?
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        Ok(rules::pick_record(&key, &values))
    }

    /// Puts a record of ours in the DHT; no holder taking it is only
    /// logged (we hold it ourselves, and republish).
    async fn put(&self, record: &RoomRecord) -> Result<(), NodeError> {
        if let Err(e) = self
            .net
            .put_record(record.id.record_key(), record.raw.clone())
            .await?
        {
            tracing::debug!(room = %record.name, "room record put incomplete: {e}");
        }
        Ok(())
    }

    async fn publish(&self, id: RoomId, frame: &Gossip) -> Result<Sent, NodeError> {
        let data = crate::wire::encode(frame)
            .map_err(RoomError::from)
            .map_err(RoomFailure::from)?;
        match self.net.publish(id.topic(), data).await? {
            Ok(true) => Ok(Sent::Sent),
            Ok(false) => Ok(Sent::Alone),
            Err(e) => Err(RoomFailure::Network(e).into()),
        }
    }
}

impl NodeHandle {
    fn rooms_svc(&self) -> &std::sync::Arc<Rooms> {
        &self.inner.rooms
    }

    /// Creates the public room `name`, owned by us: its signed record goes
    /// into the DHT, and we join it. A name whose record another key signed
    /// is refused; a room of ours is simply joined again.
    pub async fn room_create(&self, name: &str) -> Result<(RoomId, String), NodeError> {
        let svc = self.rooms_svc();
        let name = room::normalize(name).map_err(RoomFailure::from)?;
        let id = RoomId::of_name(&name).map_err(RoomFailure::from)?;
        let record = match svc.lookup(id).await? {
            Some(r) if r.owner != self.peer_id() => {
                return Err(RoomFailure::NameTaken(name, r.owner).into());
            }
            Some(r) => r,
            None => room::sign_record(&svc.identity, &name, unix_ms(), 1, &[])
                .map_err(RoomFailure::from)?,
        };
        svc.put(&record).await?;
        service::enter(svc, id, name.clone(), Some(record)).await?;
        Ok((id, name))
    }

    /// Joins the public room `name` (or of id `name`, as `list` shows it),
    /// found by its record in the DHT: we meet members through the DHT's
    /// provider records and ask them for the last messages.
    pub async fn room_join(&self, name: &str) -> Result<(RoomId, String), NodeError> {
        let svc = self.rooms_svc();
        if let Some(id) = RoomId::parse(name) {
            // An id names one record, and the record names the room; a
            // 64-digit name with no record under it is tried as a name.
            if let Some(record) = svc.lookup(id).await? {
                let name = record.name.clone();
                if !svc.lock().contains_key(&id) {
                    service::enter(svc, id, name.clone(), Some(record)).await?;
                }
                return Ok((id, name));
            }
        }
        let name = room::normalize(name).map_err(RoomFailure::from)?;
        let id = RoomId::of_name(&name).map_err(RoomFailure::from)?;
        if svc.lock().contains_key(&id) {
            return Ok((id, name));
        }
        let record = svc
            .lookup(id)
            .await?
            .ok_or_else(|| RoomFailure::NoSuchRoom(name.clone()))?;
        service::enter(svc, id, name.clone(), Some(record)).await?;
        Ok((id, name))
    }

    /// Leaves a room: no more gossip, no more provider record, its log
    /// forgotten.
    pub async fn room_leave(&self, room: &str) -> Result<(), NodeError> {
        let svc = self.rooms_svc();
        let (id, _) = svc.resolve(room)?;
        svc.lock().remove(&id);
        svc.net.unsubscribe(id.topic()).await?;
        svc.net.unprovide(id.record_key()).await?;
        svc.store.run(move |s| s.room_leave(&id)).await?;
        Ok(())
    }

    /// Signs `text` and gossips it to the room; stored in our own log
    /// first. Our own node does not judge our messages (bans and rates are
    /// the other members' rules).
    pub async fn room_send(&self, room: &str, text: &str) -> Result<(String, Sent), NodeError> {
        let svc = self.rooms_svc();
        let (id, name) = svc.resolve(room)?;
        let m = room::sign_message(&svc.identity, id, svc.next_sent_at(), text)
            .map_err(RoomFailure::from)?;
        if let Some(s) = svc.lock().get_mut(&id) {
            s.see(&m.id);
        }
        let entry = RoomLogEntry::from(&m);
        let stored = entry.clone();
        svc.store.run(move |s| s.room_add(&stored)).await?;
        svc.emit(&name, entry);
        let sent = svc.publish(id, &Gossip::Msg(m.raw.into())).await?;
        Ok((m.id, sent))
    }

    /// The last `limit` messages of a room, oldest first.
    pub async fn room_log(&self, room: &str, limit: usize) -> Result<Vec<RoomLogEntry>, NodeError> {
        let svc = self.rooms_svc();
        let (id, _) = svc.resolve(room)?;
        Ok(svc.store.run(move |s| s.room_log(&id, limit)).await?)
    }

    /// The rooms we are in.
    pub async fn rooms(&self) -> Result<Vec<RoomSummary>, NodeError> {
        let svc = self.rooms_svc();
        let list: Vec<(RoomId, String)> = svc
            .lock()
            .iter()
            .map(|(id, s)| (*id, s.name.clone()))
            .collect();
        let mut out = Vec::with_capacity(list.len());
        for (id, name) in list {
            let members = svc.net.topic_peers(id.topic()).await?.len() + 1;
            out.push(RoomSummary { id, name, members });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The members of a room we see now: us, and the peers whose gossipsub
    /// subscription to its topic reached us (connected members; others
    /// farther off in the mesh are not seen).
    pub async fn room_members(&self, room: &str) -> Result<Vec<RoomMember>, NodeError> {
        let svc = self.rooms_svc();
        let (id, _) = svc.resolve(room)?;
        let owner = svc.lock().get(&id).and_then(|s| s.owner());
        let mut ids = vec![self.peer_id()];
        ids.extend(svc.net.topic_peers(id.topic()).await?);
        Ok(ids
            .into_iter()
            .map(|id| RoomMember {
                id,
                owner: Some(id) == owner,
            })
            .collect())
    }

    /// Bans (`ban`) or unbans `peer` in a room we own: a new record with a
    /// higher seq goes into the DHT and is pushed to the members.
    pub async fn room_ban(&self, room: &str, peer: PeerId, ban: bool) -> Result<(), NodeError> {
        let svc = self.rooms_svc();
        let (id, name) = svc.resolve(room)?;
        let record = {
            let state = svc.lock();
            let cur = state
                .get(&id)
                .and_then(|s| s.record.clone())
                .ok_or(RoomFailure::NotOwner)?;
            if cur.owner != self.peer_id() {
                return Err(RoomFailure::NotOwner.into());
            }
            let mut bans = cur.bans.clone();
            bans.retain(|p| *p != peer);
            if ban {
                bans.push(peer);
            }
            room::sign_record(&svc.identity, &name, cur.created_at, cur.seq + 1, &bans).map_err(
                |e| match e {
                    RoomError::TooManyBans => RoomFailure::Full(e.to_string()),
                    e => RoomFailure::Invalid(e),
                },
            )?
        };
        if let Some(s) = svc.lock().get_mut(&id) {
            s.apply_record(record.clone()).map_err(RoomFailure::from)?;
        }
        let raw = record.raw.clone();
        svc.store.run(move |s| s.room_set_record(&id, &raw)).await?;
        svc.put(&record).await?;
        svc.publish(id, &Gossip::Record(record.raw.into())).await?;
        Ok(())
    }

    /// How many gossip frames this node has refused (gossipsub `Reject`).
    #[cfg(feature = "test-util")]
    pub fn room_dropped(&self) -> u64 {
        self.rooms_svc().dropped.load(Ordering::Relaxed)
    }

    /// Publishes raw bytes on a room's topic, bypassing every check of
    /// ours: lets tests play a hostile member.
    #[cfg(feature = "test-util")]
    pub async fn room_publish_raw(&self, room: &str, data: Vec<u8>) -> Result<Sent, NodeError> {
        let svc = self.rooms_svc();
        let (id, _) = svc.resolve(room)?;
        match svc.net.publish(id.topic(), data).await? {
            Ok(true) => Ok(Sent::Sent),
            Ok(false) => Ok(Sent::Alone),
            Err(e) => Err(RoomFailure::Network(e).into()),
        }
    }

    /// The keys a room's record bans, as this node knows it: tests wait
    /// for a ban to reach a member before checking what it drops.
    #[cfg(feature = "test-util")]
    pub fn room_bans(&self, room: &str) -> Result<Vec<PeerId>, NodeError> {
        let svc = self.rooms_svc();
        let (id, _) = svc.resolve(room)?;
        Ok(svc
            .lock()
            .get(&id)
            .and_then(|s| s.record.as_ref().map(|r| r.bans.clone()))
            .unwrap_or_default())
    }
}
