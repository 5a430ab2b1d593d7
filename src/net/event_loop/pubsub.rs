//! The event loop's side of public rooms and private groups' gossip: a
//! translator between the rooms service's [`RoomCommand`]s and gossipsub,
//! Kademlia (room records and provider records) and the history protocol,
//! and back as [`RoomEvent`]s. No rule lives here: the rooms service
//! judges every room message and record, and the groups' judge
//! ([`GroupJudge`], installed by the groups' actor) every group message.

use std::collections::{HashMap, HashSet};

use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, PublishError, TopicHash};
use libp2p::kad::store::RecordStore;
use libp2p::kad::{self, GetProvidersOk, GetRecordOk, PeerRecord, ProviderRecord, QueryId, Quorum};
use libp2p::{PeerId, request_response};
use tokio::sync::oneshot;
use tracing::debug;

use super::rpc::{Pending, route_rpc};
use super::{EventLoop, NetEvent};
use crate::net::pubsub::{GROUP_TOPIC_PREFIX, GroupJudge, RoomCommand, RoomEvent};
use crate::net::ratelimit::RateLimiter;
use crate::wire::room::{HistoryRequest, HistoryResponse, is_room_key};

type Values = Vec<(Option<PeerId>, Vec<u8>)>;

/// Queries and requests under way for the rooms service, and the
/// groups' judge.
pub(in crate::net) struct RoomsPending {
    records: HashMap<QueryId, (Values, oneshot::Sender<Values>)>,
    puts: HashMap<QueryId, oneshot::Sender<Result<(), String>>>,
    providers: HashMap<QueryId, (HashSet<PeerId>, oneshot::Sender<Vec<PeerId>>)>,
    history: Pending<HistoryResponse>,
    /// History requests per peer: each answer costs a store read.
    history_limit: RateLimiter,
    /// The verdict on the private groups' gossip, once installed.
    group_judge: Option<GroupJudge>,
}

impl Default for RoomsPending {
    fn default() -> Self {
        Self {
            records: HashMap::new(),
            puts: HashMap::new(),
            providers: HashMap::new(),
            history: HashMap::new(),
            history_limit: RateLimiter::new(2.0, 20.0),
            group_judge: None,
        }
    }
}

impl RoomsPending {
    /// Whether query `id` is one of ours.
    pub(super) fn owns(&self, id: &QueryId) -> bool {
        self.records.contains_key(id)
            || self.puts.contains_key(id)
            || self.providers.contains_key(id)
    }
}

impl EventLoop {
    pub(super) fn on_room_command(&mut self, cmd: RoomCommand) {
        let b = self.swarm.behaviour_mut();
        match cmd {
            RoomCommand::Subscribe { topic, reply } => {
                let res = b.pubsub.subscribe(&IdentTopic::new(topic));
                let _ = reply.send(res.map(|_| ()).map_err(|e| e.to_string()));
            }
            RoomCommand::Unsubscribe { topic } => {
                b.pubsub.unsubscribe(&IdentTopic::new(topic));
            }
            RoomCommand::Publish { topic, data, reply } => {
                let res = match b.pubsub.publish(IdentTopic::new(topic), data) {
                    Ok(_) => Ok(true),
                    Err(PublishError::NoPeersSubscribedToTopic) => Ok(false),
                    Err(e) => Err(e.to_string()),
                };
                let _ = reply.send(res);
            }
            RoomCommand::Report { id, from, verdict } => {
                b.pubsub
                    .report_message_validation_result(&id, &from, verdict);
            }
            RoomCommand::JudgeGroups(judge) => self.rooms_pending.group_judge = Some(judge),
            RoomCommand::TopicPeers { topic, reply } => {
                let hash = TopicHash::from_raw(topic);
                let peers = b
                    .pubsub
                    .all_peers()
                    .filter(|(_, topics)| topics.contains(&&hash))
                    .map(|(p, _)| *p)
                    .collect();
                let _ = reply.send(peers);
            }
            RoomCommand::GetRecords { key, reply } => {
                let id = b.kad.get_record(key);
                self.rooms_pending.records.insert(id, (Vec::new(), reply));
            }
            RoomCommand::PutRecord { key, value, reply } => {
                let record = kad::Record::new(key, value);
                match b.kad.put_record(record, Quorum::One) {
                    Ok(id) => {
                        self.rooms_pending.puts.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
            RoomCommand::Provide { key } => {
                if let Err(e) = b.kad.start_providing(key) {
                    debug!("cannot provide a room key: {e}");
                }
            }
            RoomCommand::Unprovide { key } => b.kad.stop_providing(&key),
            RoomCommand::Providers { key, reply } => {
                let id = b.kad.get_providers(key);
                self.rooms_pending
                    .providers
                    .insert(id, (HashSet::new(), reply));
            }
            RoomCommand::History {
                peer,
                request,
                reply,
            } => {
                let id = b.room_history.send_request(&peer, request);
                self.rooms_pending.history.insert(id, reply);
            }
            RoomCommand::HistoryRespond { channel, response } => {
                let _ = b.room_history.send_response(channel, response);
            }
        }
    }

    /// Has a private group's gossip judged here ([`GroupJudge`]) and
    /// hands a public room's to the rooms service for its verdict; when
    /// the service is behind, the message is ignored at once (not
    /// forwarded, nobody penalised) rather than left in gossipsub's cache.
    pub(super) fn on_pubsub(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message {
            propagation_source: from,
            message_id: id,
            message,
        } = event
        else {
            return;
        };
        let topic = message.topic.into_string();
        let verdict = if topic.starts_with(GROUP_TOPIC_PREFIX) {
            match &mut self.rooms_pending.group_judge {
                // A judge that panics on some input costs that message,
                // not the network task.
                Some(judge) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    (judge.0)(from, topic, message.data)
                }))
                .unwrap_or_else(|_| {
                    tracing::warn!("the groups' judge panicked; a gossip message ignored");
                    MessageAcceptance::Ignore
                }),
                None => MessageAcceptance::Ignore,
            }
        } else {
            let ev = NetEvent::Rooms(RoomEvent::Message {
                from,
                id: id.clone(),
                topic,
                data: message.data,
            });
            if self.net_events.try_send(ev).is_ok() {
                return;
            }
            debug!("rooms service busy; ignoring a gossip message");
            MessageAcceptance::Ignore
        };
        self.swarm
            .behaviour_mut()
            .pubsub
            .report_message_validation_result(&id, &from, verdict);
    }

    pub(super) fn on_room_history(
        &mut self,
        event: request_response::Event<HistoryRequest, HistoryResponse>,
    ) {
        route_rpc(
            event,
            &mut self.rooms_pending.history,
            &mut self.rooms_pending.history_limit,
            &self.net_events,
            |peer, request, channel| {
                NetEvent::Rooms(RoomEvent::HistoryRequest {
                    peer,
                    request,
                    channel,
                })
            },
        );
    }

    /// A peer announces itself as a provider: kept only under room keys
    /// (Kademlia has checked that the provider is the peer that sent it).
    pub(super) fn on_add_provider(&mut self, record: ProviderRecord) {
        if !is_room_key(&record.key) {
            return;
        }
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .kad
            .store_mut()
            .add_provider(record)
        {
            debug!("provider record not stored: {e}");
        }
    }

    /// A step of one of the rooms service's queries.
    pub(super) fn on_room_query(&mut self, id: QueryId, result: kad::QueryResult, last: bool) {
        let p = &mut self.rooms_pending;
        match result {
            kad::QueryResult::GetRecord(res) => {
                let done = last || res.is_err();
                if let Some((values, _)) = p.records.get_mut(&id)
                    && let Ok(GetRecordOk::FoundRecord(PeerRecord { peer, record })) = res
                {
                    values.push((peer, record.value));
                }
                if done && let Some((values, reply)) = p.records.remove(&id) {
                    let _ = reply.send(values);
                }
            }
            kad::QueryResult::GetProviders(res) => {
                let done = last || res.is_err();
                if let Some((found, _)) = p.providers.get_mut(&id)
                    && let Ok(GetProvidersOk::FoundProviders { providers, .. }) = res
                {
                    found.extend(providers);
                }
                if done && let Some((found, reply)) = p.providers.remove(&id) {
                    let _ = reply.send(found.into_iter().collect());
                }
            }
            kad::QueryResult::PutRecord(res) => {
                if let Some(reply) = p.puts.remove(&id) {
                    let _ = reply.send(res.map(|_| ()).map_err(|e| e.to_string()));
                }
            }
            _ => {}
        }
    }
}
