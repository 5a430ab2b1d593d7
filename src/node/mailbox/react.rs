//! How both mailbox machines react to a peer entering the routing table
//! (the holder: it may outrank us for a mailbox we hold; the fetcher: it
//! may hold our mail): not at once but after a settle that gathers a burst
//! of changes, and not more often than every [`REACT_EVERY`] — in a
//! growing network every node's table changes all the time, and each
//! reaction costs a lookup and requests.

use std::time::{Duration, Instant};

/// Delay that coalesces a burst of routing-table changes (or deposits, or
/// the first peers of a start-up).
pub const SETTLE: Duration = Duration::from_millis(100);
/// Least time between two runs started by routing-table changes.
pub const REACT_EVERY: Duration = Duration::from_secs(10);

/// When a reaction to a new peer seen at `now` falls due, the last run
/// having started at `last`: a settle after now, or after [`REACT_EVERY`]
/// from the last run if that is later.
pub fn react_at(last: Option<Instant>, now: Instant) -> Instant {
    last.map_or(now, |t| t + REACT_EVERY).max(now) + SETTLE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reaction_waits_a_settle_and_keeps_react_every_from_the_last_run() {
        let t0 = Instant::now();
        assert_eq!(react_at(None, t0), t0 + SETTLE, "never ran: a settle");
        let soon = t0 + Duration::from_secs(1);
        assert_eq!(
            react_at(Some(t0), soon),
            t0 + REACT_EVERY + SETTLE,
            "ran a second ago: not before REACT_EVERY from it"
        );
        let late = t0 + REACT_EVERY * 3;
        assert_eq!(react_at(Some(t0), late), late + SETTLE, "ran long ago");
    }
}
