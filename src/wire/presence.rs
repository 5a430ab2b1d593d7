//! `/roost/presence/1`: SUBSCRIBE / NOTIFY for presence, as in SIP's
//! "presence" event package. Request-response; one small CBOR frame each way.
//!
//! `/roost/presence-push/1`: the same NOTIFYs, pushed. The publisher opens
//! one stream to each subscriber and writes each change as a
//! length-prefixed CBOR [`PresenceInfo`], unanswered. A change then costs
//! a frame on a stream already open, not a stream and an answer each.

use libp2p::StreamProtocol;
use serde::{Deserialize, Serialize};

/// The protocol name.
pub const PRESENCE_PROTOCOL: StreamProtocol = StreamProtocol::new("/roost/presence/1");
/// The push protocol's name: NOTIFYs on a standing stream, one frame per
/// change, so a change costs no new stream and no answer.
pub const PUSH_PROTOCOL: StreamProtocol = StreamProtocol::new("/roost/presence-push/1");
/// Largest presence frame.
pub const MAX_PRESENCE_FRAME: usize = 4096;
/// Longest note.
pub const MAX_NOTE: usize = 256;
/// Longest activity, location or until text.
pub const MAX_CONTEXT: usize = 128;

/// The state I choose for myself. Never sent as such: what a watcher
/// sees is the [`Status`] derived from it (`Invisible` shows as `Offline`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OwnStatus {
    /// Available.
    Online,
    /// Away.
    Away,
    /// Do not disturb.
    Busy,
    /// Appear offline to everyone, and still receive.
    Invisible,
}

impl std::str::FromStr for OwnStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "online" => Ok(Self::Online),
            "away" => Ok(Self::Away),
            "busy" => Ok(Self::Busy),
            "invisible" => Ok(Self::Invisible),
            other => Err(format!(
                "unknown presence state {other:?}: expected online, away, busy or invisible"
            )),
        }
    }
}

/// My explicit presence; persisted across restarts by the store, and the
/// source of the [`PresenceInfo`] the presence service sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Own {
    /// The chosen state.
    pub status: OwnStatus,
    /// Note and context, shown as given.
    pub note: Option<String>,
    /// Activity.
    pub activity: Option<String>,
    /// Location.
    pub location: Option<String>,
    /// Until when.
    pub until: Option<String>,
}

impl Default for Own {
    fn default() -> Self {
        Self {
            status: OwnStatus::Online,
            note: None,
            activity: None,
            location: None,
            until: None,
        }
    }
}

/// What others may see of a user's state. `invisible` is never sent: an
/// invisible user appears `offline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Reachable and available.
    Online,
    /// Reachable, not at the keyboard.
    Away,
    /// Reachable, do not disturb.
    Busy,
    /// Not reachable (or not telling).
    Offline,
}

impl Status {
    /// Lower-case name for the API and CLI.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Away => "away",
            Self::Busy => "busy",
            Self::Offline => "offline",
        }
    }
}

/// A presence document (the PIDF of SIP, in CBOR).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceInfo {
    /// The state.
    pub status: Status,
    /// Free text, e.g. "lunch, back at 14:00".
    pub note: Option<String>,
    /// What the user is doing (context).
    pub activity: Option<String>,
    /// Where the user is (free text).
    pub location: Option<String>,
    /// Until when this holds, e.g. "14:00".
    pub until: Option<String>,
}

impl PresenceInfo {
    /// Plain `offline`, nothing else: what hidden, blocked, unknown and
    /// departed users look like.
    pub fn offline() -> Self {
        Self {
            status: Status::Offline,
            note: None,
            activity: None,
            location: None,
            until: None,
        }
    }

    /// Whether every text field is within its limit.
    pub fn is_within_limits(&self) -> bool {
        self.note
            .as_ref()
            .is_none_or(|n| n.chars().count() <= MAX_NOTE)
            && [&self.activity, &self.location, &self.until]
                .iter()
                .all(|f| f.as_ref().is_none_or(|t| t.chars().count() <= MAX_CONTEXT))
    }
}

/// Requests of the presence protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PresenceRequest {
    /// Watcher → publisher: send me your state now and on every change, for
    /// `expires_secs` (renewed before it runs out).
    Subscribe {
        /// Lifetime of the subscription.
        expires_secs: u32,
    },
    /// Watcher → publisher: stop.
    Unsubscribe,
    /// Publisher → watcher: my state changed.
    Notify(PresenceInfo),
}

/// Answers of the presence protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PresenceResponse {
    /// The publisher's current state (to a Subscribe).
    State(PresenceInfo),
    /// Not allowed to watch (not a buddy, or blocked).
    Rejected,
    /// Received.
    Ok,
}
