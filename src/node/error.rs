//! What a node's calls fail with.

use libp2p::PeerId;

use super::content::ContentError;
use crate::identity::IdentityError;
use crate::net::{NetError, RequestError};
use crate::store::StoreError;

/// Errors a node reports to its users.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Problem with the key file.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Problem with the database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Problem with the network setup.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Problem with the data directory.
    #[error("data directory: {0}")]
    DataDir(#[from] crate::config::DataDirError),
    /// The node has shut down.
    #[error("the node is not running")]
    Stopped,
    /// No locator record for that ID in the DHT.
    #[error("{0} is not known to the network (no locator record found)")]
    NotFound(PeerId),
    /// The peer's last record says it left.
    #[error("{0} is offline")]
    Offline(PeerId),
    /// The message cannot be sent as given.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// Sending to ourselves.
    #[error("cannot send a message to yourself")]
    SelfSend,
    /// An invite refused, or one that cannot be made as asked.
    #[error(transparent)]
    Invite(#[from] crate::wire::invite::InviteError),
    /// Sealing failed (the recipient's ID has no usable key).
    #[error("cannot seal the message: {0}")]
    Seal(#[from] crate::crypto::CryptoError),
    /// No buddy has that name.
    #[error("no buddy is called {0:?} (give a name from `roost buddy list` or an ID)")]
    UnknownName(String),
    /// Several buddies have that name.
    #[error("several buddies are called {0:?}; use the ID")]
    AmbiguousName(String),
    /// A group operation refused or failed.
    #[error(transparent)]
    Group(crate::node::groups::GroupOpError),
    /// A file call failed.
    #[error(transparent)]
    File(#[from] super::files::FileError),
    /// The peer could not be reached at its published addresses.
    #[error("cannot connect to {peer}: {reason}")]
    Dial {
        /// Whom we tried.
        peer: PeerId,
        /// Why it failed.
        reason: String,
    },
    /// A public room operation failed.
    #[error(transparent)]
    Room(#[from] crate::node::rooms::RoomFailure),
}

/// A failed request through the network task is the node's failure of
/// the same name.
impl From<RequestError> for NodeError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Stopped => NodeError::Stopped,
            RequestError::NotFound(peer) => NodeError::NotFound(peer),
            RequestError::Offline(peer) => NodeError::Offline(peer),
            RequestError::Dial { peer, reason } => NodeError::Dial { peer, reason },
        }
    }
}
