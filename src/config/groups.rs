//! The large-group fast path's settings (the rules are in
//! `node::groups::fast` and `node::groups::sync`; `fast` re-exports
//! [`FastConfig`]).

use std::time::Duration;

/// When a group counts as large, and how often its members catch up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastConfig {
    /// Groups with at least this many members (us included) send each
    /// message once over gossip; smaller ones send every copy 1:1.
    pub threshold: usize,
    /// How often a member of a large group asks another member for what
    /// it missed, besides when it starts following an epoch's topic:
    /// what repairs a message gossip did not bring.
    pub sync_every: Duration,
}

impl Default for FastConfig {
    fn default() -> Self {
        Self {
            threshold: 50,
            sync_every: Duration::from_secs(60),
        }
    }
}
