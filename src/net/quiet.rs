//! A behaviour whose timers sleep while it has nothing to do.
//!
//! Why: some libp2p behaviours run timers whatever the node does —
//! gossipsub's heartbeat every second, AutoNAT's probe every 5 s — so a
//! daemon with no room, no large group and no address left to test would
//! wake for them several times a second. [`Quiet`] wraps such a behaviour
//! with a [`Dormancy`] rule. While the rule says it is dormant, the
//! behaviour is polled with a waker that does nothing: whatever it queued
//! still comes out (the swarm polls every behaviour again after each event
//! it hands one), but its timers, when they fire, wake nobody and are not
//! armed again until a poll with the real waker. The first poll after the
//! rule turns (a topic joined, a candidate address to test) arms them.

use std::collections::{HashMap, HashSet};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, NewExternalAddrCandidate,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{PeerId, autonat};

/// When a wrapped behaviour's timers have nothing to do.
pub trait Dormancy<B: NetworkBehaviour> {
    /// Sees every swarm event before the behaviour does.
    fn on_swarm_event(&mut self, _event: &FromSwarm) {}
    /// Sees every event the behaviour gives the swarm.
    fn on_event(&mut self, _event: &B::ToSwarm) {}
    /// True while `inner`'s timers would find nothing to do.
    fn dormant(&self, inner: &B) -> bool;
}

/// `inner`, every call passed on; polled without a waker while `rule`
/// says it is dormant. Derefs to the inner behaviour.
pub struct Quiet<B, R> {
    inner: B,
    rule: R,
}

impl<B, R> Quiet<B, R> {
    /// Wraps `inner` under `rule`.
    pub fn new(inner: B, rule: R) -> Self {
        Self { inner, rule }
    }
}

impl<B, R> std::ops::Deref for Quiet<B, R> {
    type Target = B;
    fn deref(&self) -> &B {
        &self.inner
    }
}

impl<B, R> std::ops::DerefMut for Quiet<B, R> {
    fn deref_mut(&mut self) -> &mut B {
        &mut self.inner
    }
}

impl<B, R> NetworkBehaviour for Quiet<B, R>
where
    B: NetworkBehaviour,
    R: Dormancy<B> + 'static,
{
    type ConnectionHandler = B::ConnectionHandler;
    type ToSwarm = B::ToSwarm;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(id, local, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner
            .handle_established_inbound_connection(id, peer, local, remote)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: Option<PeerId>,
        addrs: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner
            .handle_pending_outbound_connection(id, peer, addrs, role)
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner
            .handle_established_outbound_connection(id, peer, addr, role, port_use)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.rule.on_swarm_event(&event);
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner.on_connection_handler_event(peer, id, event);
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        let mut sleeping = Context::from_waker(Waker::noop());
        let cx = if self.rule.dormant(&self.inner) {
            &mut sleeping
        } else {
            cx
        };
        let mut polled = self.inner.poll(cx);
        // A timer found fired is re-armed (gossipsub resets its heartbeat
        // and returns) with no waker: a fired timer gives its waker up, and
        // a new one is taken only by a poll that finds it pending. The
        // second poll hands it ours, so the timer wakes us again by itself,
        // also the first time after a sleep; and it hands on what that
        // timer's work queued.
        if polled.is_pending() {
            polled = self.inner.poll(cx);
        }
        if let Poll::Ready(ToSwarm::GenerateEvent(e)) = &polled {
            self.rule.on_event(e);
        }
        polled
    }
}

/// Gossipsub sleeps while we follow no topic: its heartbeat keeps meshes,
/// and with no topic there is none. A message published on a topic we do
/// not follow (a sender a moment before it follows its group's new epoch)
/// is sent at once all the same; the heartbeat only ages that state.
#[derive(Default)]
pub struct NoTopics;

impl Dormancy<super::gossip_idle::GossipIdle> for NoTopics {
    fn dormant(&self, inner: &super::gossip_idle::GossipIdle) -> bool {
        inner.topics().next().is_none()
    }
}

/// Most candidate addresses [`Untested`] keeps apart; beyond, AutoNAT
/// simply runs its timer for good (a node that met that many addresses,
/// roaming between networks for days, is rare, and pays only the probe).
pub const MAX_TRACKED_CANDIDATES: usize = 256;

/// How long AutoNAT keeps probing an address that has no answer yet. A
/// test that times out (a home NAT dropping the dial-back) or that a
/// server refuses leaves the address untested and AutoNAT asks again at
/// every tick, for ever; after this long the rule lets it sleep. Its
/// timer still fires whenever the swarm is polled for something else, so
/// the address is still asked about now and then.
pub const OPEN_FOR: Duration = Duration::from_secs(60);

/// AutoNAT's probe sleeps while every candidate address it was told of has
/// its answer (reachable, or found unreachable: AutoNAT never tests those
/// again) or has been asked about for [`OPEN_FOR`]; and always while the
/// client is off.
#[derive(Default)]
pub struct Untested {
    /// Candidates told of and not answered yet, with when first told.
    open: HashMap<Multiaddr, Instant>,
    /// Candidates answered.
    answered: HashSet<Multiaddr>,
}

impl Untested {
    fn full(&self) -> bool {
        self.open.len() + self.answered.len() >= MAX_TRACKED_CANDIDATES
    }

    /// Whether nothing is left to probe at `now`.
    fn settled_at(&self, now: Instant) -> bool {
        !self.full() && self.open.values().all(|&told| now >= told + OPEN_FOR)
    }
}

/// The AutoNAT client roost runs (off under `dht_mode = "server"`).
pub type AutonatClient = Toggle<autonat::v2::client::Behaviour>;

impl Dormancy<AutonatClient> for Untested {
    fn on_swarm_event(&mut self, event: &FromSwarm) {
        if let FromSwarm::NewExternalAddrCandidate(NewExternalAddrCandidate { addr }) = event
            && !self.answered.contains(*addr)
            && !self.open.contains_key(*addr)
            && !self.full()
        {
            self.open.insert((*addr).clone(), Instant::now());
        }
    }

    fn on_event(&mut self, event: &autonat::v2::client::Event) {
        if self.open.remove(&event.tested_addr).is_some() || !self.full() {
            self.answered.insert(event.tested_addr.clone());
        }
    }

    fn dormant(&self, inner: &AutonatClient) -> bool {
        !inner.is_enabled() || self.settled_at(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::*;

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/192.0.2.1/tcp/{port}").parse().expect("addr")
    }

    fn candidate(rule: &mut Untested, a: &Multiaddr) {
        Dormancy::<AutonatClient>::on_swarm_event(
            rule,
            &FromSwarm::NewExternalAddrCandidate(NewExternalAddrCandidate { addr: a }),
        );
    }

    fn answer(rule: &mut Untested, a: &Multiaddr) {
        let event = autonat::v2::client::Event {
            tested_addr: a.clone(),
            bytes_sent: 0,
            server: PeerId::random(),
            result: Ok(()),
        };
        Dormancy::<AutonatClient>::on_event(rule, &event);
    }

    fn dormant(rule: &Untested) -> bool {
        rule.settled_at(Instant::now())
    }

    #[test]
    fn autonat_sleeps_only_while_every_candidate_has_its_answer() {
        let mut rule = Untested::default();
        assert!(dormant(&rule), "no candidate: nothing to test");
        let (a, b) = (addr(1), addr(2));
        candidate(&mut rule, &a);
        candidate(&mut rule, &b);
        assert!(!dormant(&rule));
        answer(&mut rule, &a);
        assert!(!dormant(&rule), "b is still to be tested");
        answer(&mut rule, &b);
        assert!(dormant(&rule));
        // Told again of an address tested already: AutoNAT does not test
        // it again, so nothing wakes.
        candidate(&mut rule, &a);
        assert!(dormant(&rule));
    }

    /// Counts its wake-ups.
    struct Count(AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn gossipsub_heartbeat_wakes_nobody_while_no_topic_is_followed() {
        let mut pubsub = crate::net::pubsub::pubsub().expect("gossipsub");
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(pubsub.poll(&mut cx).is_pending());
        // The first heartbeat is due after 500 ms, then every second.
        std::thread::sleep(Duration::from_millis(2500));
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "a heartbeat woke us");
        pubsub
            .subscribe(&libp2p::gossipsub::IdentTopic::new("t"))
            .expect("subscribe");
        // As the swarm does: poll whenever woken. The heartbeat must keep
        // waking us on its own, not only once.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = 0;
        while seen < 3 {
            while pubsub.poll(&mut cx).is_ready() {}
            while count.0.load(Ordering::SeqCst) == seen {
                assert!(Instant::now() < deadline, "{seen} heartbeats with a topic");
                std::thread::sleep(Duration::from_millis(20));
            }
            seen = count.0.load(Ordering::SeqCst);
        }
    }

    #[test]
    fn autonat_sleeps_on_an_address_asked_about_for_long_enough() {
        let mut rule = Untested::default();
        let a = addr(1);
        candidate(&mut rule, &a);
        let told = rule.open[&a];
        assert!(!rule.settled_at(told + OPEN_FOR / 2), "still probing");
        assert!(rule.settled_at(told + OPEN_FOR), "never answered: asleep");
        // Told again, it is not probed afresh.
        candidate(&mut rule, &a);
        assert_eq!(rule.open[&a], told);
    }

    #[test]
    fn a_client_that_is_off_sleeps_whatever_it_was_told() {
        let mut rule = Untested::default();
        candidate(&mut rule, &addr(1));
        assert!(!dormant(&rule));
        assert!(rule.dormant(&Toggle::from(None)));
    }

    #[test]
    fn autonat_runs_its_timer_once_more_candidates_come_than_are_tracked() {
        let mut rule = Untested::default();
        for port in 0..MAX_TRACKED_CANDIDATES as u16 {
            let a = addr(port);
            candidate(&mut rule, &a);
            answer(&mut rule, &a);
        }
        assert_eq!(rule.answered.len(), MAX_TRACKED_CANDIDATES);
        assert!(!dormant(&rule), "past the cap the rule no longer knows");
        candidate(&mut rule, &addr(u16::MAX));
        assert!(rule.open.is_empty(), "nothing is kept past the cap");
    }
}
