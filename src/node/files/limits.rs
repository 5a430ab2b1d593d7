//! What a receiver takes in: the quota on incoming files (`[files]
//! quota_mib`). Pure, so the rule is the same for an auto-accepted offer
//! and for `files get`.

use crate::store::{FileDirection, Transfer, TransferState};

/// Bytes of incoming files kept or on their way, other than `except`:
/// complete ones, and those downloading, waiting or paused (a partial file
/// is as large as the whole on disk). Offers not taken and failed ones do
/// not count.
pub(crate) fn in_use(rows: &[Transfer], except: &crate::wire::message::MessageId) -> u64 {
    rows.iter()
        .filter(|t| t.direction == FileDirection::In && &t.id != except)
        .filter(|t| {
            matches!(
                t.state,
                TransferState::Complete
                    | TransferState::Downloading
                    | TransferState::Waiting
                    | TransferState::Paused
            )
        })
        .fold(0u64, |sum, t| sum.saturating_add(t.size))
}

/// Why a file of `size` bytes may not be taken in with `used` bytes
/// already held, or `None` if it fits under `quota`.
pub(crate) fn refusal(size: u64, used: u64, quota: u64) -> Option<String> {
    (used.saturating_add(size) > quota).then(|| {
        format!(
            "refused: {size} bytes would pass the files quota (quota_mib = {}; {used} bytes held)",
            quota / (1024 * 1024)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_counts_what_is_held_and_refuses_past_it() {
        assert_eq!(refusal(10, 90, 100), None, "exactly full fits");
        assert!(refusal(11, 90, 100).is_some(), "one byte over is refused");
        let why = refusal(2 << 20, 0, 1 << 20).unwrap();
        assert!(why.contains("quota_mib = 1"), "{why}");
    }
}
