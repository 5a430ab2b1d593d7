//! Transfer rows: one per file offered or received, keyed by the file id,
//! in their own tree. The bytes themselves live under `<data-dir>/files/`
//! (see `node::files`); a row says where and in which state.

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::messages::{dec, enc};
use super::{Store, StoreError};
use crate::wire::message::MessageId;

const FILES: &str = "files";

/// Which way a file goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileDirection {
    /// We offered it.
    Out,
    /// It was offered to us.
    In,
}

/// Where a transfer stands (the CLI contract's states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferState {
    /// Offered; waits for `roost files get` (or, for ours, for the
    /// recipient to fetch it).
    Offered,
    /// Bytes are moving.
    Downloading,
    /// Wants bytes but no source answers now.
    Waiting,
    /// Stopped by the user.
    Paused,
    /// Every byte is here and verified.
    Complete,
    /// Given up (refused, or every source lied).
    Failed,
}

impl TransferState {
    /// The state as the API and CLI spell it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Offered => "offered",
            Self::Downloading => "downloading",
            Self::Waiting => "waiting",
            Self::Paused => "paused",
            Self::Complete => "complete",
            Self::Failed => "failed",
        }
    }
}

/// One transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The file id (the offer's).
    pub id: MessageId,
    /// Ours or theirs.
    pub direction: FileDirection,
    /// The other party: recipient of ours, sender of theirs.
    #[serde(with = "serde_bytes")]
    pub peer: Vec<u8>,
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// MIME type.
    pub mime: String,
    /// BLAKE3 root.
    #[serde(with = "serde_bytes")]
    pub root: [u8; 32],
    /// State.
    pub state: TransferState,
    /// Ours: the file served. Theirs: where it lands once complete.
    pub path: Option<String>,
    /// Theirs: peers that offered the same content (PeerId bytes), the
    /// sources to fetch from; the sender first.
    #[serde(default)]
    pub sources: Vec<Vec<u8>>,
    /// Theirs: sources caught sending bytes that do not verify (PeerId
    /// bytes), never asked again for this file.
    #[serde(default)]
    pub dropped: Vec<Vec<u8>>,
    /// Why it failed, for the user.
    #[serde(default)]
    pub error: Option<String>,
    /// Theirs: whether `path` was given by the user (`--out`). A path the
    /// node chose itself is chosen again if another file takes it first.
    #[serde(default)]
    pub user_path: bool,
}

impl Transfer {
    /// The other party's ID.
    pub fn peer_id(&self) -> Option<PeerId> {
        PeerId::from_bytes(&self.peer).ok()
    }
}

impl Store {
    fn files_tree(&self) -> Result<super::tree::Tree, StoreError> {
        self.tree(FILES)
    }

    /// Writes a transfer row and makes it durable.
    pub fn put_transfer(&self, t: &Transfer) -> Result<(), StoreError> {
        self.files_tree()?.insert(t.id.0, enc(t, FILES)?)?;
        self.flush()
    }

    /// The row of file `id`.
    pub fn transfer(&self, id: &MessageId) -> Result<Option<Transfer>, StoreError> {
        self.files_tree()?
            .get(id.0)?
            .map(|v| dec(&v, FILES))
            .transpose()
    }

    /// Every transfer row.
    pub fn transfers(&self) -> Result<Vec<Transfer>, StoreError> {
        let mut out = Vec::new();
        for item in self.files_tree()?.iter()? {
            let (_, v) = item?;
            out.push(dec(&v, FILES)?);
        }
        Ok(out)
    }
}
