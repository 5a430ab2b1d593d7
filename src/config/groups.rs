//! The large-group fast path's settings (the rules are in
//! `node::groups::fast`, which re-exports [`FastConfig`]).

use std::time::Duration;

/// When a group counts as large, and how long its 1:1 copies wait for a
/// confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastConfig {
    /// Groups with at least this many members (us included) use the fast
    /// path; smaller ones send every copy 1:1 at once.
    pub threshold: usize,
    /// How long a large group's 1:1 copies wait for their member's
    /// confirmation before they are sent.
    pub window: Duration,
    /// How long a member gathers confirmations before sending them (one
    /// receipt per sender per round).
    pub confirm_every: Duration,
}

impl Default for FastConfig {
    fn default() -> Self {
        Self {
            threshold: 50,
            window: Duration::from_secs(15),
            confirm_every: Duration::from_millis(500),
        }
    }
}
