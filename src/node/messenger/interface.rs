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

impl Event {
    /// The event telling every window that our `m` was stored, or `None`
    /// for a part of a file: a part has no line of its own in any window
    /// and carries up to 64 KiB, too much to copy to every window (and
    /// enough, for one small file, to flood the event channel).
    pub fn sent(m: StoredMessage) -> Option<Self> {
        (m.content_type != crate::wire::files::PART_TYPE).then_some(Self::Sent(m))
    }
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
    /// Send `body` to `to` over a direct link, once, with no outbox row
    /// and no mailbox copy (a large group's catch-up question): worth
    /// something only while both are up.
    Direct { to: PeerId, body: Body },
    /// A store read, run in order with the writes.
    Read(Box<dyn FnOnce(&Store) + Send>),
    /// Hold the mailbox holder's store worker (tests).
    #[cfg(feature = "test-util")]
    PauseHolder(oneshot::Sender<MailboxPause>),
    /// How many message streams a peer has open to us (tests).
    #[cfg(feature = "test-util")]
    MessageStreams(PeerId, oneshot::Sender<usize>),
    /// How many messages the outbox schedule still tries (tests).
    #[cfg(feature = "test-util")]
    Pending(oneshot::Sender<usize>),
    /// Where the undelivered messages to a peer stand, and its link's
    /// set-up (benches).
    #[cfg(feature = "test-util")]
    Attempts(PeerId, oneshot::Sender<Attempts>),
    /// When our own mailbox is fetched next, and the poll interval now
    /// (benches).
    #[cfg(feature = "test-util")]
    NextFetch(oneshot::Sender<(std::time::Duration, std::time::Duration)>),
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

/// Where the messages to one peer stand in the messaging service
/// ([`crate::NodeHandle::outbox_attempts`]): a bench's view of why a
/// message has not arrived yet.
#[cfg(feature = "test-util")]
#[derive(Debug, Clone)]
pub struct Attempts {
    /// Each undelivered message to the peer.
    pub messages: Vec<crate::node::outbox::Attempt>,
    /// Its link's set-up.
    pub link: super::connects::LinkSetup,
}

/// Who waits for a send to be durable.
pub(super) type Reply = oneshot::Sender<Result<(), StoreError>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Direction;

    fn ours(content_type: &str) -> StoredMessage {
        StoredMessage {
            id: MessageId::random(),
            peer: PeerId::random().to_bytes(),
            direction: Direction::Out,
            sent_at: 1,
            stored_at: 1,
            content_type: content_type.into(),
            subject: None,
            data: vec![0; 64 * 1024],
            state: MessageState::Queued,
            request: false,
        }
    }

    #[test]
    fn a_part_of_a_file_is_not_announced_to_every_window() {
        assert!(Event::sent(ours(crate::wire::files::PART_TYPE)).is_none());
        assert!(matches!(
            Event::sent(ours("text/plain")),
            Some(Event::Sent(_))
        ));
        assert!(Event::sent(ours(crate::wire::files::OFFER_TYPE)).is_some());
    }
}
