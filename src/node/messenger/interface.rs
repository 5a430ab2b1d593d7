//! What the messaging service takes ([`Request`]) and what it tells the
//! node's users ([`Event`]).

use libp2p::PeerId;
use tokio::sync::oneshot;

#[cfg(feature = "test-util")]
use super::MailboxPause;
use crate::net::NetEvent;
use crate::store::{MessageState, Store, StoreError, StoredMessage};
use crate::wire::message::{Body, Envelope, MessageId};

/// What the node tells its users about messages.
#[derive(Debug, Clone)]
pub enum Event {
    /// A new message arrived (stored durably).
    Message(StoredMessage),
    /// One of our 1:1 messages was stored in the outbox (whoever asked
    /// for it: a window, `roost send`, a file offer), so every open window
    /// shows it without fetching the history again.
    Sent(StoredMessage),
    /// A buddy's presence changed (pushed by its node).
    Presence {
        /// The buddy.
        peer: PeerId,
        /// Its new presence.
        info: crate::wire::presence::PresenceInfo,
    },
    /// Someone added us as a buddy; add them back to accept.
    BuddyRequest {
        /// Who.
        peer: PeerId,
    },
    /// One of our messages moved on (delivered, read, failed).
    State {
        /// The message.
        id: MessageId,
        /// Its recipient.
        peer: PeerId,
        /// Its new state.
        state: MessageState,
    },
    /// A message of a public room we are in was shown (ours included).
    Room(crate::node::rooms::RoomMessageEvent),
    /// Something happened in a private group.
    Group(crate::node::groups::GroupEvent),
    /// A file transfer moved on (throttled while it runs).
    File(crate::node::files::progress::FileProgress),
}

/// Requests to the service.
pub(crate) enum Request {
    /// Send these sealed messages and store them in the outbox; answered
    /// once they are on disk.
    Send {
        items: Vec<(StoredMessage, Envelope)>,
        reply: Reply,
    },
    /// Mark a conversation read and send a read receipt.
    MarkRead {
        peer: PeerId,
        reply: oneshot::Sender<Result<usize, StoreError>>,
    },
    /// Queue a control message (buddy request) for `to`.
    Control { to: PeerId, body: Body },
    /// A store read, run in order with the writes.
    Read(Box<dyn FnOnce(&Store) + Send>),
    /// Hold the mailbox holder's store worker (tests).
    #[cfg(feature = "test-util")]
    PauseHolder(oneshot::Sender<MailboxPause>),
    /// How many message streams a peer has open to us (tests).
    #[cfg(feature = "test-util")]
    MessageStreams(PeerId, oneshot::Sender<usize>),
    /// Something happened on the network.
    Net(NetEvent),
    /// Run a group operation (a store job, flushed before the answer) and
    /// queue the 1:1 messages it leaves.
    Group {
        job: crate::node::groups::Job,
        reply:
            oneshot::Sender<Result<crate::node::groups::Answer, crate::node::groups::GroupOpError>>,
    },
}

/// Who waits for a send to be durable.
pub(super) type Reply = oneshot::Sender<Result<(), StoreError>>;
