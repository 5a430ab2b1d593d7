//! `/roost/mailbox/1`: store-and-forward for recipients who are offline.
//! Request-response, one CBOR frame each way ([`super::frame::CborCodec`]).
//!
//! Holders keep the sealed [`Envelope`]s exactly as the sender made them:
//! they can see who wrote to whom, never what.

use libp2p::{PeerId, StreamProtocol};
use serde::{Deserialize, Serialize};

use super::message::{Envelope, MessageId};

/// The protocol name.
pub const MAILBOX_PROTOCOL: StreamProtocol = StreamProtocol::new("/roost/mailbox/1");
/// Most envelopes in one deposit.
pub const DEPOSIT_BATCH: usize = 64;
/// Largest request (a batch of deposited envelopes, or an ack of many ids).
pub const MAX_REQUEST: usize = 2 * 1024 * 1024;
/// Largest response (a page of envelopes).
pub const MAX_RESPONSE: usize = 1024 * 1024;
/// Most envelopes in one page.
pub const PAGE_ITEMS: usize = 64;
/// Most bytes of envelopes in one page (leaves room for framing).
pub const PAGE_BYTES: usize = 768 * 1024;
/// Most holders a recipient asks for its items (Kademlia's K).
pub const FETCH_FROM: usize = 20;
/// Most ids in one ack.
pub const MAX_ACK_IDS: usize = 1024;
/// Largest envelope a holder keeps, encoded: what one message frame can
/// carry on the direct path. A deposit may be much larger (up to
/// [`MAX_REQUEST`]), so this is checked per envelope at deposit; a held row
/// is read back with a limit above it, so nothing stored is unreadable.
pub const MAX_HELD_ENVELOPE: usize = super::message::MAX_FRAME;

/// What identifies one held item: the BLAKE3 hash of the envelope's
/// encoding. Holders deduplicate on it, not on the message id, which the
/// envelope carries in clear: a peer that plants other bytes under a real
/// id must not make the real item look "already held".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemHash(pub [u8; 32]);

impl ItemHash {
    /// The hash of an envelope already encoded with [`super::encode`].
    pub fn of_encoded(encoded: &[u8]) -> Self {
        Self(*blake3::hash(encoded).as_bytes())
    }

    /// The hash of `envelope` (encodes it); `None` if it cannot be encoded.
    pub fn of(envelope: &Envelope) -> Option<Self> {
        Encoding::of(envelope).map(|e| e.hash)
    }
}

/// An envelope's encoding and its [`ItemHash`], made once per deposited
/// envelope (CPU work, on the blocking pool): it gives a holder's
/// admission the size, its dedupe the hash, and its store row the bytes,
/// which the row embeds as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    /// The envelope encoded with [`super::encode`].
    pub bytes: Vec<u8>,
    /// The hash of `bytes`.
    pub hash: ItemHash,
}

impl Encoding {
    /// Encodes and hashes `envelope`; `None` if it cannot be encoded.
    pub fn of(envelope: &Envelope) -> Option<Self> {
        let bytes = super::encode(envelope).ok()?;
        let hash = ItemHash::of_encoded(&bytes);
        Some(Self { bytes, hash })
    }
}

/// The key under which a recipient's mailbox lives in the DHT keyspace:
/// holders are the peers closest to it. Hashing (rather than using the
/// recipient's own ID) puts the mailbox on other peers than the recipient's
/// DHT neighbourhood, and the prefix separates it from any other use.
pub fn mailbox_key(recipient: &PeerId) -> Vec<u8> {
    let mut h = blake3::Hasher::new();
    h.update(b"roost/mbox");
    h.update(&recipient.to_bytes());
    h.finalize().as_bytes().to_vec()
}

/// Requests to a mailbox holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MailboxRequest {
    /// Keep these envelopes (at most [`DEPOSIT_BATCH`]) for their
    /// recipients; one flush covers the whole batch.
    Deposit(Vec<Envelope>),
    /// The recipient asks for its items from `cursor` on (0 = the start).
    /// Refused unless the connection is authenticated as `recipient`.
    Fetch {
        /// Whose mailbox.
        #[serde(with = "serde_bytes")]
        recipient: Vec<u8>,
        /// The `next` of the previous page.
        cursor: u64,
    },
    /// The recipient has stored these; delete them. Refused unless the
    /// connection is authenticated as `recipient`.
    Ack {
        /// Whose mailbox.
        #[serde(with = "serde_bytes")]
        recipient: Vec<u8>,
        /// Message ids.
        ids: Vec<MessageId>,
    },
}

/// Answers of a holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MailboxResponse {
    /// Per deposited envelope, in order: `None` = stored durably (flushed),
    /// or already held; `Some(reason)` = not stored.
    Deposited(Vec<Option<DepositReject>>),
    /// A page of the recipient's items.
    Page {
        /// The envelopes.
        items: Vec<Envelope>,
        /// Cursor for the next page, `None` when this was the last.
        next: Option<u64>,
    },
    /// This many items were deleted.
    Acked {
        /// Count.
        removed: u32,
    },
    /// Only the recipient may fetch or ack its items.
    Denied,
}

/// Why a deposit was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DepositReject {
    /// The recipient's mailbox here is full (count or bytes).
    #[error("recipient's mailbox is full")]
    RecipientQuota,
    /// The depositor has too many items here, in all or for this
    /// recipient.
    #[error("depositor is over its quota")]
    DepositorQuota,
    /// The depositor is not the envelope's sender, or the envelope is
    /// addressed oddly (to the holder, to the depositor).
    #[error("envelope not acceptable from this depositor")]
    NotAcceptable,
    /// The holder cannot store now.
    #[error("holder unavailable")]
    Unavailable,
    /// The envelope is larger than a holder keeps ([`MAX_HELD_ENVELOPE`]).
    #[error("envelope too large to hold")]
    TooLarge,
}
