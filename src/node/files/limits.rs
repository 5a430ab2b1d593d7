//! What a receiver takes in: the quota on incoming files (`[files]
//! quota_mib`) and the room a download must leave free on the data
//! directory's filesystem (`[files] free_margin_mib`). The rule is pure
//! (the free space is measured by the caller), so it is the same for an
//! auto-accepted offer and for `files get`.

use std::path::Path;

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

/// Bytes still to arrive for the incoming files on their way (downloading,
/// waiting or paused), other than `except`: each one's size less what its
/// partial file already takes on disk (`allocated`). A partial file is
/// sparse, so the free space does not yet show what they will take.
pub(crate) fn to_come(
    rows: &[Transfer],
    except: &crate::wire::message::MessageId,
    allocated: impl Fn(&Transfer) -> u64,
) -> u64 {
    rows.iter()
        .filter(|t| t.direction == FileDirection::In && &t.id != except)
        .filter(|t| {
            matches!(
                t.state,
                TransferState::Downloading | TransferState::Waiting | TransferState::Paused
            )
        })
        .fold(0u64, |sum, t| {
            sum.saturating_add(t.size.saturating_sub(allocated(t)))
        })
}

/// The free bytes left for a new download: `free` less what the running
/// ones still need (`to_come`).
pub(crate) fn free_for_new(free: Option<u64>, to_come: u64) -> Option<u64> {
    free.map(|f| f.saturating_sub(to_come))
}

/// Bytes the file at `path` takes on disk (0 if absent).
pub(crate) fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map_or(0, |m| m.blocks().saturating_mul(512))
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

/// Why a file of `size` bytes may not be taken in, or `None` if it may:
/// with `used` bytes already held it must stay within `quota`, and it must
/// leave at least `margin` bytes of the `free` ones on the filesystem of
/// the data directory (`None`: unknown, not checked).
pub(crate) fn admit(
    size: u64,
    used: u64,
    quota: u64,
    free: Option<u64>,
    margin: u64,
) -> Option<String> {
    refusal(size, used, quota).or_else(|| {
        let free = free?;
        (size > free || free - size < margin).then(|| {
            format!(
                "refused: {size} bytes would leave less than free_margin_mib = {} free on the \
                 data directory's disk ({free} bytes free)",
                margin / (1024 * 1024)
            )
        })
    })
}

/// The room a download of `size` bytes into the partial file `part` has
/// in `dir`: the free space, plus what `part` already takes on disk (a
/// partial file is sparse: only the bytes that arrived take room).
pub(crate) fn room(dir: &Path, part: &Path, size: u64) -> Option<u64> {
    let taken = allocated(part);
    free_space(dir).map(|f| f.saturating_add(taken.min(size)))
}

/// Bytes an unprivileged process may still write on the filesystem that
/// holds `dir`, or `None` if it cannot be told.
pub(crate) fn free_space(dir: &Path) -> Option<u64> {
    match rustix::fs::statvfs(dir) {
        Ok(s) => Some(s.f_bavail.saturating_mul(s.f_frsize)),
        Err(e) => {
            tracing::warn!("cannot tell the free space of {}: {e}", dir.display());
            None
        }
    }
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

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn a_file_must_leave_the_margin_free() {
        let quota = 1 << 40;
        assert_eq!(admit(10 * MIB, 0, quota, Some(20 * MIB), 10 * MIB), None);
        let why = admit(10 * MIB + 1, 0, quota, Some(20 * MIB), 10 * MIB).unwrap();
        assert!(why.contains("free_margin_mib = 10"), "{why}");
        assert!(
            admit(30 * MIB, 0, quota, Some(20 * MIB), 0).is_some(),
            "larger than the free space, even with no margin"
        );
        assert_eq!(
            admit(1, 0, quota, None, 10 * MIB),
            None,
            "unknown: not checked"
        );
    }

    #[test]
    fn the_quota_is_checked_before_the_margin() {
        let why = admit(2 * MIB, 0, MIB, Some(0), MIB).unwrap();
        assert!(why.contains("quota_mib"), "{why}");
        assert_eq!(admit(MIB, 0, MIB, Some(3 * MIB), MIB), None);
    }

    fn incoming(size: u64, state: TransferState) -> Transfer {
        Transfer {
            id: crate::wire::message::MessageId::random(),
            direction: FileDirection::In,
            peer: Vec::new(),
            name: "f".into(),
            size,
            mime: "application/octet-stream".into(),
            root: [0; 32],
            state,
            path: None,
            sources: Vec::new(),
            dropped: Vec::new(),
            error: None,
            user_path: false,
        }
    }

    #[test]
    fn the_bytes_still_to_come_of_running_downloads_are_not_free() {
        let quota = 1 << 40;
        let rows = vec![
            incoming(100 * MIB, TransferState::Downloading),
            incoming(50 * MIB, TransferState::Paused),
            incoming(30 * MIB, TransferState::Waiting),
            incoming(1000 * MIB, TransferState::Complete),
            incoming(1000 * MIB, TransferState::Offered),
            incoming(1000 * MIB, TransferState::Failed),
        ];
        let new = incoming(10 * MIB, TransferState::Offered);
        // Each running one has 10 MiB on disk already.
        let coming = to_come(&rows, &new.id, |_| 10 * MIB);
        assert_eq!(coming, (90 + 40 + 20) * MIB);
        // 200 MiB free looks like room for 10 MiB with a 50 MiB margin,
        // but 150 MiB of it is promised to the running downloads.
        let free = free_for_new(Some(200 * MIB), coming);
        assert!(
            admit(new.size, 0, quota, free, 50 * MIB).is_some(),
            "admitted into space the running downloads still need"
        );
        assert_eq!(
            admit(
                new.size,
                0,
                quota,
                free_for_new(Some(300 * MIB), coming),
                50 * MIB
            ),
            None
        );
        assert_eq!(
            to_come(&rows, &rows[0].id, |_| 0),
            80 * MIB,
            "itself excluded"
        );
    }

    #[test]
    fn the_free_space_of_a_real_directory_is_known() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_space(dir.path()).is_some_and(|f| f > 0));
        assert_eq!(free_space(&dir.path().join("absent")), None);
    }
}
