//! Public rooms on the wire: the room's signed record (in the DHT under a
//! key derived from its name), the messages members sign and gossip, and
//! the frames of the history protocol a joiner asks members with.
//!
//! Everything a user signs here uses the domain-separated `{body, sig}`
//! shape of [`super::signed`]: a record signature can never pass as a
//! message signature, nor either as a locator or an invite. Every decoder
//! checks its size limit before parsing and returns a typed [`RoomError`].

use libp2p::kad::RecordKey;
use libp2p::{PeerId, StreamProtocol};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::WireError;
use super::signed::{self, Signed};
use crate::identity::{Identity, ed25519_key};

/// The history protocol: a joiner asks a member for a room's last messages.
pub const HISTORY_PROTOCOL: StreamProtocol = StreamProtocol::new("/roost/room-history/1");
/// Record key prefix; the rest is the room id in lowercase hex.
pub const KEY_PREFIX: &str = "/roost/room/";
/// Longest room name (after normalisation), in bytes.
pub const MAX_NAME: usize = 64;
/// Most keys one room's ban list holds: the record must stay well inside
/// Kademlia's 16 KiB packet and the store's per-record limit.
pub const MAX_BANS: usize = 40;
/// Largest room record accepted.
pub const MAX_RECORD_BYTES: usize = crate::wire::locator::MAX_RECORD_BYTES;
/// Longest message text, in bytes.
pub const MAX_TEXT: usize = 4096;
/// Largest signed room message.
pub const MAX_MSG_BYTES: usize = MAX_TEXT + 512;
/// Largest gossip frame (a message or a record, with its CBOR wrapping).
pub const MAX_GOSSIP_BYTES: usize = MAX_MSG_BYTES + 64;
/// Most messages a history answer carries (and a joiner asks for).
pub const MAX_HISTORY: usize = 50;
/// Largest history request.
pub const MAX_HISTORY_REQUEST: usize = 128;
/// Largest history answer: [`MAX_HISTORY`] messages and a record.
pub const MAX_HISTORY_RESPONSE: usize = MAX_HISTORY * (MAX_MSG_BYTES + 8) + MAX_RECORD_BYTES + 64;

const RECORD_DOMAIN: &[u8] = b"roost/room-record/v1\0";
const MSG_DOMAIN: &[u8] = b"roost/room-msg/v1\0";
const ID_DOMAIN: &[u8] = b"roost/room\0";

/// Why room data was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// A name that normalises to nothing, is too long or holds characters
    /// outside `a-z 0-9 - _ .`.
    #[error("room name must be 1-{MAX_NAME} characters of a-z, 0-9, '-', '_' or '.'")]
    BadName,
    /// Bytes over the type's limit, or not its CBOR.
    #[error("malformed room data: {0}")]
    Malformed(WireError),
    /// A key that is no ed25519 key.
    #[error("room data names a key that is not an ed25519 key")]
    BadKey,
    /// The signature does not verify (strictly) for the key it names.
    #[error("room data signature does not verify")]
    BadSignature,
    /// The record is stored under another key than its name's.
    #[error("room record is not stored under its name's key")]
    KeyMismatch,
    /// More bans than [`MAX_BANS`].
    #[error("room record bans more than {MAX_BANS} keys")]
    TooManyBans,
    /// A record for a name already held, signed by another owner.
    #[error("room name is owned by another key")]
    NameTaken,
    /// Not newer than the record held.
    #[error("room record seq {got} is not newer than the held {held}")]
    Stale {
        /// Seq held.
        held: u64,
        /// Seq offered.
        got: u64,
    },
    /// A message for another room than the one it came in on.
    #[error("message belongs to another room")]
    WrongRoom,
    /// Text over [`MAX_TEXT`].
    #[error("message text over {MAX_TEXT} bytes")]
    TooLong,
}

impl From<WireError> for RoomError {
    fn from(e: WireError) -> Self {
        Self::Malformed(e)
    }
}

/// A room's id: `blake3("roost/room\0" ‖ normalised name)`. Deriving it
/// from the name is what lets anyone join by name alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(pub [u8; 32]);

impl RoomId {
    /// The id of the room called `name` (normalised first).
    pub fn of_name(name: &str) -> Result<Self, RoomError> {
        let name = normalize(name)?;
        Ok(Self::of_normalized(&name))
    }

    fn of_normalized(name: &str) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(ID_DOMAIN);
        h.update(name.as_bytes());
        Self(*h.finalize().as_bytes())
    }

    /// Parses the hex form.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = hex::decode(text.trim()).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// From 32 bytes off the wire.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        Some(Self(bytes.try_into().ok()?))
    }

    /// The DHT key of the room's record and of its provider records.
    pub fn record_key(&self) -> RecordKey {
        RecordKey::new(&format!("{KEY_PREFIX}{self}"))
    }

    /// The gossipsub topic the room's messages travel on.
    pub fn topic(&self) -> String {
        format!("roost/room/{self}")
    }
}

impl std::fmt::Display for RoomId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// The one spelling of a room name: trimmed, lowercase ASCII letters,
/// digits, `-`, `_`, `.`. A small alphabet keeps look-alike names (Unicode
/// confusables, case, spaces) from naming different rooms.
pub fn normalize(name: &str) -> Result<String, RoomError> {
    let name = name.trim().to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if ok {
        Ok(name)
    } else {
        Err(RoomError::BadName)
    }
}

/// Whether `key` is a room key (its kind decides which rule applies).
pub fn is_room_key(key: &RecordKey) -> bool {
    key.as_ref().starts_with(KEY_PREFIX.as_bytes())
}

#[derive(Debug, Serialize, Deserialize)]
struct RecordBody {
    name: String,
    #[serde(with = "serde_bytes")]
    owner: Vec<u8>,
    created_at: u64,
    seq: u64,
    bans: Vec<ByteBuf>,
}

/// A room's record, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRecord {
    /// Derived from the name.
    pub id: RoomId,
    /// Normalised name.
    pub name: String,
    /// Who signed it: the first to claim the name.
    pub owner: PeerId,
    /// Unix ms at creation (as the owner says).
    pub created_at: u64,
    /// Grows with every change (a ban); the higher replaces the lower.
    pub seq: u64,
    /// Keys whose messages members drop.
    pub bans: Vec<PeerId>,
    /// The signed bytes, as stored and gossiped.
    pub raw: Vec<u8>,
}

/// Signs a record for the room `name` owned by `identity`.
pub fn sign_record(
    identity: &Identity,
    name: &str,
    created_at: u64,
    seq: u64,
    bans: &[PeerId],
) -> Result<RoomRecord, RoomError> {
    let name = normalize(name)?;
    if bans.len() > MAX_BANS {
        return Err(RoomError::TooManyBans);
    }
    let owner = identity.peer_id();
    let body = RecordBody {
        name: name.clone(),
        owner: key_bytes(&owner)?,
        created_at,
        seq,
        bans: bans
            .iter()
            .map(|p| key_bytes(p).map(ByteBuf::from))
            .collect::<Result<_, _>>()?,
    };
    let raw = signed::sign(identity, RECORD_DOMAIN, super::encode(&body)?)?;
    Ok(RoomRecord {
        id: RoomId::of_normalized(&name),
        name,
        owner,
        created_at,
        seq,
        bans: bans.to_vec(),
        raw,
    })
}

/// A record body naming `owner` with any signature, for tests that forge
/// records (a signature by another key, or none at all).
#[cfg(feature = "test-util")]
pub fn assemble_record(
    name: &str,
    owner: &PeerId,
    seq: u64,
    sig: Vec<u8>,
) -> Result<Vec<u8>, RoomError> {
    let body = RecordBody {
        name: normalize(name)?,
        owner: key_bytes(owner)?,
        created_at: 0,
        seq,
        bans: Vec::new(),
    };
    Ok(signed::assemble(&body, sig)?)
}

/// A message naming `sender` with any signature, for tests that forge
/// messages.
#[cfg(feature = "test-util")]
pub fn assemble_message(
    room: RoomId,
    sender: &PeerId,
    sent_at: u64,
    text: &str,
    sig: Vec<u8>,
) -> Result<Vec<u8>, RoomError> {
    let body = MsgBody {
        room: room.0.to_vec(),
        sender: key_bytes(sender)?,
        sent_at,
        text: text.to_string(),
    };
    Ok(signed::assemble(&body, sig)?)
}

fn key_bytes(peer: &PeerId) -> Result<Vec<u8>, RoomError> {
    Ok(ed25519_key(peer)
        .ok_or(RoomError::BadKey)?
        .as_bytes()
        .to_vec())
}

fn peer_of(bytes: &[u8]) -> Result<(ed25519_dalek::VerifyingKey, PeerId), RoomError> {
    signed::key_of(bytes).ok_or(RoomError::BadKey)
}

/// Decodes and checks a record on its own: size, shape, name, bans and the
/// owner's signature.
pub fn decode_record(value: &[u8]) -> Result<RoomRecord, RoomError> {
    let signed: Signed = super::decode(value, MAX_RECORD_BYTES)?;
    let body: RecordBody = super::decode(&signed.body, MAX_RECORD_BYTES)?;
    let (vk, owner) = peer_of(&body.owner)?;
    if !signed::verifies(&vk, RECORD_DOMAIN, &signed) {
        return Err(RoomError::BadSignature);
    }
    if normalize(&body.name)? != body.name {
        return Err(RoomError::BadName);
    }
    if body.bans.len() > MAX_BANS {
        return Err(RoomError::TooManyBans);
    }
    let bans = body
        .bans
        .iter()
        .map(|b| peer_of(b).map(|(_, p)| p))
        .collect::<Result<_, _>>()?;
    Ok(RoomRecord {
        id: RoomId::of_normalized(&body.name),
        name: body.name,
        owner,
        created_at: body.created_at,
        seq: body.seq,
        bans,
        raw: value.to_vec(),
    })
}

/// Checks a record stored (or found) under `key`: [`decode_record`], and
/// the key is its name's.
pub fn validate_record(key: &RecordKey, value: &[u8]) -> Result<RoomRecord, RoomError> {
    let record = decode_record(value)?;
    if record.id.record_key() != *key {
        return Err(RoomError::KeyMismatch);
    }
    Ok(record)
}

/// Whether `new` may replace `held` (both valid, same room): the first
/// owner of a name keeps it, and only a higher seq of that owner replaces
/// its record.
pub fn may_replace(held: Option<&RoomRecord>, new: &RoomRecord) -> Result<(), RoomError> {
    match held {
        None => Ok(()),
        Some(h) if h.owner != new.owner => Err(RoomError::NameTaken),
        Some(h) if new.seq <= h.seq => Err(RoomError::Stale {
            held: h.seq,
            got: new.seq,
        }),
        Some(_) => Ok(()),
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct MsgBody {
    #[serde(with = "serde_bytes")]
    room: Vec<u8>,
    #[serde(with = "serde_bytes")]
    sender: Vec<u8>,
    sent_at: u64,
    text: String,
}

/// A room message, its sender's signature checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomMessage {
    /// `blake3` of the signed bytes, first 16 bytes in hex: the same
    /// message has the same id on every path that brings it.
    pub id: String,
    /// The room.
    pub room: RoomId,
    /// Who signed it.
    pub sender: PeerId,
    /// Unix ms, as the sender says.
    pub sent_at: u64,
    /// The text.
    pub text: String,
    /// The signed bytes, as gossiped and handed to joiners.
    pub raw: Vec<u8>,
}

/// The id of `bytes`: of a gossip frame for gossipsub, of a message's
/// signed body for the message (so re-encoding the signed wrapper, which
/// the signature does not cover, cannot give one message two ids).
pub fn message_id(bytes: &[u8]) -> String {
    hex::encode(&blake3::hash(bytes).as_bytes()[..16])
}

/// Signs `text` for `room` as `identity`.
pub fn sign_message(
    identity: &Identity,
    room: RoomId,
    sent_at: u64,
    text: &str,
) -> Result<RoomMessage, RoomError> {
    if text.len() > MAX_TEXT {
        return Err(RoomError::TooLong);
    }
    let sender = identity.peer_id();
    let body = MsgBody {
        room: room.0.to_vec(),
        sender: key_bytes(&sender)?,
        sent_at,
        text: text.to_string(),
    };
    let body = super::encode(&body)?;
    let id = message_id(&body);
    let raw = signed::sign(identity, MSG_DOMAIN, body)?;
    Ok(RoomMessage {
        id,
        room,
        sender,
        sent_at,
        text: text.to_string(),
        raw,
    })
}

/// Decodes a message and checks its sender's signature, and that it is
/// for `room`.
pub fn open_message(raw: &[u8], room: RoomId) -> Result<RoomMessage, RoomError> {
    let signed: Signed = super::decode(raw, MAX_MSG_BYTES)?;
    let body: MsgBody = super::decode(&signed.body, MAX_MSG_BYTES)?;
    let (vk, sender) = peer_of(&body.sender)?;
    if !signed::verifies(&vk, MSG_DOMAIN, &signed) {
        return Err(RoomError::BadSignature);
    }
    if body.room != room.0 {
        return Err(RoomError::WrongRoom);
    }
    if body.text.len() > MAX_TEXT {
        return Err(RoomError::TooLong);
    }
    Ok(RoomMessage {
        id: message_id(&signed.body),
        room,
        sender,
        sent_at: body.sent_at,
        text: body.text,
        raw: raw.to_vec(),
    })
}

/// What travels on a room's gossipsub topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Gossip {
    /// A signed message ([`open_message`]).
    Msg(ByteBuf),
    /// The room's signed record, pushed by its owner after a change.
    Record(ByteBuf),
}

impl Gossip {
    /// Decodes a gossip frame within [`MAX_GOSSIP_BYTES`].
    pub fn decode(bytes: &[u8]) -> Result<Self, RoomError> {
        Ok(super::decode(bytes, MAX_GOSSIP_BYTES)?)
    }
}

/// A joiner's question: the last `limit` messages of `room`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRequest {
    /// The room id (32 bytes).
    pub room: ByteBuf,
    /// At most [`MAX_HISTORY`] is answered.
    pub limit: u32,
}

/// A member's answer: the room's record as it holds it, and signed
/// messages, oldest first; the asker checks each signature itself.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HistoryResponse {
    /// The record the member holds, if any.
    pub record: Option<ByteBuf>,
    /// Signed messages.
    pub messages: Vec<ByteBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalise_and_odd_ones_are_refused() {
        assert_eq!(normalize("  Rust-Talk ").unwrap(), "rust-talk");
        assert_eq!(
            RoomId::of_name("Lobby").unwrap(),
            RoomId::of_name("lobby").unwrap()
        );
        for bad in ["", "   ", "a b", "lobbý", &"x".repeat(MAX_NAME + 1)] {
            assert_eq!(normalize(bad), Err(RoomError::BadName), "{bad:?}");
        }
    }

    #[test]
    fn one_message_has_one_id_however_its_wrapper_is_encoded() {
        let who = Identity::generate().unwrap();
        let room = RoomId::of_name("lobby").unwrap();
        let m = sign_message(&who, room, 5, "hi").unwrap();
        assert_eq!(open_message(&m.raw, room).unwrap().id, m.id);
        // The wrapper's fields in the other order: other bytes, same message.
        let signed: Signed = crate::wire::decode(&m.raw, MAX_MSG_BYTES).unwrap();
        let swapped = crate::wire::encode(&ciborium::Value::Map(vec![
            ("sig".into(), ciborium::Value::Bytes(signed.sig)),
            ("body".into(), ciborium::Value::Bytes(signed.body)),
        ]))
        .unwrap();
        assert_ne!(swapped, m.raw);
        assert_eq!(open_message(&swapped, room).unwrap().id, m.id);
        // Padding after the value is refused outright.
        let mut padded = m.raw.clone();
        padded.push(0);
        assert!(matches!(
            open_message(&padded, room),
            Err(RoomError::Malformed(WireError::Trailing(1)))
        ));
    }

    #[test]
    fn a_record_round_trips_and_its_key_is_checked() {
        let owner = Identity::generate().unwrap();
        let banned = Identity::generate().unwrap().peer_id();
        let r = sign_record(&owner, "Lobby", 5, 1, &[banned]).unwrap();
        let got = validate_record(&RoomId::of_name("lobby").unwrap().record_key(), &r.raw).unwrap();
        assert_eq!(got, r);
        assert_eq!(got.bans, vec![banned]);
        let other = RoomId::of_name("other").unwrap().record_key();
        assert_eq!(validate_record(&other, &r.raw), Err(RoomError::KeyMismatch));
    }

    #[test]
    fn a_forged_record_signature_is_refused() {
        let owner = Identity::generate().unwrap();
        let r = sign_record(&owner, "lobby", 5, 1, &[]).unwrap();
        let mut signed: Signed = crate::wire::decode(&r.raw, MAX_RECORD_BYTES).unwrap();
        signed.sig[3] ^= 1;
        let forged = crate::wire::encode(&signed).unwrap();
        assert_eq!(decode_record(&forged), Err(RoomError::BadSignature));
        // A message signature is no record signature (domains differ).
        let m = sign_message(&owner, r.id, 1, "hi").unwrap();
        assert!(decode_record(&m.raw).is_err());
    }

    #[test]
    fn the_first_owner_keeps_the_name_and_only_a_higher_seq_replaces() {
        let (a, b) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let r1 = sign_record(&a, "lobby", 5, 1, &[]).unwrap();
        let r2 = sign_record(&a, "lobby", 5, 2, &[b.peer_id()]).unwrap();
        let squat = sign_record(&b, "lobby", 1, 99, &[]).unwrap();
        assert_eq!(may_replace(None, &r1), Ok(()));
        assert_eq!(may_replace(Some(&r1), &r2), Ok(()));
        assert_eq!(
            may_replace(Some(&r2), &r1),
            Err(RoomError::Stale { held: 2, got: 1 })
        );
        assert_eq!(may_replace(Some(&r1), &squat), Err(RoomError::NameTaken));
    }

    #[test]
    fn too_many_bans_are_refused_and_the_record_stays_small() {
        let owner = Identity::generate().unwrap();
        let bans: Vec<PeerId> = (0..MAX_BANS)
            .map(|_| Identity::generate().unwrap().peer_id())
            .collect();
        let r = sign_record(&owner, &"n".repeat(MAX_NAME), 1, 1, &bans).unwrap();
        assert!(r.raw.len() <= MAX_RECORD_BYTES, "{}", r.raw.len());
        let more: Vec<PeerId> = (0..=MAX_BANS)
            .map(|_| Identity::generate().unwrap().peer_id())
            .collect();
        assert_eq!(
            sign_record(&owner, "x", 1, 1, &more),
            Err(RoomError::TooManyBans)
        );
    }

    #[test]
    fn messages_are_bound_to_their_sender_and_room() {
        let who = Identity::generate().unwrap();
        let room = RoomId::of_name("lobby").unwrap();
        let m = sign_message(&who, room, 7, "hello").unwrap();
        assert_eq!(open_message(&m.raw, room).unwrap(), m);
        let other = RoomId::of_name("other").unwrap();
        assert_eq!(open_message(&m.raw, other), Err(RoomError::WrongRoom));
        let mut signed: Signed = crate::wire::decode(&m.raw, MAX_MSG_BYTES).unwrap();
        signed.sig[0] ^= 1;
        let forged = crate::wire::encode(&signed).unwrap();
        assert_eq!(open_message(&forged, room), Err(RoomError::BadSignature));
        assert_eq!(
            sign_message(&who, room, 1, &"x".repeat(MAX_TEXT + 1)),
            Err(RoomError::TooLong)
        );
        let big = vec![0u8; MAX_MSG_BYTES + 1];
        assert!(matches!(
            open_message(&big, room),
            Err(RoomError::Malformed(WireError::TooLarge { .. }))
        ));
    }
}
