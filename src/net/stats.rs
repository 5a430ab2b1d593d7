//! Process-wide counts of what the nodes' tasks wake up for: swarm events
//! by kind, commands by kind, timer firings by machine.
//!
//! Why: an idle network must cost close to nothing, and what keeps one busy
//! is found by counting, not by timing (CPU figures are noisy on a shared
//! machine; counts are not). The swarm bench runs hundreds of nodes in one
//! process and divides these totals by the node count and the window's
//! minutes. Each count is one relaxed atomic add, so they stay on in every
//! build.

use std::sync::atomic::{AtomicU64, Ordering};

/// What a count counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Kind {
    /// A connection opened (either side).
    ConnOpened,
    /// A connection closed (either side).
    ConnClosed,
    /// An outgoing dial failed.
    DialFailed,
    /// Kademlia served a request of a peer.
    KadInbound,
    /// A Kademlia query step: bootstrap (bucket refresh).
    KadBootstrap,
    /// A Kademlia query step: closest peers.
    KadClosest,
    /// A Kademlia query step: get record.
    KadGetRecord,
    /// A Kademlia query step: put record.
    KadPutRecord,
    /// A Kademlia query step of another kind.
    KadOtherQuery,
    /// Kademlia's routing table changed (peer added or updated).
    KadRoutingUpdated,
    /// Any other Kademlia event.
    KadOther,
    /// Identify: a peer's info received.
    IdentifyReceived,
    /// Identify: ours sent or pushed.
    IdentifySent,
    /// An AutoNAT v2 probe result.
    AutoNat,
    /// A mailbox request-response event.
    MailboxRpc,
    /// A presence request-response event.
    PresenceRpc,
    /// A relay, hole-punch, UPnP or mDNS event.
    ReachEvent,
    /// Any other swarm event.
    OtherSwarm,
    /// Command: a locator lookup.
    CmdFind,
    /// Command: a dial.
    CmdDial,
    /// Command: closest peers of a key (mailbox placement).
    CmdClosest,
    /// Command: a mailbox request sent.
    CmdMailbox,
    /// Command: a presence request sent (subscribe, renew, unsubscribe).
    CmdPresence,
    /// Command: a presence notify fan-out.
    CmdNotify,
    /// Command: an answer to a request.
    CmdRespond,
    /// Command: anything else.
    CmdOther,
    /// Timer: the locator machine's.
    TimerLocator,
    /// Timer: lasting connections.
    TimerLasting,
    /// Timer: reachability.
    TimerReach,
    /// Timer: the presence service's.
    TimerPresence,
    /// Timer: the messenger's (outbox, fetcher).
    TimerMessenger,
    /// Timer: the mailbox holder machine's.
    TimerHolder,
    /// The mailbox holder told of a new peer.
    HolderNewPeer,
    /// A gossipsub event: a message, a peer (un)subscribed.
    Gossip,
    /// Command: gossipsub (subscribe, publish, a verdict, topic peers) or
    /// the public rooms' DHT and history.
    CmdRooms,
    /// A roster member dialled by the large-group fast path because its
    /// topic has few peers.
    GroupDial,
    /// A large group's catch-up answered: the messages a member lacked,
    /// relayed to it (`node::groups::sync`).
    GroupSync,
    /// An outbound message link (`/roost/msg/1` stream) set up.
    MsgLink,
    /// A presence push stream (`/roost/presence-push/1`) opened to a
    /// subscriber.
    PushStream,
    /// A presence change read off a push stream.
    PushReceived,
    /// A closest-peers lookup for a fetch of our own mailbox.
    LookupFetch,
    /// Of those: the first since start-up.
    LookupFetchStart,
    /// Of those: after a new peer that may hold our mail.
    LookupFetchReach,
    /// Of those: after a holder not already silent did not answer.
    LookupFetchUnanswered,
    /// Of those: after the routing table grew by a few peers.
    LookupFetchGrown,
    /// Of those: the last one found too few peers for a neighbourhood.
    LookupFetchSmall,
    /// Of those: the last one had grown old.
    LookupFetchAged,
    /// A fetch from one mailbox holder that got no page: an error, a
    /// request timeout, a refusal.
    FetchFailed,
    /// A fetch from one mailbox holder that ran out of time.
    FetchDeadline,
    /// A fetch from one mailbox holder that ended because we could not
    /// open or store its page.
    FetchUnfiled,
    /// A closest-peers lookup for a holder's hand-off pass.
    LookupHandoff,
    /// A closest-peers lookup for a deposit with an offline peer's holders.
    LookupDeposit,
}

/// Every kind, in order, with the name the bench prints.
pub const KINDS: [(Kind, &str); 52] = [
    (Kind::ConnOpened, "conn_opened"),
    (Kind::ConnClosed, "conn_closed"),
    (Kind::DialFailed, "dial_failed"),
    (Kind::KadInbound, "kad_inbound"),
    (Kind::KadBootstrap, "kad_bootstrap_step"),
    (Kind::KadClosest, "kad_closest_step"),
    (Kind::KadGetRecord, "kad_get_record_step"),
    (Kind::KadPutRecord, "kad_put_record_step"),
    (Kind::KadOtherQuery, "kad_other_query_step"),
    (Kind::KadRoutingUpdated, "kad_routing_updated"),
    (Kind::KadOther, "kad_other"),
    (Kind::IdentifyReceived, "identify_received"),
    (Kind::IdentifySent, "identify_sent"),
    (Kind::AutoNat, "autonat_probe"),
    (Kind::MailboxRpc, "mailbox_rpc_event"),
    (Kind::PresenceRpc, "presence_rpc_event"),
    (Kind::ReachEvent, "reach_event"),
    (Kind::OtherSwarm, "other_swarm_event"),
    (Kind::CmdFind, "cmd_find"),
    (Kind::CmdDial, "cmd_dial"),
    (Kind::CmdClosest, "cmd_closest"),
    (Kind::CmdMailbox, "cmd_mailbox"),
    (Kind::CmdPresence, "cmd_presence"),
    (Kind::CmdNotify, "cmd_notify"),
    (Kind::CmdRespond, "cmd_respond"),
    (Kind::CmdOther, "cmd_other"),
    (Kind::TimerLocator, "timer_locator"),
    (Kind::TimerLasting, "timer_lasting"),
    (Kind::TimerReach, "timer_reach"),
    (Kind::TimerPresence, "timer_presence"),
    (Kind::TimerMessenger, "timer_messenger"),
    (Kind::TimerHolder, "timer_holder"),
    (Kind::HolderNewPeer, "holder_new_peer"),
    (Kind::Gossip, "gossip_event"),
    (Kind::CmdRooms, "cmd_rooms"),
    (Kind::GroupDial, "group_dial"),
    (Kind::GroupSync, "group_sync"),
    (Kind::MsgLink, "msg_link"),
    (Kind::PushStream, "presence_push_stream"),
    (Kind::PushReceived, "presence_push_received"),
    (Kind::LookupFetch, "lookup_fetch"),
    (Kind::LookupFetchStart, "lookup_fetch_start"),
    (Kind::LookupFetchReach, "lookup_fetch_reach"),
    (Kind::LookupFetchUnanswered, "lookup_fetch_unanswered"),
    (Kind::LookupFetchGrown, "lookup_fetch_grown"),
    (Kind::LookupFetchSmall, "lookup_fetch_small"),
    (Kind::LookupFetchAged, "lookup_fetch_aged"),
    (Kind::FetchFailed, "fetch_holder_failed"),
    (Kind::FetchDeadline, "fetch_holder_deadline"),
    (Kind::FetchUnfiled, "fetch_unfiled"),
    (Kind::LookupHandoff, "lookup_handoff"),
    (Kind::LookupDeposit, "lookup_deposit"),
];

static COUNTS: [AtomicU64; KINDS.len()] = [const { AtomicU64::new(0) }; KINDS.len()];

/// Counts one `kind`.
pub fn count(kind: Kind) {
    COUNTS[kind as usize].fetch_add(1, Ordering::Relaxed);
}

/// Every count so far, by name, for benches (all nodes of the process).
#[doc(hidden)]
pub fn snapshot() -> Vec<(&'static str, u64)> {
    KINDS
        .iter()
        .map(|(k, name)| (*name, COUNTS[*k as usize].load(Ordering::Relaxed)))
        .collect()
}

/// The kind of a swarm event, for [`count`].
pub(crate) fn of_swarm_event(
    event: &libp2p::swarm::SwarmEvent<super::behaviour::BehaviourEvent>,
) -> Kind {
    use super::behaviour::BehaviourEvent as B;
    use libp2p::kad::{Event as K, QueryResult as Q};
    use libp2p::swarm::SwarmEvent as S;
    match event {
        S::ConnectionEstablished { .. } => Kind::ConnOpened,
        S::ConnectionClosed { .. } => Kind::ConnClosed,
        S::OutgoingConnectionError { .. } => Kind::DialFailed,
        S::Behaviour(B::Kad(e)) => match e {
            K::InboundRequest { .. } => Kind::KadInbound,
            K::OutboundQueryProgressed { result, .. } => match result {
                Q::Bootstrap(_) => Kind::KadBootstrap,
                Q::GetClosestPeers(_) => Kind::KadClosest,
                Q::GetRecord(_) => Kind::KadGetRecord,
                Q::PutRecord(_) | Q::RepublishRecord(_) => Kind::KadPutRecord,
                _ => Kind::KadOtherQuery,
            },
            K::RoutingUpdated { .. } => Kind::KadRoutingUpdated,
            _ => Kind::KadOther,
        },
        S::Behaviour(B::Identify(libp2p::identify::Event::Received { .. })) => {
            Kind::IdentifyReceived
        }
        S::Behaviour(B::Identify(_)) => Kind::IdentifySent,
        S::Behaviour(B::Autonat(_)) => Kind::AutoNat,
        S::Behaviour(B::Mailbox(_)) => Kind::MailboxRpc,
        S::Behaviour(B::Presence(_)) => Kind::PresenceRpc,
        S::Behaviour(B::Pubsub(_)) => Kind::Gossip,
        S::Behaviour(_) => Kind::ReachEvent,
        _ => Kind::OtherSwarm,
    }
}

/// The kind of a command, for [`count`].
pub(crate) fn of_command(cmd: &super::command::Command) -> Kind {
    use super::command::Command as C;
    match cmd {
        C::Find { .. } => Kind::CmdFind,
        C::Dial { .. } | C::Meet { .. } => Kind::CmdDial,
        C::ClosestPeers { .. } => Kind::CmdClosest,
        C::Mailbox { .. } => Kind::CmdMailbox,
        C::Presence { .. } => Kind::CmdPresence,
        C::Notify { .. } => Kind::CmdNotify,
        C::MailboxRespond { .. } | C::PresenceRespond { .. } => Kind::CmdRespond,
        C::KeepAlive { .. } => Kind::CmdOther,
        C::Rooms(_) => Kind::CmdRooms,
        _ => Kind::CmdOther,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_listed_in_order() {
        for (i, (k, _)) in KINDS.iter().enumerate() {
            assert_eq!(*k as usize, i, "{k:?}");
        }
    }
}
