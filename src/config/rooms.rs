//! The `[rooms]` table of `config.toml`: how fast one sender may post in a
//! public room before this node stops showing and forwarding its messages.

use serde::Deserialize;

/// Per-sender rate of a room's messages, as each member enforces it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoomLimits {
    /// Messages per second one sender may keep up.
    pub rate: f64,
    /// Messages one sender may send at once.
    pub burst: f64,
}

impl Default for RoomLimits {
    /// A person typing fast: ten at once, one a second after that.
    fn default() -> Self {
        Self {
            rate: 1.0,
            burst: 10.0,
        }
    }
}

/// The `[rooms]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomsSection {
    /// See [`RoomLimits::rate`]; at least one message a minute.
    pub rate_per_sec: Option<f64>,
    /// See [`RoomLimits::burst`]; at least 1.
    pub burst: Option<u32>,
}

impl RoomsSection {
    /// Applies the keys that are set; a rate that is not a positive number
    /// is refused, so a typo cannot silence every room.
    pub(crate) fn apply(self, l: &mut RoomLimits) -> Result<(), String> {
        if let Some(v) = self.rate_per_sec {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!(
                    "[rooms] rate_per_sec must be a positive number, not {v}"
                ));
            }
            l.rate = v.max(1.0 / 60.0);
        }
        if let Some(v) = self.burst {
            l.burst = f64::from(v.max(1));
        }
        Ok(())
    }
}
