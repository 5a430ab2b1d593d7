//! Whether our locator publication waits for a relay reservation.
//!
//! A node that is not public is reached through its relay circuits: a
//! record without them names only addresses behind its NAT, which a buddy
//! elsewhere cannot dial — and over QUIC such a dial fails only at the
//! handshake timeout (5 s), not at once. Such a record, found first by a
//! buddy's lookup, costs that buddy a failed dial and a retry. So a node
//! that is not public holds its first publication until it holds a
//! reservation, and publishes then with its circuit address. It does not
//! hold for ever: once every reservation it tried has failed with none
//! left under way, or [`PUBLISH_HOLD`] has passed, it publishes what it
//! has (a node on a LAN with no relay still needs a record).

use std::time::{Duration, Instant};

/// Longest a node that is not public holds its first locator publication
/// while waiting for a relay reservation. A reservation normally comes
/// within a second of meeting the network.
pub const PUBLISH_HOLD: Duration = Duration::from_secs(10);

/// The hold on our first publication.
#[derive(Debug, Default)]
pub(super) struct Hold {
    /// Until when we hold, while we do.
    until: Option<Instant>,
    /// A reservation was tried and failed since the hold began.
    failed: bool,
}

/// What [`Hold::settle`] is told of the relays.
pub(super) struct Relays {
    /// We are public: no relay needed.
    pub public: bool,
    /// A reservation is held.
    pub held: bool,
    /// A reservation is asked for, or its relay dialled.
    pub pending: bool,
}

impl Hold {
    /// Starts holding at `now` unless `public`; whether it holds.
    pub fn start(&mut self, now: Instant, public: bool) -> bool {
        if public {
            return false;
        }
        self.until = Some(now + PUBLISH_HOLD);
        true
    }

    /// A reservation failed (refused, timed out, relay gone).
    pub fn relay_failed(&mut self) {
        if self.until.is_some() {
            self.failed = true;
        }
    }

    /// When the hold ends at the latest, while it lasts.
    pub fn deadline(&self) -> Option<Instant> {
        self.until
    }

    /// Ends the hold if its time has come; whether it ended now.
    pub fn settle(&mut self, now: Instant, r: Relays) -> bool {
        let Some(until) = self.until else {
            return false;
        };
        let all_failed = self.failed && !r.held && !r.pending;
        if r.public || r.held || all_failed || now >= until {
            self.until = None;
            return true;
        }
        false
    }
}
