//! The network side of public rooms and private groups' gossip:
//! gossipsub as roost configures it, the commands and events that cross
//! between the network task and the rooms service (`node::rooms`), the
//! judge the groups' actor installs ([`GroupJudge`]), and [`NetClient`]'s
//! methods for them. The network task only translates
//! (`event_loop/pubsub.rs`); every rule (signatures, bans, rate limits,
//! which record wins) is the services'.

use std::time::Duration;

use libp2p::PeerId;
use libp2p::gossipsub::{
    self, AllowAllSubscriptionFilter, MaxCountSubscriptionFilter, MessageAcceptance,
    MessageAuthenticity, MessageId, ValidationMode,
};
use libp2p::kad::RecordKey;
use libp2p::request_response::ResponseChannel;
use tokio::sync::oneshot;

use super::{Command, NetClient, RequestError};
use crate::wire::room::{HistoryRequest, HistoryResponse, MAX_GOSSIP_BYTES};

/// Most topics a remote peer may be subscribed to in our view of it, and
/// most subscriptions one of its frames may carry: gossipsub keeps state
/// per (peer, topic), so the count must be capped.
pub const MAX_PEER_TOPICS: usize = 100;

/// Gossipsub's `mesh_n`: the peers a node keeps in its mesh per topic,
/// to which it publishes and forwards. Smaller than gossipsub's 6: in a
/// 1000-member group on two cores, every copy a mesh peer forwards wakes
/// a connection task that polls all of its protocols' handlers, and a
/// mesh of 4 brought the message to every member sooner (docs/rooms.md,
/// "What it costs").
pub const MESH_N: usize = 4;
/// Gossipsub's `mesh_n_low`: below this many mesh peers its heartbeat
/// grafts more; the groups' fast path dials members while it sees fewer
/// (`node::groups::fast_limits`).
pub const MESH_N_LOW: usize = 3;
/// Gossipsub's `mesh_n_high`: above this many its heartbeat prunes.
pub const MESH_N_HIGH: usize = 6;
/// Gossipsub's `mesh_outbound_min`: mesh peers we dialled ourselves, so
/// peers dialling in cannot fill a mesh on their own; at most half of
/// [`MESH_N`] and below [`MESH_N_LOW`], as gossipsub requires.
pub const MESH_OUTBOUND_MIN: usize = 1;

/// Prefix of every private group's topic (`node::groups::fast`), so the
/// network task and the message id tell them from the public rooms'.
pub const GROUP_TOPIC_PREFIX: &str = "roost/group/";

/// A gossip message's id: its topic's and content's, so one message is
/// one message whichever peer forwards it. Gossipsub carries no author of
/// its own ([`pubsub`]): every frame's author is the signature inside it,
/// so bytes re-published by another peer are the very message, and
/// sharing its id is right.
pub fn gossip_id(topic: &str, data: &[u8]) -> MessageId {
    let mut h = blake3::Hasher::new_derive_key("roost gossip id v2");
    h.update(&(topic.len() as u64).to_be_bytes());
    h.update(topic.as_bytes());
    h.update(data);
    MessageId::from(hex::encode(&h.finalize().as_bytes()[..16]))
}

/// Gossipsub with roost's settings; its streams do not keep a connection
/// open ([`super::gossip_idle`]) and its heartbeat sleeps while we follow
/// no topic ([`super::quiet`]).
pub type Pubsub = super::quiet::Quiet<super::gossip_idle::GossipIdle, super::quiet::NoTopics>;

/// Gossipsub's settings, as [`pubsub`] builds it.
fn config() -> Result<gossipsub::Config, String> {
    gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Anonymous)
        .validate_messages()
        // Our payload plus gossipsub's envelope (the topic, framing).
        .max_transmit_size(MAX_GOSSIP_BYTES + 1024)
        .message_id_fn(|m| gossip_id(m.topic.as_str(), &m.data))
        // The first heartbeat builds the mesh; 5 s (the default) is a long
        // wait for a joiner's first forwarded message.
        .heartbeat_initial_delay(Duration::from_millis(500))
        .mesh_n(MESH_N)
        .mesh_n_low(MESH_N_LOW)
        .mesh_n_high(MESH_N_HIGH)
        .mesh_outbound_min(MESH_OUTBOUND_MIN)
        // A publisher sends to its mesh (MESH_N peers), not to every
        // subscriber it is connected to: a large group's sender pays
        // O(message size), whatever the number of members.
        .flood_publish(false)
        .build()
        .map_err(|e| e.to_string())
}

/// Builds gossipsub: a mesh of [`MESH_N`], frames without gossipsub's
/// own author, sequence number or signature (`Anonymous`), nothing
/// forwarded before the rooms service or the groups' fast path has
/// checked it (`validate_messages`), a frame limit just above the
/// largest room message, and ids from the content ([`gossip_id`]).
///
/// Every frame roost gossips is signed inside by its author (a room's
/// message and record, a group's message), and the services check that
/// signature before anything is forwarded. Gossipsub's `Strict` mode
/// would sign each frame a second time and check that signature on
/// every copy a mesh peer forwards, duplicates included, before its
/// duplicate check: in a large group, four to six checks per node and
/// message for nothing the inner one does not prove, and 110 bytes more
/// per copy.
pub fn pubsub() -> Result<Pubsub, String> {
    let config = config()?;
    let filter = MaxCountSubscriptionFilter {
        filter: AllowAllSubscriptionFilter {},
        max_subscribed_topics: MAX_PEER_TOPICS,
        max_subscriptions_per_request: MAX_PEER_TOPICS,
    };
    gossipsub::Behaviour::new_with_subscription_filter(
        MessageAuthenticity::Anonymous,
        config,
        filter,
    )
    .map(|g| {
        super::quiet::Quiet::new(
            super::gossip_idle::GossipIdle::new(g),
            super::quiet::NoTopics,
        )
    })
    .map_err(str::to_string)
}

/// Judges gossip on private groups' topics ([`GROUP_TOPIC_PREFIX`]) in
/// the network task itself, as gossipsub hands each message over (the
/// sender that forwarded it, the topic, the bytes): its verdict goes back
/// to gossipsub at once, so a hop of a large group's message waits for
/// no other task to be scheduled. The rule is the caller's (the node's
/// groups service installs it, [`NetClient::judge_groups`]); until one is
/// installed, such gossip is ignored.
pub struct GroupJudge(pub Box<dyn FnMut(PeerId, String, Vec<u8>) -> MessageAcceptance + Send>);

impl std::fmt::Debug for GroupJudge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupJudge")
    }
}

/// What the rooms service asks of the network task.
#[derive(Debug)]
pub enum RoomCommand {
    /// Join a gossipsub topic.
    Subscribe {
        /// The topic.
        topic: String,
        /// `Err` if gossipsub refused.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Leave a gossipsub topic.
    Unsubscribe {
        /// The topic.
        topic: String,
    },
    /// Publish on a topic; `Ok(false)`: nobody to send it to.
    Publish {
        /// The topic.
        topic: String,
        /// The frame.
        data: Vec<u8>,
        /// Whether it went out.
        reply: oneshot::Sender<Result<bool, String>>,
    },
    /// The verdict on a message gossipsub handed us ([`RoomEvent::Message`]).
    Report {
        /// Its id.
        id: MessageId,
        /// Who forwarded it.
        from: PeerId,
        /// Forward it, or drop it (and penalise the forwarder).
        verdict: MessageAcceptance,
    },
    /// Judge the private groups' gossip with this from now on.
    JudgeGroups(GroupJudge),
    /// Peers we know to be subscribed to `topic`.
    TopicPeers {
        /// The topic.
        topic: String,
        /// Them.
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    /// Every value the DHT holds under `key` (unvalidated), gathered until
    /// the lookup ends.
    GetRecords {
        /// The key.
        key: RecordKey,
        /// The values and who gave each (`None`: our own store).
        reply: oneshot::Sender<Vec<(Option<PeerId>, Vec<u8>)>>,
    },
    /// Store our own record locally and at the closest peers.
    PutRecord {
        /// The key.
        key: RecordKey,
        /// The signed value.
        value: Vec<u8>,
        /// `Ok` once one peer took it.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Announce ourselves as a provider of `key` (a room member).
    Provide {
        /// The key.
        key: RecordKey,
    },
    /// Stop announcing ourselves under `key`.
    Unprovide {
        /// The key.
        key: RecordKey,
    },
    /// The providers of `key`, gathered until the lookup ends.
    Providers {
        /// The key.
        key: RecordKey,
        /// Them.
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    /// Ask `peer` for a room's last messages.
    History {
        /// Whom.
        peer: PeerId,
        /// What.
        request: HistoryRequest,
        /// The answer, or why there is none.
        reply: oneshot::Sender<Result<HistoryResponse, String>>,
    },
    /// Answer a history request.
    HistoryRespond {
        /// The request's channel.
        channel: ResponseChannel<HistoryResponse>,
        /// The answer.
        response: HistoryResponse,
    },
}

/// What the network task hands the rooms service.
#[derive(Debug)]
pub enum RoomEvent {
    /// A gossip message on a topic we subscribe to, awaiting our verdict
    /// ([`RoomCommand::Report`]).
    Message {
        /// Who forwarded it.
        from: PeerId,
        /// Its gossipsub id.
        id: MessageId,
        /// Its topic.
        topic: String,
        /// The frame.
        data: Vec<u8>,
    },
    /// A peer asks for a room's last messages.
    HistoryRequest {
        /// Authenticated by the connection.
        peer: PeerId,
        /// What it asks.
        request: HistoryRequest,
        /// Where the answer goes.
        channel: ResponseChannel<HistoryResponse>,
    },
}

impl NetClient {
    async fn room<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> RoomCommand,
    ) -> Result<T, RequestError> {
        crate::call::call(self.sender(), |reply| Command::Rooms(make(reply)))
            .await
            .map_err(|_| RequestError::Stopped)
    }

    async fn room_tell(&self, cmd: RoomCommand) -> Result<(), RequestError> {
        self.sender()
            .send(Command::Rooms(cmd))
            .await
            .map_err(|_| RequestError::Stopped)
    }

    /// Joins a gossipsub topic.
    pub async fn subscribe(&self, topic: String) -> Result<Result<(), String>, RequestError> {
        self.room(|reply| RoomCommand::Subscribe { topic, reply })
            .await
    }

    /// Leaves a gossipsub topic.
    pub async fn unsubscribe(&self, topic: String) -> Result<(), RequestError> {
        self.room_tell(RoomCommand::Unsubscribe { topic }).await
    }

    /// Publishes on a topic; `Ok(false)` when no peer was there to take it.
    pub async fn publish(
        &self,
        topic: String,
        data: Vec<u8>,
    ) -> Result<Result<bool, String>, RequestError> {
        self.room(|reply| RoomCommand::Publish { topic, data, reply })
            .await
    }

    /// Installs the judge of the private groups' gossip ([`GroupJudge`]),
    /// before any of their topics is followed: commands are taken in
    /// order, so a subscription asked for after this call finds it there.
    pub async fn judge_groups(&self, judge: GroupJudge) -> Result<(), RequestError> {
        self.room_tell(RoomCommand::JudgeGroups(judge)).await
    }

    /// Reports our verdict on a gossip message.
    pub async fn report(
        &self,
        id: MessageId,
        from: PeerId,
        verdict: MessageAcceptance,
    ) -> Result<(), RequestError> {
        self.room_tell(RoomCommand::Report { id, from, verdict })
            .await
    }

    /// Peers known to subscribe to `topic`.
    pub async fn topic_peers(&self, topic: String) -> Result<Vec<PeerId>, RequestError> {
        self.room(|reply| RoomCommand::TopicPeers { topic, reply })
            .await
    }

    /// Every value found under `key` (unvalidated: check each).
    pub async fn get_records(
        &self,
        key: RecordKey,
    ) -> Result<Vec<(Option<PeerId>, Vec<u8>)>, RequestError> {
        self.room(|reply| RoomCommand::GetRecords { key, reply })
            .await
    }

    /// Puts our own record under `key`.
    pub async fn put_record(
        &self,
        key: RecordKey,
        value: Vec<u8>,
    ) -> Result<Result<(), String>, RequestError> {
        self.room(|reply| RoomCommand::PutRecord { key, value, reply })
            .await
    }

    /// Announces us as a provider of `key`.
    pub async fn provide(&self, key: RecordKey) -> Result<(), RequestError> {
        self.room_tell(RoomCommand::Provide { key }).await
    }

    /// Stops announcing us under `key`.
    pub async fn unprovide(&self, key: RecordKey) -> Result<(), RequestError> {
        self.room_tell(RoomCommand::Unprovide { key }).await
    }

    /// The providers of `key`.
    pub async fn providers(&self, key: RecordKey) -> Result<Vec<PeerId>, RequestError> {
        self.room(|reply| RoomCommand::Providers { key, reply })
            .await
    }

    /// Asks `peer` for a room's last messages.
    pub async fn room_history(
        &self,
        peer: PeerId,
        request: HistoryRequest,
    ) -> Result<HistoryResponse, RequestError> {
        self.room(|reply| RoomCommand::History {
            peer,
            request,
            reply,
        })
        .await?
        .map_err(|reason| RequestError::Dial { peer, reason })
    }

    /// Answers a history request (fire and forget).
    pub async fn room_history_respond(
        &self,
        channel: ResponseChannel<HistoryResponse>,
        response: HistoryResponse,
    ) {
        let _ = self
            .room_tell(RoomCommand::HistoryRespond { channel, response })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_message_has_one_id_per_topic() {
        let group = format!("{GROUP_TOPIC_PREFIX}abc");
        let data = b"alice's signed message";
        let id = gossip_id(&group, data);
        assert_eq!(id, gossip_id(&group, data), "whoever gossips it");
        assert_ne!(id, gossip_id(&group, b"other"));
        assert_ne!(id, gossip_id("roost/room/xyz", data), "another topic");
        // The topic's length is hashed: moving bytes between topic and
        // data gives another id.
        assert_ne!(gossip_id("ab", b"c"), gossip_id("a", b"bc"));
    }

    #[test]
    fn the_mesh_is_roosts_not_gossipsubs_default() -> Result<(), String> {
        let c = config()?;
        assert_eq!(
            (
                c.mesh_n_low(),
                c.mesh_n(),
                c.mesh_n_high(),
                c.mesh_outbound_min()
            ),
            (MESH_N_LOW, MESH_N, MESH_N_HIGH, MESH_OUTBOUND_MIN)
        );
        assert_ne!(c.mesh_n(), gossipsub::Config::default().mesh_n());
        Ok(())
    }
}
