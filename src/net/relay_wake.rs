//! The relay server's connection handler: its keep-alive counts only on
//! connections the relay protocol was used on, and it is polled again
//! when that keep-alive runs out.
//!
//! Why: libp2p-relay 0.22's server handler keeps a connection alive for
//! 10 s after it was first idle (no reservation) — a rule on the clock,
//! with no timer behind it. The swarm starts a connection's idle timeout
//! only from a poll at which no handler keeps it, so a connection whose
//! last use came within its first 10 s (one DHT request, say) was never
//! polled again after the 10 s and stayed open until something else
//! happened on it. Every node runs the relay server's handler on its
//! direct connections (a node that is not public only refuses its
//! requests), so every such connection stayed: in the swarm bench, 800
//! nodes in one process had 329 connections each on average, and 22 GiB. [`Handler`] arms a
//! timer while the inner handler keeps the connection, so the swarm looks
//! again once the 10 s are over.
//!
//! And the 10 s themselves are for a client that connected to make a
//! reservation, to give it time to ask; the swarm's own idle timeout
//! (`Config::idle_timeout`, 10 s) gives it that already. So until the
//! relay protocol is used on a connection (a stream of it negotiated, an
//! event from the behaviour or from the inner handler), [`Handler`] does
//! not keep the connection for it: a connection used once by the DHT
//! closes at the idle timeout after that use, not 10 s later.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use libp2p::swarm::handler::ConnectionEvent;
use libp2p::swarm::{ConnectionHandler, ConnectionHandlerEvent, SubstreamProtocol};

/// A little more than the relay server handler's own keep-alive after it
/// is first idle (10 s), so the look after it finds it over.
pub const GRACE: Duration = Duration::from_millis(10_500);

/// At most this many graces between looks while the inner handler keeps
/// the connection (it holds a reservation): each look that finds it still
/// kept doubles the wait, so a connection held for an hour costs a few
/// dozen wake-ups. Any event of the inner handler (a reservation ending,
/// which starts a fresh 10 s spell) brings the next look back to one
/// grace.
pub const MAX_BACKOFF: u32 = 16;

/// `inner`, with a timer that wakes the connection when `inner`'s
/// keep-alive may have run out.
pub struct Handler<H> {
    inner: H,
    grace: Duration,
    /// Graces to wait at the next arming (1, doubling up to
    /// [`MAX_BACKOFF`] while `inner` keeps the connection).
    backoff: u32,
    /// Armed while `inner` keeps the connection.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The relay protocol was used on this connection: only then does
    /// `inner`'s keep-alive count.
    used: bool,
}

impl<H> Handler<H> {
    /// Wraps `inner`, looking again `grace` after it first keeps the
    /// connection.
    pub fn new(inner: H, grace: Duration) -> Self {
        Self {
            inner,
            // A zero grace would re-arm a timer that is always ready.
            grace: grace.max(Duration::from_millis(1)),
            backoff: 1,
            timer: None,
            used: false,
        }
    }
}

impl<H: ConnectionHandler> Handler<H> {
    /// Arms, keeps or drops the timer after a poll of `inner`.
    fn look_again(&mut self, cx: &mut Context<'_>) {
        if !self.connection_keep_alive() {
            self.timer = None;
            self.backoff = 1;
            return;
        }
        loop {
            let backoff = self.backoff;
            let grace = self.grace;
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(grace * backoff)));
            if timer.as_mut().poll(cx).is_pending() {
                return;
            }
            // Fired and still kept: a reservation holds it. Look again
            // later, and less often.
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            self.timer = None;
        }
    }
}

impl<H: ConnectionHandler> ConnectionHandler for Handler<H> {
    type FromBehaviour = H::FromBehaviour;
    type ToBehaviour = H::ToBehaviour;
    type InboundProtocol = H::InboundProtocol;
    type OutboundProtocol = H::OutboundProtocol;
    type InboundOpenInfo = H::InboundOpenInfo;
    type OutboundOpenInfo = H::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        self.inner.listen_protocol()
    }

    fn connection_keep_alive(&self) -> bool {
        self.used && self.inner.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        let polled = self.inner.poll(cx);
        if polled.is_pending() {
            self.look_again(cx);
            return polled;
        }
        self.used = true;
        if self.backoff > 1 {
            // Something happened (a reservation ended, say, which starts
            // a fresh 10 s spell): look again one grace from now, not at
            // the end of a long backoff.
            self.timer = None;
            self.backoff = 1;
        }
        polled
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        self.inner.poll_close(cx)
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        self.used = true;
        self.inner.on_behaviour_event(event);
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        if matches!(
            event,
            ConnectionEvent::FullyNegotiatedInbound(_)
                | ConnectionEvent::FullyNegotiatedOutbound(_)
                | ConnectionEvent::DialUpgradeError(_)
                | ConnectionEvent::ListenUpgradeError(_)
        ) {
            self.used = true;
        }
        self.inner.on_connection_event(event);
    }
}

#[cfg(test)]
mod tests {
    use libp2p::core::upgrade::DeniedUpgrade;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    use super::*;

    /// A handler that, like the relay server's, stops keeping the
    /// connection without waking anyone: the test turns `kept` off.
    struct Silent {
        kept: Arc<AtomicBool>,
    }

    impl ConnectionHandler for Silent {
        type FromBehaviour = ();
        type ToBehaviour = ();
        type InboundProtocol = DeniedUpgrade;
        type OutboundProtocol = DeniedUpgrade;
        type InboundOpenInfo = ();
        type OutboundOpenInfo = ();

        fn listen_protocol(&self) -> SubstreamProtocol<DeniedUpgrade, ()> {
            SubstreamProtocol::new(DeniedUpgrade, ())
        }
        fn connection_keep_alive(&self) -> bool {
            self.kept.load(Ordering::SeqCst)
        }
        fn poll(
            &mut self,
            _: &mut Context<'_>,
        ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, (), ()>> {
            Poll::Pending
        }
        fn on_behaviour_event(&mut self, _: ()) {}
        fn on_connection_event(
            &mut self,
            _: ConnectionEvent<DeniedUpgrade, DeniedUpgrade, (), ()>,
        ) {
        }
    }

    /// Counts its wake-ups and tells a waiting test of each.
    struct Count(AtomicUsize, tokio::sync::Notify);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
            self.1.notify_one();
        }
    }

    /// A wrapped [`Silent`] handler the relay protocol was used on (the
    /// behaviour told it something), its switch and a counting waker.
    fn handler(grace: Duration) -> (Handler<Silent>, Arc<AtomicBool>, Arc<Count>) {
        let kept = Arc::new(AtomicBool::new(true));
        let mut h = Handler::new(Silent { kept: kept.clone() }, grace);
        h.on_behaviour_event(());
        (
            h,
            kept,
            Arc::new(Count(AtomicUsize::new(0), tokio::sync::Notify::new())),
        )
    }

    /// Waits (60 s at most) until `count` has seen more than `seen` wake-ups.
    async fn woken_past(count: &Count, seen: usize) -> usize {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let now = count.0.load(Ordering::SeqCst);
            if now > seen {
                return now;
            }
            tokio::time::timeout_at(deadline, count.1.notified())
                .await
                .expect("not woken");
        }
    }

    #[tokio::test]
    async fn the_connection_is_polled_again_after_the_inner_handler_silently_let_it_go() {
        let (mut h, kept, count) = handler(Duration::from_millis(100));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(h.poll(&mut cx).is_pending());
        assert!(h.timer.is_some(), "kept: a timer is armed");
        // The inner handler's spell ends on the clock: no wake-up of its own.
        kept.store(false, Ordering::SeqCst);
        woken_past(&count, 0).await;
        // The connection task polls again and now sees it free (the swarm
        // then starts its idle timeout).
        assert!(h.poll(&mut cx).is_pending());
        assert!(!h.connection_keep_alive());
        assert!(h.timer.is_none(), "no timer once the connection is free");
    }

    #[tokio::test]
    async fn a_connection_the_relay_protocol_was_not_used_on_is_not_kept_for_it() {
        let kept = Arc::new(AtomicBool::new(true));
        let mut h = Handler::new(Silent { kept }, Duration::from_millis(10));
        let count = Arc::new(Count(AtomicUsize::new(0), tokio::sync::Notify::new()));
        let waker = Waker::from(count);
        let mut cx = Context::from_waker(&waker);
        assert!(h.poll(&mut cx).is_pending());
        assert!(!h.connection_keep_alive(), "kept for the relay, unused");
        assert!(h.timer.is_none(), "a timer for nothing");
        // The behaviour tells it something (a reservation's answer, say):
        // from now on the inner handler's keep-alive counts.
        h.on_behaviour_event(());
        assert!(h.connection_keep_alive());
        assert!(h.poll(&mut cx).is_pending());
        assert!(h.timer.is_some(), "kept: a timer is armed");
    }

    #[tokio::test]
    async fn while_kept_the_looks_back_off() {
        let (mut h, _kept, count) = handler(Duration::from_millis(10));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(h.poll(&mut cx).is_pending());
        let mut backoffs = Vec::new();
        let mut seen = 0;
        for _ in 0..5 {
            seen = woken_past(&count, seen).await;
            assert!(h.poll(&mut cx).is_pending());
            backoffs.push(h.backoff);
        }
        assert_eq!(backoffs, [2, 4, 8, 16, 16]);
    }
}
