//! Progress of transfers on the node's event stream (and so on the API's
//! `GET /api/v1/events` as `file_progress`): on every change of state,
//! and while a download runs at most every [`EVERY`] per file, so a fast
//! transfer does not flood listeners and a slow one still shows movement.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::TransferState;
use crate::wire::message::MessageId;

/// Least time between two progress events of one download (state changes
/// are always sent).
pub const EVERY: Duration = Duration::from_millis(250);

/// How far one transfer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProgress {
    /// The transfer.
    pub id: MessageId,
    /// Bytes here and verified (a download), or the size (ours).
    pub done: u64,
    /// The file's size.
    pub size: u64,
    /// Its state now.
    pub state: TransferState,
}

/// The rate limit of one download's progress events.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    last: Mutex<Option<Instant>>,
}

impl Throttle {
    /// Whether an event may go out at `now`; if so, `now` is the last one.
    pub(crate) fn due(&self, now: Instant) -> bool {
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        if last.is_some_and(|l| now.saturating_duration_since(l) < EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_one_event_per_interval() {
        let t = Throttle::default();
        let t0 = Instant::now();
        assert!(t.due(t0), "the first goes out");
        assert!(!t.due(t0 + EVERY / 2), "too soon");
        assert!(t.due(t0 + EVERY), "one interval later");
        assert!(!t.due(t0 + EVERY + EVERY / 10));
    }
}
