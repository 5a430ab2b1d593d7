//! The `[files]` table of `config.toml`: how much of other people's
//! files this node takes in, and which of ours travel through mailboxes.

use serde::Deserialize;

const MIB: u64 = 1024 * 1024;

/// Most bytes `inline_kib` may put into mailboxes per file: a mailbox
/// holder keeps at most 64 MiB for one recipient, and one file must not
/// take a quarter of it.
pub const MAX_INLINE_BYTES: u64 = 16 * MIB;

/// Limits on files, sent and received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilesConfig {
    /// Buddies' files up to this size download without being asked.
    pub auto_accept_bytes: u64,
    /// Our files up to this size also travel as part messages through the
    /// mailboxes, so they arrive after we went offline; received parts of
    /// larger files are ignored.
    pub inline_bytes: u64,
    /// Most bytes of incoming files kept (complete) or on their way
    /// (downloading, waiting, paused) at once: an offer that would pass it
    /// is refused (`failed`) before a byte of it is fetched. 4 GiB by
    /// default: a few films or many photo albums, and a buddy flooding
    /// auto-accepted offers cannot fill a disk past it; the user raises
    /// it for larger collections.
    pub quota_bytes: u64,
    /// Room a download must leave free on the data directory's
    /// filesystem: an offer that would leave less is refused (`failed`)
    /// before a byte of it is fetched, so a large file cannot fill the
    /// disk the node's own database and the rest of the system live on.
    /// 512 MiB by default.
    pub free_margin_bytes: u64,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            auto_accept_bytes: 32 * MIB,
            inline_bytes: MIB,
            quota_bytes: 4096 * MIB,
            free_margin_bytes: 512 * MIB,
        }
    }
}

/// The `[files]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSection {
    /// See [`FilesConfig::auto_accept_bytes`], in MiB.
    pub auto_accept_mib: Option<u64>,
    /// See [`FilesConfig::inline_bytes`], in KiB (at most 16384).
    pub inline_kib: Option<u64>,
    /// See [`FilesConfig::quota_bytes`], in MiB.
    pub quota_mib: Option<u64>,
    /// See [`FilesConfig::free_margin_bytes`], in MiB.
    pub free_margin_mib: Option<u64>,
}

impl FilesSection {
    /// Applies the keys that are set.
    pub(crate) fn apply(self, c: &mut FilesConfig) {
        if let Some(v) = self.auto_accept_mib {
            c.auto_accept_bytes = v.saturating_mul(MIB);
        }
        if let Some(v) = self.inline_kib {
            c.inline_bytes = v.saturating_mul(1024).min(MAX_INLINE_BYTES);
        }
        if let Some(v) = self.quota_mib {
            c.quota_bytes = v.saturating_mul(MIB);
        }
        if let Some(v) = self.free_margin_mib {
            c.free_margin_bytes = v.saturating_mul(MIB);
        }
    }
}
