//! Private groups on the wire: what rides inside a 1:1 envelope as
//! [`Body::Group`](super::message::Body::Group) ([`GroupBody`]), the group
//! state the creator signs ([`GroupState`]), and the group message, sealed
//! once under its sender's chain and signed by its sender ([`MsgBody`]).
//!
//! Every decoder here is bounded: [`decode_body`] refuses more than
//! [`MAX_GROUP_BYTES`] before parsing, and [`check_state`] refuses rosters
//! over [`MAX_MEMBERS`] and names over [`MAX_NAME`]. See docs/rooms.md.

use ed25519_dalek::Signature;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::WireError;
use super::signed::signed_bytes;
use crate::identity::{Identity, ed25519_key};

/// Largest [`GroupBody`] accepted (a state with a full roster fits).
pub const MAX_GROUP_BYTES: usize = 100 * 1024;
/// Most members of one group.
pub const MAX_MEMBERS: usize = 1000;
/// Longest group name, in bytes.
pub const MAX_NAME: usize = 64;
/// Longest group message text, in bytes.
pub const MAX_TEXT: usize = 16 * 1024;
/// Most ids in one add request.
pub const MAX_ADD: usize = 64;

/// Domain of the creator's signature over a state.
pub const STATE_DOMAIN: &[u8] = b"roost/group-state/v1\0";
/// Domain of a sender's signature over a group message.
pub const MSG_DOMAIN: &[u8] = b"roost/group-msg/v1\0";

/// A group's id: 32 random bytes, shown as 64 hex characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupId(#[serde(with = "serde_bytes")] pub [u8; 32]);

impl GroupId {
    /// A fresh random id.
    pub fn random() -> Result<Self, WireError> {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|_| WireError::Malformed("no randomness".into()))?;
        Ok(Self(b))
    }
}

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::str::FromStr for GroupId {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b).map_err(|_| WireError::Malformed("group id".into()))?;
        Ok(Self(b))
    }
}

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// May add and remove members and admins (through the creator, the
    /// key authority, unless it is the creator).
    Admin,
    /// May read and send.
    Member,
}

impl Role {
    /// The name shown to users.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

/// One roster entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// PeerId bytes.
    #[serde(with = "serde_bytes")]
    pub id: Vec<u8>,
    /// Role.
    pub role: Role,
}

/// What a state changed, shown in every member's log as a system line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// The group was made.
    Created,
    /// These joined.
    Added(Vec<serde_bytes::ByteBuf>),
    /// This one was removed by an admin.
    Removed(#[serde(with = "serde_bytes")] Vec<u8>),
    /// This one left.
    Left(#[serde(with = "serde_bytes")] Vec<u8>),
    /// This member's role is now the one named.
    Role(#[serde(with = "serde_bytes")] Vec<u8>, Role),
}

/// The group state, signed by its creator (the one key authority), so
/// every member sees the same linear history: each state names the hash
/// of the one before and a fresh epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    /// Which group.
    pub group_id: GroupId,
    /// Its name.
    pub name: String,
    /// The creator's PeerId bytes: the key that signs every state.
    #[serde(with = "serde_bytes")]
    pub creator: Vec<u8>,
    /// Bumped by every state; each epoch has its own secret.
    pub epoch: u64,
    /// Who is in, with roles.
    pub roster: Vec<Member>,
    /// blake3 of the previous state's signed bytes (zeros for the first).
    #[serde(with = "serde_bytes")]
    pub prev: [u8; 32],
    /// The creator's clock when it issued this state, Unix ms.
    pub issued_at: u64,
    /// What changed.
    pub change: Change,
}

impl GroupState {
    /// The role of `peer`, if a member.
    pub fn role_of(&self, peer: &PeerId) -> Option<Role> {
        let b = peer.to_bytes();
        self.roster.iter().find(|m| m.id == b).map(|m| m.role)
    }

    /// The members as PeerIds (entries that do not parse are skipped;
    /// [`check_state`] refuses them anyway).
    pub fn members(&self) -> Vec<PeerId> {
        self.roster
            .iter()
            .filter_map(|m| PeerId::from_bytes(&m.id).ok())
            .collect()
    }

    /// The creator as a PeerId.
    pub fn creator_id(&self) -> Result<PeerId, WireError> {
        PeerId::from_bytes(&self.creator).map_err(|_| WireError::Malformed("creator".into()))
    }
}

/// A state as signed: the CBOR of [`GroupState`] and the creator's
/// signature over exactly those bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedState {
    /// CBOR of [`GroupState`].
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// ed25519 signature of the creator.
    #[serde(with = "serde_bytes")]
    pub sig: Vec<u8>,
}

impl SignedState {
    /// Signs `state` with the creator's identity.
    pub fn sign(identity: &Identity, state: &GroupState) -> Result<Self, WireError> {
        let body = super::encode(state)?;
        let sig = identity
            .sign(&signed_bytes(STATE_DOMAIN, &body))
            .to_bytes()
            .to_vec();
        Ok(Self { body, sig })
    }

    /// The hash the next state names as `prev`.
    pub fn hash(&self) -> [u8; 32] {
        blake3::hash(&self.body).into()
    }

    /// Decodes and checks the state: within limits and signed by the
    /// creator it names. Whether that creator is the one we know is the
    /// caller's check.
    pub fn open(&self) -> Result<GroupState, GroupWireError> {
        let state: GroupState = super::decode(&self.body, MAX_GROUP_BYTES)?;
        check_state(&state)?;
        let creator = state.creator_id()?;
        if !verifies(&creator, STATE_DOMAIN, &self.body, &self.sig) {
            return Err(GroupWireError::BadSignature);
        }
        Ok(state)
    }
}

/// The limits of a state: name, roster size, parseable ids, no duplicates.
pub fn check_state(state: &GroupState) -> Result<(), GroupWireError> {
    if state.name.len() > MAX_NAME {
        return Err(GroupWireError::FieldTooLarge);
    }
    if state.roster.len() > MAX_MEMBERS {
        return Err(GroupWireError::TooManyMembers);
    }
    let mut seen = std::collections::HashSet::new();
    for m in &state.roster {
        if PeerId::from_bytes(&m.id).is_err() || !seen.insert(m.id.as_slice()) {
            return Err(GroupWireError::Malformed("roster".into()));
        }
    }
    Ok(())
}

/// The authenticated header of a group message, also its AEAD's AAD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Which group.
    pub group_id: GroupId,
    /// Which epoch's secret it is sealed under.
    pub epoch: u64,
    /// Its sender (PeerId bytes).
    #[serde(with = "serde_bytes")]
    pub sender: Vec<u8>,
    /// Its number in the sender's chain for this epoch.
    pub n: u64,
}

/// A group message as its sender signs it: the header and the ciphertext
/// (of [`Plain`]) sealed under the sender's chain key `n`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsgBody {
    /// Header (AAD).
    pub header: Header,
    /// XChaCha20-Poly1305 of the CBOR of [`Plain`].
    #[serde(with = "serde_bytes")]
    pub ct: Vec<u8>,
}

/// What a group message says, inside the seal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plain {
    /// Sender's clock, Unix ms.
    pub sent_at: u64,
    /// The text.
    pub text: String,
}

/// A request to the creator, who alone issues states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Add these members (admins only).
    Add(Vec<serde_bytes::ByteBuf>),
    /// Remove this member (admins only).
    Remove(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Take me out.
    Leave,
    /// Make this member an admin, or an admin a member again (admins
    /// only; the creator stays an admin).
    SetRole(#[serde(with = "serde_bytes")] Vec<u8>, Role),
}

/// What `Body::Group` carries: one of these, CBOR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupBody {
    /// A group message: the CBOR of [`MsgBody`] and its sender's signature,
    /// the same bytes for every member.
    Message(SignedState),
    /// A new state and, for members, its epoch secret (sealed to this
    /// member by the 1:1 envelope it rides in). To someone not yet a
    /// member it is an invitation.
    State {
        /// The signed state.
        state: SignedState,
        /// The epoch secret; `None` for a member just removed.
        #[serde(with = "serde_bytes")]
        secret: Option<[u8; 32]>,
    },
    /// An admin's (or a leaving member's) request to the creator.
    Request {
        /// Which group.
        group_id: GroupId,
        /// What to change.
        op: Op,
    },
    /// A member asks another for the messages of an epoch it lacks (a
    /// large group's catch-up, `node::groups::sync`): what it has of
    /// each sender, so the answer carries only the rest.
    SyncAsk {
        /// Which group.
        group_id: GroupId,
        /// Which epoch.
        epoch: u64,
        /// What the asker has, per sender (at most [`MAX_MEMBERS`]).
        have: Vec<Have>,
    },
    /// The answer to a [`GroupBody::SyncAsk`]: group messages as their
    /// senders signed them (at most [`MAX_RELAY`]), each checked by its
    /// own signature, not by who relays it.
    Relay {
        /// The signed messages, oldest first.
        messages: Vec<SignedState>,
        /// The answer left some out (its size): ask again.
        more: bool,
    },
}

/// Most messages in one [`GroupBody::Relay`].
pub const MAX_RELAY: usize = 256;
/// Most missing numbers named per sender in one [`Have`].
pub const MAX_MISSING: usize = 64;

/// What a member has of one sender's chain in an epoch: every number
/// below `next` except those in `missing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Have {
    /// The sender (PeerId bytes).
    #[serde(with = "serde_bytes")]
    pub sender: Vec<u8>,
    /// One past the highest number we have.
    pub next: u64,
    /// Numbers below `next` we lack (at most [`MAX_MISSING`]).
    pub missing: Vec<u64>,
}

/// Why group bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupWireError {
    /// Over a limit, or not CBOR of the expected shape.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Not well formed (an id, the roster).
    #[error("malformed group data: {0}")]
    Malformed(String),
    /// The signature does not verify for the key it claims.
    #[error("bad signature")]
    BadSignature,
    /// A roster over [`MAX_MEMBERS`].
    #[error("too many members")]
    TooManyMembers,
    /// A name or text over its limit.
    #[error("a field is over its limit")]
    FieldTooLarge,
}

/// Decodes what a `Body::Group` carries, bounded by [`MAX_GROUP_BYTES`].
pub fn decode_body(bytes: &[u8]) -> Result<GroupBody, GroupWireError> {
    let body: GroupBody = super::decode(bytes, MAX_GROUP_BYTES)?;
    match &body {
        GroupBody::Request {
            op: Op::Add(ids), ..
        } if ids.len() > MAX_ADD => Err(GroupWireError::FieldTooLarge),
        GroupBody::SyncAsk { have, .. }
            if have.len() > MAX_MEMBERS || have.iter().any(|h| h.missing.len() > MAX_MISSING) =>
        {
            Err(GroupWireError::FieldTooLarge)
        }
        GroupBody::Relay { messages, .. } if messages.len() > MAX_RELAY => {
            Err(GroupWireError::FieldTooLarge)
        }
        _ => Ok(body),
    }
}

/// Signs a group message body with the sender's identity.
pub fn sign_message(identity: &Identity, body: &MsgBody) -> Result<SignedState, WireError> {
    let bytes = super::encode(body)?;
    let sig = identity
        .sign(&signed_bytes(MSG_DOMAIN, &bytes))
        .to_bytes()
        .to_vec();
    Ok(SignedState { body: bytes, sig })
}

/// Decodes a signed group message and checks its signature against the
/// sender its header names.
pub fn open_message(signed: &SignedState) -> Result<MsgBody, GroupWireError> {
    let body: MsgBody = super::decode(&signed.body, MAX_GROUP_BYTES)?;
    let sender = PeerId::from_bytes(&body.header.sender)
        .map_err(|_| GroupWireError::Malformed("sender".into()))?;
    if !verifies(&sender, MSG_DOMAIN, &signed.body, &signed.sig) {
        return Err(GroupWireError::BadSignature);
    }
    Ok(body)
}

/// Whether `sig` is `peer`'s strict ed25519 signature over `domain ‖ body`.
fn verifies(peer: &PeerId, domain: &[u8], body: &[u8], sig: &[u8]) -> bool {
    let Some(vk) = ed25519_key(peer) else {
        return false;
    };
    Signature::from_slice(sig)
        .is_ok_and(|s| vk.verify_strict(&signed_bytes(domain, body), &s).is_ok())
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
