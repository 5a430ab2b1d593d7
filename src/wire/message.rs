//! MESSAGE on the wire: the sealed [`Envelope`], what is inside it
//! ([`Inner`]), and the frames of the `/roost/msg/1` stream.
//!
//! A stream carries length-prefixed frames (4-byte big-endian length, then
//! CBOR): the sender writes [`Envelope`]s back to back without waiting, and
//! the receiver answers each with an [`Ack`] naming its id. One long-lived
//! stream per peer pair, not one per message: that is what keeps libp2p near
//! its raw throughput (see docs/messaging.md).

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::WireError;
pub use super::frame::{ReadFrame, push_frame, read_frame, write_frame};
use crate::crypto::{CryptoError, NONCE_LEN, Sealer};

/// Largest frame either side accepts.
pub const MAX_FRAME: usize = 128 * 1024;
/// Largest message body.
pub const MAX_BODY: usize = 64 * 1024;
/// Longest content type.
pub const MAX_CONTENT_TYPE: usize = 128;
/// Longest subject.
pub const MAX_SUBJECT: usize = 256;
/// Most message ids in one receipt.
pub const MAX_RECEIPT_IDS: usize = 1024;

const AAD_DOMAIN: &[u8] = b"roost/msg/v1\0";

/// A message id: 16 random bytes, shown as 32 hex characters. Ids make
/// every delivery idempotent: a message is stored once however many paths
/// (retries, mailboxes) bring it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageId(#[serde(with = "serde_bytes")] pub [u8; 16]);

impl MessageId {
    /// A fresh random id.
    pub fn random() -> Self {
        let mut b = [0u8; 16];
        // The OS RNG failing is not recoverable; fall back to time-derived
        // bytes rather than panicking (ids need uniqueness, not secrecy).
        if getrandom::fill(&mut b).is_err() {
            let t = crate::clock::unix_ms().to_be_bytes();
            b = blake3::hash(&t).as_bytes()[..16]
                .try_into()
                .unwrap_or([0; 16]);
        }
        Self(b)
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::str::FromStr for MessageId {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        let mut b = [0u8; 16];
        hex::decode_to_slice(s, &mut b).map_err(|_| WireError::Malformed("message id".into()))?;
        Ok(Self(b))
    }
}

/// What travels between nodes and sits in mailboxes: only the recipient can
/// open `sealed`; holders see ids and the two parties, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Message id.
    pub id: MessageId,
    /// Recipient (PeerId bytes).
    #[serde(with = "serde_bytes")]
    pub to: Vec<u8>,
    /// Sender (PeerId bytes): the recipient needs it to pick the key.
    #[serde(with = "serde_bytes")]
    pub from: Vec<u8>,
    /// AEAD nonce.
    #[serde(with = "serde_bytes")]
    pub nonce: [u8; NONCE_LEN],
    /// CBOR of [`Inner`], sealed.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

/// What the sender wrote, readable only by the recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inner {
    /// Sender again, inside the seal: must equal the envelope's.
    #[serde(with = "serde_bytes")]
    pub from: Vec<u8>,
    /// Sender's clock, Unix milliseconds.
    pub sent_at: u64,
    /// What it is.
    pub body: Body,
}

impl Inner {
    /// A `text/plain` message from `from`, written at `sent_at`.
    pub fn text(from: &PeerId, sent_at: u64, text: &str) -> Self {
        Self {
            from: from.to_bytes(),
            sent_at,
            body: Body::Content {
                content_type: "text/plain".into(),
                subject: None,
                data: text.as_bytes().to_vec(),
            },
        }
    }
}

/// The kinds of message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Something a person wrote: `text/plain` (UTF-8) or another MIME type.
    Content {
        /// MIME type, e.g. `text/plain`.
        content_type: String,
        /// Optional subject line.
        subject: Option<String>,
        /// The body.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// "I added you": a buddy request (or, if the recipient has the sender
    /// on its list already, the acceptance of the one it sent).
    BuddyRequest,
    /// A receipt for earlier messages, travelling as a message of its own.
    Receipt {
        /// Delivered or read.
        kind: ReceiptKind,
        /// Which messages.
        ids: Vec<MessageId>,
    },
    /// Something of a private group (`wire::group::GroupBody`, CBOR): a
    /// group message, a state with its epoch secret, a request to the
    /// creator. Appended last, so earlier variants keep their encoding.
    Group(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// What a receipt confirms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReceiptKind {
    /// Stored by the recipient's node.
    Delivered,
    /// Seen by the recipient.
    Read,
}

/// One frame of `/roost/msg/1`, sender to recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// Please take this message.
    Deliver(Envelope),
}

/// Encodes `Frame::Deliver(env)` without cloning the envelope (the hot
/// path of every send): a borrowed twin of [`Frame`] with the same encoding.
pub fn encode_deliver(env: &Envelope) -> Result<Vec<u8>, WireError> {
    #[derive(Serialize)]
    enum FrameRef<'a> {
        Deliver(&'a Envelope),
    }
    super::encode(&FrameRef::Deliver(env))
}

/// The recipient's answer to one frame: SIP's "200 OK" for MESSAGE means
/// exactly `Accepted` — stored durably by the recipient's node, not read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The message answered; `None` if the frame could not even be read.
    pub id: Option<MessageId>,
    /// The verdict.
    pub result: AckResult,
}

/// Verdicts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AckResult {
    /// Stored durably, first time.
    Accepted,
    /// Already had it (a retry or a second path): also stored.
    Duplicate,
    /// Refused; retrying will not help.
    Rejected(RejectReason),
}

/// Why a message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RejectReason {
    /// Frame over [`MAX_FRAME`].
    #[error("frame too large")]
    TooLarge,
    /// Not a valid frame or envelope.
    #[error("malformed")]
    Malformed,
    /// Addressed to someone else.
    #[error("not addressed to this node")]
    NotForMe,
    /// The seal does not open: tampered, or not sealed by its claimed sender.
    #[error("seal does not open")]
    BadSeal,
    /// The sender inside differs from the one outside.
    #[error("sender mismatch")]
    SenderMismatch,
    /// The recipient blocked the sender.
    #[error("sender is blocked")]
    Blocked,
    /// The recipient cannot store it now (disk full, quota).
    #[error("recipient cannot store it")]
    Unavailable,
    /// A field inside is over its limit ([`MAX_BODY`], [`MAX_SUBJECT`],
    /// [`MAX_CONTENT_TYPE`]); no honest sender writes one.
    #[error("a field is over its limit")]
    FieldTooLarge,
}

fn aad(id: &MessageId, from: &[u8], to: &[u8]) -> Vec<u8> {
    [AAD_DOMAIN, &id.0, &[from.len() as u8], from, to].concat()
}

/// Seals `inner` from `sealer`'s identity to `to`.
pub fn seal(
    sealer: &Sealer,
    id: MessageId,
    to: &PeerId,
    inner: &Inner,
) -> Result<Envelope, CryptoError> {
    let from = sealer.me().to_bytes();
    let to_b = to.to_bytes();
    let plain = super::encode(inner).map_err(|_| CryptoError::Seal)?;
    let (nonce, sealed) = sealer.seal(to, &aad(&id, &from, &to_b), &plain)?;
    Ok(Envelope {
        id,
        to: to_b,
        from,
        nonce,
        sealed,
    })
}

/// Opens an envelope addressed to `sealer`'s identity and checks that the
/// sender inside matches the key that sealed it. Returns sender and inner.
pub fn open(sealer: &Sealer, env: &Envelope) -> Result<(PeerId, Inner), RejectReason> {
    if env.to != sealer.me().to_bytes() {
        return Err(RejectReason::NotForMe);
    }
    let from = PeerId::from_bytes(&env.from).map_err(|_| RejectReason::Malformed)?;
    let plain = sealer
        .open(
            &from,
            &aad(&env.id, &env.from, &env.to),
            &env.nonce,
            &env.sealed,
        )
        .map_err(|_| RejectReason::BadSeal)?;
    let inner: Inner = super::decode(&plain, MAX_FRAME).map_err(|_| RejectReason::Malformed)?;
    if inner.from != env.from {
        return Err(RejectReason::SenderMismatch);
    }
    if let Body::Receipt { ids, .. } = &inner.body
        && ids.len() > MAX_RECEIPT_IDS
    {
        return Err(RejectReason::Malformed);
    }
    check_fields(&inner.body)?;
    Ok((from, inner))
}

/// The limits a sender's `Content::validate` applies, checked again on
/// receipt: the frame limit alone would let a subject or a content type
/// run to ~128 KiB into the history and onto the user's screen.
pub fn check_fields(body: &Body) -> Result<(), RejectReason> {
    match body {
        Body::Content {
            content_type,
            subject,
            data,
        } if data.len() > MAX_BODY
            || content_type.len() > MAX_CONTENT_TYPE
            || subject.as_ref().is_some_and(|s| s.len() > MAX_SUBJECT) =>
        {
            Err(RejectReason::FieldTooLarge)
        }
        Body::Group(bytes) if bytes.len() > super::group::MAX_GROUP_BYTES => {
            Err(RejectReason::FieldTooLarge)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn text(from: &Identity, s: &str) -> Inner {
        Inner::text(&from.peer_id(), 1, s)
    }

    #[test]
    fn seal_open_round_trip_and_every_rejection() {
        let (a, b, c) = (
            Identity::generate().unwrap(),
            Identity::generate().unwrap(),
            Identity::generate().unwrap(),
        );
        let (sa, sb, sc) = (Sealer::new(&a), Sealer::new(&b), Sealer::new(&c));
        let id = MessageId::random();
        let env = seal(&sa, id, &b.peer_id(), &text(&a, "hi")).unwrap();
        let (from, inner) = open(&sb, &env).unwrap();
        assert_eq!(from, a.peer_id());
        assert_eq!(inner, text(&a, "hi"));

        // A third node holding the envelope cannot open it.
        assert_eq!(open(&sc, &env), Err(RejectReason::NotForMe));
        let mut readdressed = env.clone();
        readdressed.to = c.peer_id().to_bytes();
        assert_eq!(open(&sc, &readdressed), Err(RejectReason::BadSeal));
        // Tampering with ciphertext, id or claimed sender breaks the seal.
        let mut t = env.clone();
        t.sealed[3] ^= 0x40;
        assert_eq!(open(&sb, &t), Err(RejectReason::BadSeal));
        let mut t = env.clone();
        t.id = MessageId::random();
        assert_eq!(open(&sb, &t), Err(RejectReason::BadSeal));
        let mut t = env.clone();
        t.from = c.peer_id().to_bytes();
        assert_eq!(open(&sb, &t), Err(RejectReason::BadSeal));
        // A validly sealed envelope whose inner sender lies.
        let liar = seal(&sa, id, &b.peer_id(), &text(&c, "I am C")).unwrap();
        assert_eq!(open(&sb, &liar), Err(RejectReason::SenderMismatch));
    }

    #[test]
    fn oversize_fields_are_refused_at_open() {
        let (a, b) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let (sa, sb) = (Sealer::new(&a), Sealer::new(&b));
        let with = |content_type: &str, subject: Option<String>, data: Vec<u8>| Inner {
            from: a.peer_id().to_bytes(),
            sent_at: 1,
            body: Body::Content {
                content_type: content_type.into(),
                subject,
                data,
            },
        };
        let open_it = |inner: &Inner| {
            let env = seal(&sa, MessageId::random(), &b.peer_id(), inner).unwrap();
            open(&sb, &env).map(|(_, i)| i)
        };
        let at_limits = with(
            &format!("text/{}", "x".repeat(MAX_CONTENT_TYPE - 5)),
            Some("s".repeat(MAX_SUBJECT)),
            vec![b'x'; MAX_BODY],
        );
        assert_eq!(open_it(&at_limits), Ok(at_limits.clone()));
        for over in [
            with("text/plain", Some("s".repeat(MAX_SUBJECT + 1)), vec![]),
            with("text/plain", Some("s".repeat(100 * 1024)), vec![]),
            with(
                &format!("text/{}", "x".repeat(MAX_CONTENT_TYPE - 4)),
                None,
                vec![],
            ),
            with("text/plain", None, vec![b'x'; MAX_BODY + 1]),
        ] {
            assert_eq!(open_it(&over), Err(RejectReason::FieldTooLarge));
        }
    }

    #[test]
    fn envelope_overhead_is_small() {
        let (a, b) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let env = seal(
            &Sealer::new(&a),
            MessageId::random(),
            &b.peer_id(),
            &text(&a, &"x".repeat(100)),
        )
        .unwrap();
        let bytes = crate::wire::encode(&Frame::Deliver(env)).unwrap();
        // 100 bytes of text travel in under 400 (ids, two PeerIds, nonce, tag, CBOR field names).
        assert!(bytes.len() < 400, "frame is {} bytes", bytes.len());
    }

    #[test]
    fn frames_round_trip_and_oversize_is_reported_without_reading() {
        futures::executor::block_on(async {
            let mut buf = Vec::new();
            write_frame(&mut buf, b"hello").await.unwrap();
            write_frame(&mut buf, &[0u8; 100]).await.unwrap();
            let mut r = futures::io::Cursor::new(buf);
            assert!(
                matches!(read_frame(&mut r, 50).await.unwrap(), ReadFrame::Frame(f) if f == b"hello")
            );
            assert!(matches!(
                read_frame(&mut r, 50).await.unwrap(),
                ReadFrame::TooLarge(100)
            ));
            let mut empty = futures::io::Cursor::new(Vec::new());
            assert!(matches!(
                read_frame(&mut empty, 50).await.unwrap(),
                ReadFrame::Eof
            ));
        });
    }

    #[test]
    fn the_borrowed_encoding_is_the_frame_encoding() {
        let (a, b) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let env = seal(
            &Sealer::new(&a),
            MessageId::random(),
            &b.peer_id(),
            &text(&a, "x"),
        )
        .unwrap();
        let owned = crate::wire::encode(&Frame::Deliver(env.clone())).unwrap();
        assert_eq!(encode_deliver(&env).unwrap(), owned);
    }

    #[test]
    fn ids_print_and_parse() {
        let id = MessageId::random();
        assert_eq!(id.to_string().parse::<MessageId>().unwrap(), id);
        assert!("zz".parse::<MessageId>().is_err());
    }
}
