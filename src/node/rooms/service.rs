//! The rooms service's work: entering a room (subscribe, announce, meet
//! members, fetch history), judging what gossip brings, answering
//! joiners' history requests, and the periodic upkeep (meet members when
//! few are seen, refetch the record, the owner's republication).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use serde_bytes::ByteBuf;
use tokio::sync::{broadcast, mpsc};
use tracing::debug;

use super::rules::{self, RoomLimits, RoomState, Verdict};
use super::{RoomFailure, Rooms};
use crate::clock::unix_ms;
use crate::identity::Identity;
use crate::net::NetClient;
use crate::net::pubsub::RoomEvent;
use crate::node::lifecycle::Tasks;
use crate::node::{Event, NodeError};
use crate::store::{RoomLogEntry, Worker};
use crate::wire::room::{
    self, Gossip, HistoryRequest, HistoryResponse, MAX_HISTORY, MAX_HISTORY_RESPONSE, RoomError,
    RoomId, RoomRecord,
};

/// How often the upkeep runs while we are in a room.
const UPKEEP_EVERY: Duration = Duration::from_secs(15);
/// Below this many members seen, the upkeep looks for more.
const FEW_MEMBERS: usize = 3;
/// Most providers dialled at a time when looking for members.
const DIAL_AT_ONCE: usize = 6;
/// Most members asked for history when joining.
const ASK_HISTORY: usize = 3;
/// How long a dial or a history request may take before we go on without.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Upkeep rounds between refetches of the record from the DHT.
const REFETCH_ROUNDS: u64 = 4;
/// Upkeep rounds between the owner's republications (about 3 h, well
/// inside the holders' [`crate::net::locator::rooms::ROOM_RECORD_TTL`]).
const REPUBLISH_ROUNDS: u64 = 720;
/// Ids loaded per room at start, to spot duplicates.
const SEEN_AT_START: usize = 1000;

/// Starts the rooms service: the rooms we were in are entered again, and a
/// task handles `events` (gossip, history requests) and the upkeep.
pub(crate) fn spawn(
    identity: Identity,
    net: NetClient,
    store: Worker,
    events: broadcast::Sender<Event>,
    limits: RoomLimits,
    from_net: mpsc::Receiver<RoomEvent>,
    tasks: &Tasks,
) -> Arc<Rooms> {
    let svc = Arc::new(Rooms {
        identity,
        net,
        store,
        events,
        limits,
        state: Mutex::new(HashMap::new()),
        last_sent_at: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        entered: tokio::sync::Notify::new(),
    });
    let run = run(svc.clone(), from_net, tasks.clone());
    tasks.spawn(run);
    svc
}

async fn run(svc: Arc<Rooms>, mut from_net: mpsc::Receiver<RoomEvent>, tasks: Tasks) {
    if let Err(e) = reenter(&svc).await {
        tracing::warn!("cannot enter the rooms of the last run: {e}");
    }
    let mut upkeep = tokio::time::interval(UPKEEP_EVERY);
    // A tick missed while we were in no room comes once, not in a burst.
    upkeep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut round: u64 = 0;
    loop {
        let in_rooms = !svc.lock().is_empty();
        tokio::select! {
            ev = from_net.recv() => match ev {
                Some(ev) => on_event(&svc, ev).await,
                None => break,
            },
            _ = upkeep.tick(), if in_rooms => {
                round += 1;
                // Concurrently with the events: its lookups take seconds.
                let svc = svc.clone();
                tokio::spawn(async move {
                    if let Err(e) = upkeep_round(&svc, round).await {
                        debug!("room upkeep: {e}");
                    }
                });
            }
            // To look at `in_rooms` again; the room just entered met its
            // members itself, so its first upkeep comes a period later.
            _ = svc.entered.notified() => upkeep.reset(),
            _ = tasks.stopping() => break,
        }
    }
}

/// Enters the rooms stored from an earlier run.
async fn reenter(svc: &Arc<Rooms>) -> Result<(), NodeError> {
    let joined = svc.store.run(|s| s.rooms()).await?;
    for j in joined {
        let record = j.record.and_then(|r| room::decode_record(&r).ok());
        let id = j.id;
        let log = svc
            .store
            .run(move |s| s.room_log(&id, SEEN_AT_START))
            .await?;
        let mut st = RoomState::new(j.id, j.name, record, svc.limits);
        for e in &log {
            st.see(&e.id);
        }
        svc.lock().insert(j.id, st);
        announce(svc, j.id).await?;
    }
    Ok(())
}

async fn announce(svc: &Rooms, id: RoomId) -> Result<(), NodeError> {
    if let Err(e) = svc.net.subscribe(id.topic()).await? {
        return Err(RoomFailure::Network(e).into());
    }
    svc.net.provide(id.record_key()).await?;
    Ok(())
}

/// Joins room `id`: stored, subscribed, announced as a provider; then
/// the members found are dialled and asked for the last messages.
pub(super) async fn enter(
    svc: &Arc<Rooms>,
    id: RoomId,
    name: String,
    record: Option<RoomRecord>,
) -> Result<(), NodeError> {
    let raw = record.as_ref().map(|r| r.raw.clone());
    let n = name.clone();
    svc.store
        .run(move |s| s.room_join(&id, &n, raw.as_deref()))
        .await
        .map_err(|e| RoomFailure::Full(e.to_string()))?;
    let state = RoomState::new(id, name, record, svc.limits);
    svc.lock().entry(id).or_insert(state);
    svc.entered.notify_one();
    announce(svc, id).await?;
    let met = meet_members(svc, id).await?;
    fetch_history(svc, id, &met).await;
    Ok(())
}

/// Dials up to [`DIAL_AT_ONCE`] providers of the room's key; returns
/// those now connected.
async fn meet_members(svc: &Rooms, id: RoomId) -> Result<Vec<PeerId>, NodeError> {
    let me = svc.identity.peer_id();
    let providers = svc.net.providers(id.record_key()).await?;
    let dials = providers
        .into_iter()
        .filter(|p| *p != me)
        .take(DIAL_AT_ONCE)
        .map(|p| async move {
            let r = tokio::time::timeout(STEP_TIMEOUT, svc.net.dial(p)).await;
            matches!(r, Ok(Ok(()))).then_some(p)
        });
    Ok(futures::future::join_all(dials)
        .await
        .into_iter()
        .flatten()
        .collect())
}

/// Asks up to [`ASK_HISTORY`] of `peers` for the room's last messages and
/// stores what checks out ([`rules::merge_history`]).
async fn fetch_history(svc: &Arc<Rooms>, id: RoomId, peers: &[PeerId]) {
    let asks = peers.iter().take(ASK_HISTORY).map(|&p| async move {
        let request = HistoryRequest {
            room: ByteBuf::from(id.0.to_vec()),
            limit: MAX_HISTORY as u32,
        };
        let r = tokio::time::timeout(STEP_TIMEOUT, svc.net.room_history(p, request)).await;
        match r {
            Ok(Ok(resp)) => Some(resp),
            _ => None,
        }
    });
    let answers: Vec<HistoryResponse> = futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect();
    for a in &answers {
        if let Some(raw) = &a.record {
            let _ = take_record(svc, id, raw).await;
        }
    }
    let lists: Vec<Vec<Vec<u8>>> = answers
        .into_iter()
        .map(|a| a.messages.into_iter().map(|m| m.into_vec()).collect())
        .collect();
    let (fresh, name) = {
        let mut state = svc.lock();
        let Some(st) = state.get_mut(&id) else {
            return;
        };
        let bans = st
            .record
            .as_ref()
            .map(|r| r.bans.clone())
            .unwrap_or_default();
        let fresh = rules::merge_history(id, &bans, &lists, |m| st.has_seen(m), MAX_HISTORY);
        for m in &fresh {
            st.see(&m.id);
        }
        (fresh, st.name.clone())
    };
    for m in fresh {
        store_and_show(svc, &name, RoomLogEntry::from(&m)).await;
    }
}

async fn store_and_show(svc: &Rooms, name: &str, entry: RoomLogEntry) {
    let stored = entry.clone();
    match svc.store.run(move |s| s.room_add(&stored)).await {
        Ok(true) => svc.emit(name, entry),
        Ok(false) => {}
        Err(e) => tracing::warn!("cannot store a room message: {e}"),
    }
}

/// Takes a record a member handed us, if it replaces ours.
async fn take_record(svc: &Rooms, id: RoomId, raw: &[u8]) -> Result<bool, RoomError> {
    let record = room::validate_record(&id.record_key(), raw)?;
    let changed = match svc.lock().get_mut(&id) {
        Some(st) => st.apply_record(record)?,
        None => false,
    };
    if changed {
        let raw = raw.to_vec();
        let _ = svc.store.run(move |s| s.room_set_record(&id, &raw)).await;
    }
    Ok(changed)
}

async fn on_event(svc: &Arc<Rooms>, ev: RoomEvent) {
    match ev {
        RoomEvent::Message {
            from,
            id,
            topic,
            data,
        } => {
            let verdict = on_gossip(svc, &topic, &data).await;
            if matches!(verdict, MessageAcceptance::Reject) {
                svc.dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            report(svc, id, from, verdict).await;
        }
        RoomEvent::HistoryRequest {
            peer,
            request,
            channel,
        } => {
            let response = history_for(svc, &request).await;
            debug!(%peer, n = response.messages.len(), "answering a room history request");
            svc.net.room_history_respond(channel, response).await;
        }
    }
}

async fn report(svc: &Rooms, id: MessageId, from: PeerId, verdict: MessageAcceptance) {
    let _ = svc.net.report(id, from, verdict).await;
}

/// Judges one gossip frame; what gossipsub does with it follows.
async fn on_gossip(svc: &Rooms, topic: &str, data: &[u8]) -> MessageAcceptance {
    use MessageAcceptance::{Accept, Ignore, Reject};
    let Some(id) = topic.strip_prefix("roost/room/").and_then(RoomId::parse) else {
        return Reject;
    };
    let frame = match Gossip::decode(data) {
        Ok(f) => f,
        Err(_) => return Reject,
    };
    match frame {
        Gossip::Msg(raw) => {
            let m = match room::open_message(&raw, id) {
                Ok(m) => m,
                Err(_) => return Reject,
            };
            let (verdict, name) = {
                let mut state = svc.lock();
                let Some(st) = state.get_mut(&id) else {
                    return Ignore;
                };
                (st.judge(&m, Instant::now(), unix_ms()), st.name.clone())
            };
            match verdict {
                Verdict::Accept => {
                    store_and_show(svc, &name, RoomLogEntry::from(&m)).await;
                    Accept
                }
                Verdict::Duplicate | Verdict::FromFuture | Verdict::Stale => Ignore,
                v @ (Verdict::Banned | Verdict::OverRate) => {
                    debug!(sender = %m.sender, ?v, "dropping a room message");
                    Reject
                }
            }
        }
        // Signed by the room's owner, whoever gossips it (checked with
        // the rest by `take_record`).
        Gossip::Record(raw) => match take_record(svc, id, &raw).await {
            Ok(true) => Accept,
            Ok(false) | Err(RoomError::Stale { .. }) => Ignore,
            Err(_) => Reject,
        },
    }
}

/// Our answer to a joiner: the record we hold and the last messages of the
/// room (not of banned senders), within the answer's byte limit.
async fn history_for(svc: &Rooms, request: &HistoryRequest) -> HistoryResponse {
    let Some(id) = RoomId::from_slice(&request.room) else {
        return HistoryResponse::default();
    };
    let (record, bans) = match svc.lock().get(&id) {
        Some(st) => (
            st.record.as_ref().map(|r| r.raw.clone()),
            st.record
                .as_ref()
                .map(|r| r.bans.clone())
                .unwrap_or_default(),
        ),
        None => return HistoryResponse::default(),
    };
    let limit = (request.limit as usize).min(MAX_HISTORY);
    let log = svc
        .store
        .run(move |s| s.room_log(&id, limit))
        .await
        .unwrap_or_default();
    let mut budget = MAX_HISTORY_RESPONSE - room::MAX_RECORD_BYTES - 64;
    let mut messages: Vec<ByteBuf> = Vec::new();
    for e in log.into_iter().rev().filter(|e| !bans.contains(&e.from)) {
        let cost = e.raw.len() + 8;
        if cost > budget {
            break;
        }
        budget -= cost;
        messages.push(ByteBuf::from(e.raw));
    }
    messages.reverse();
    HistoryResponse {
        record: record.map(ByteBuf::from),
        messages,
    }
}

/// One round of upkeep over every room: look for members when few are
/// seen, refetch the record now and then, and (owner) republish it.
async fn upkeep_round(svc: &Arc<Rooms>, round: u64) -> Result<(), NodeError> {
    let ids: Vec<RoomId> = svc.lock().keys().copied().collect();
    let me = svc.identity.peer_id();
    for id in ids {
        if svc.net.topic_peers(id.topic()).await?.len() < FEW_MEMBERS {
            meet_members(svc, id).await?;
        }
        if round.is_multiple_of(REFETCH_ROUNDS)
            && let Some(found) = svc.lookup(id).await?
        {
            let _ = take_record(svc, id, &found.raw).await;
        }
        let own = svc
            .lock()
            .get(&id)
            .and_then(|s| s.record.clone())
            .filter(|r| r.owner == me);
        if round.is_multiple_of(REPUBLISH_ROUNDS)
            && let Some(r) = own
        {
            svc.put(&r).await?;
        }
    }
    Ok(())
}
