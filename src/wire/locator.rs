//! The signed locator record: where (and whether) a user's node can be
//! reached, stored in the DHT under `/roost/loc/<ID>`.
//!
//! On the wire a record is `{body, sig}` ([`super::signed`]) where `body`
//! is the CBOR of [`LocatorBody`] and `sig` an ed25519 signature over a
//! domain prefix and exactly those bytes.
//!
//! Every node validates a record before storing it and every lookup result
//! before using it ([`validate`]); nothing in the DHT is trusted unchecked.

use std::time::Duration;

use libp2p::kad::RecordKey;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::WireError;
use super::signed::{self, Signed as SignedLocator};
use crate::identity::{Identity, ed25519_key};

/// Largest record we store or accept.
pub const MAX_RECORD_BYTES: usize = 2048;
/// Most addresses one record may list.
pub const MAX_ADDRS: usize = 16;
/// Longest multiaddr we carry.
pub const MAX_ADDR_BYTES: usize = 128;
/// Records expiring further ahead than this are refused, so a leaked or
/// stale record cannot pin a wrong address for long.
pub const MAX_AHEAD: Duration = Duration::from_secs(24 * 3600);
/// Record key prefix.
pub const KEY_PREFIX: &str = "/roost/loc/";

const SIG_DOMAIN: &[u8] = b"roost/locator/v1\0";

/// What the signature covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocatorBody {
    /// The ed25519 public key of the user (32 bytes).
    #[serde(with = "serde_bytes")]
    pub pubkey: Vec<u8>,
    /// Strictly increasing per user; a holder keeps only the newest.
    pub seq: u64,
    /// Multiaddrs in binary form.
    pub addrs: Vec<ByteBuf>,
    /// Unix time in milliseconds after which the record is void.
    pub expires_at: u64,
    /// False in the record a node leaves behind on a clean shutdown.
    pub online: bool,
}

/// A validated locator: what lookups return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locator {
    /// Whose record this is.
    pub peer: PeerId,
    /// Its sequence number.
    pub seq: u64,
    /// Where the node listens.
    pub addrs: Vec<Multiaddr>,
    /// Unix milliseconds after which it is void.
    pub expires_at: u64,
    /// Whether the node was running when it published this.
    pub online: bool,
}

/// Why a record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Over [`MAX_RECORD_BYTES`].
    #[error("record is {0} bytes, over the {MAX_RECORD_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not a locator record at all.
    #[error("record is malformed: {0}")]
    Malformed(WireError),
    /// Key is not `/roost/loc/<ed25519 ID>` in its one canonical spelling
    /// (`record_key` of that ID): other spellings of the same ID (padding
    /// that `parse_id` trims) would give one identity many DHT keys.
    #[error("record key is not a roost locator key")]
    BadKey,
    /// A lookup's answer is a record for another key (or another peer) than
    /// the one looked up.
    #[error("record answers for {got}, not for the {asked} looked up")]
    NotAsked {
        /// The peer whose locator was looked up.
        asked: PeerId,
        /// The peer the record is for, if its key names one.
        got: String,
    },
    /// The record names another key than the one it is stored under.
    #[error("record public key does not match its DHT key")]
    KeyMismatch,
    /// The signature does not verify (strictly) for that key.
    #[error("record signature does not verify")]
    BadSignature,
    /// Too many or too long addresses, or an unparsable one.
    #[error("record carries bad addresses")]
    BadAddrs,
    /// Already expired.
    #[error("record has expired")]
    Expired,
    /// Expires further ahead than [`MAX_AHEAD`].
    #[error("record expires too far in the future")]
    TooFarAhead,
    /// Not newer than the record already held: a replay or a stale copy.
    #[error("record seq {got} is not newer than the held {held}")]
    Stale {
        /// Seq of the record we hold.
        held: u64,
        /// Seq of the record offered.
        got: u64,
    },
}

/// The DHT key of `peer`'s locator.
pub fn record_key(peer: &PeerId) -> RecordKey {
    RecordKey::new(&format!("{KEY_PREFIX}{peer}"))
}

/// The peer whose locator lives under `key`, if it is a locator key.
pub fn peer_of_key(key: &RecordKey) -> Option<PeerId> {
    let text = std::str::from_utf8(key.as_ref()).ok()?;
    let id = text.strip_prefix(KEY_PREFIX)?;
    crate::identity::parse_id(id).ok()
}

/// Builds and signs a record; returns its bytes for the DHT. `addrs` beyond
/// the limits are dropped (we never publish what others would refuse).
pub fn sign(
    identity: &Identity,
    seq: u64,
    addrs: &[Multiaddr],
    expires_at: u64,
    online: bool,
) -> Result<Vec<u8>, WireError> {
    let addrs = addrs
        .iter()
        .map(|a| a.to_vec())
        .filter(|a| a.len() <= MAX_ADDR_BYTES)
        .take(MAX_ADDRS)
        .map(ByteBuf::from)
        .collect();
    let body = super::encode(&LocatorBody {
        pubkey: identity.verifying_key().to_bytes().to_vec(),
        seq,
        addrs,
        expires_at,
        online,
    })?;
    signed::sign(identity, SIG_DOMAIN, body)
}

/// Checks a record offered under `key` at time `now_ms`, against the seq of
/// the record we already hold for that key (if any).
pub fn validate(
    key: &RecordKey,
    value: &[u8],
    now_ms: u64,
    held_seq: Option<u64>,
) -> Result<Locator, RecordError> {
    if value.len() > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge(value.len()));
    }
    let peer = peer_of_key(key).ok_or(RecordError::BadKey)?;
    if record_key(&peer) != *key {
        return Err(RecordError::BadKey);
    }
    let signed: SignedLocator =
        super::decode(value, MAX_RECORD_BYTES).map_err(RecordError::Malformed)?;
    let body: LocatorBody =
        super::decode(&signed.body, MAX_RECORD_BYTES).map_err(RecordError::Malformed)?;

    let (vk, id) = signed::key_of(&body.pubkey).ok_or(RecordError::KeyMismatch)?;
    if ed25519_key(&peer) != Some(vk) || id != peer {
        return Err(RecordError::KeyMismatch);
    }
    if !signed::verifies(&vk, SIG_DOMAIN, &signed) {
        return Err(RecordError::BadSignature);
    }

    if body.addrs.len() > MAX_ADDRS {
        return Err(RecordError::BadAddrs);
    }
    let addrs = body
        .addrs
        .into_iter()
        .map(|a| {
            if a.len() > MAX_ADDR_BYTES {
                return Err(RecordError::BadAddrs);
            }
            Multiaddr::try_from(a.into_vec()).map_err(|_| RecordError::BadAddrs)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if body.expires_at <= now_ms {
        return Err(RecordError::Expired);
    }
    if body.expires_at > now_ms.saturating_add(MAX_AHEAD.as_millis() as u64) {
        return Err(RecordError::TooFarAhead);
    }
    if let Some(held) = held_seq
        && body.seq <= held
    {
        return Err(RecordError::Stale {
            held,
            got: body.seq,
        });
    }
    Ok(Locator {
        peer,
        seq: body.seq,
        addrs,
        expires_at: body.expires_at,
        online: body.online,
    })
}

/// Checks a record a lookup for `asked`'s locator returned, at `now_ms`.
///
/// libp2p hands on whatever record a peer answers a `GET_VALUE` with,
/// without comparing its key with the key asked for. A record that is
/// valid for *another* key — any peer's own "offline" record, say — would
/// otherwise answer the lookup, and any peer on the path could make a buddy
/// look offline. So the key must be `asked`'s locator key, and the record
/// (validated as on a put) must be `asked`'s.
pub fn validate_answer(
    asked: &PeerId,
    key: &RecordKey,
    value: &[u8],
    now_ms: u64,
) -> Result<Locator, RecordError> {
    let not_asked = |got: String| RecordError::NotAsked { asked: *asked, got };
    if *key != record_key(asked) {
        let got = peer_of_key(key).map_or_else(
            || "a key that is not a locator key".into(),
            |p| p.to_string(),
        );
        return Err(not_asked(got));
    }
    let loc = validate(key, value, now_ms, None)?;
    if loc.peer != *asked {
        return Err(not_asked(loc.peer.to_string()));
    }
    Ok(loc)
}

/// The seq of a record we already hold; `None` for anything unreadable (our
/// own store only holds validated records, so that does not happen).
pub fn seq_of(value: &[u8]) -> Option<u64> {
    let signed: SignedLocator = super::decode(value, MAX_RECORD_BYTES).ok()?;
    let body: LocatorBody = super::decode(&signed.body, MAX_RECORD_BYTES).ok()?;
    Some(body.seq)
}

/// The raw parts of a record, for tests that need to forge one.
#[cfg(feature = "test-util")]
pub fn assemble(body: &LocatorBody, sig: Vec<u8>) -> Result<Vec<u8>, WireError> {
    signed::assemble(body, sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;
    const HOUR: u64 = 3_600_000;

    fn addr() -> Multiaddr {
        "/ip4/127.0.0.1/tcp/7117".parse().unwrap()
    }

    #[test]
    fn a_good_record_validates() {
        let id = Identity::generate().unwrap();
        let value = sign(&id, 5, &[addr()], NOW + HOUR, true).unwrap();
        let loc = validate(&record_key(&id.peer_id()), &value, NOW, Some(4)).unwrap();
        assert_eq!(loc.peer, id.peer_id());
        assert_eq!(loc.addrs, vec![addr()]);
        assert_eq!(loc.seq, 5);
        assert!(loc.online);
        assert!(value.len() < 300, "record is {} bytes", value.len());
    }

    #[test]
    fn every_kind_of_bad_record_is_refused() {
        let id = Identity::generate().unwrap();
        let other = Identity::generate().unwrap();
        let key = record_key(&id.peer_id());
        let good = sign(&id, 5, &[addr()], NOW + HOUR, true).unwrap();

        // Signed by another key than the one in its name.
        let forged = sign(&other, 5, &[addr()], NOW + HOUR, true).unwrap();
        assert_eq!(
            validate(&key, &forged, NOW, None),
            Err(RecordError::KeyMismatch)
        );

        // Right key inside, but signature from someone else.
        let body = LocatorBody {
            pubkey: id.verifying_key().to_bytes().to_vec(),
            seq: 9,
            addrs: vec![],
            expires_at: NOW + HOUR,
            online: true,
        };
        let bad_sig = assemble(&body, other.sign(b"x").to_bytes().to_vec()).unwrap();
        assert_eq!(
            validate(&key, &bad_sig, NOW, None),
            Err(RecordError::BadSignature)
        );

        // Flipped bit in the body.
        let mut tampered = good.clone();
        let n = tampered.len();
        tampered[n - 70] ^= 1;
        assert!(validate(&key, &tampered, NOW, None).is_err());

        // Replay of an older or equal seq.
        assert_eq!(
            validate(&key, &good, NOW, Some(5)),
            Err(RecordError::Stale { held: 5, got: 5 })
        );
        // Expired, and too far ahead.
        assert_eq!(
            validate(&key, &good, NOW + HOUR, None),
            Err(RecordError::Expired)
        );
        let far = sign(&id, 6, &[addr()], NOW + 25 * HOUR, true).unwrap();
        assert_eq!(
            validate(&key, &far, NOW, None),
            Err(RecordError::TooFarAhead)
        );
        // Oversized.
        let big = vec![0u8; MAX_RECORD_BYTES + 1];
        assert_eq!(
            validate(&key, &big, NOW, None),
            Err(RecordError::TooLarge(MAX_RECORD_BYTES + 1))
        );
        // Garbage, and a key that is not a locator key.
        assert!(matches!(
            validate(&key, b"\xff\x00garbage", NOW, None),
            Err(RecordError::Malformed(_))
        ));
        assert_eq!(
            validate(&RecordKey::new(b"/other/x"), &good, NOW, None),
            Err(RecordError::BadKey)
        );
    }

    #[test]
    fn too_many_addresses_are_refused_but_never_signed() {
        let id = Identity::generate().unwrap();
        let many: Vec<Multiaddr> = (0..40)
            .map(|p| format!("/ip4/127.0.0.1/tcp/{}", 1000 + p).parse().unwrap())
            .collect();
        let value = sign(&id, 1, &many, NOW + HOUR, true).unwrap();
        let loc = validate(&record_key(&id.peer_id()), &value, NOW, None).unwrap();
        assert_eq!(loc.addrs.len(), MAX_ADDRS);

        let body = LocatorBody {
            pubkey: id.verifying_key().to_bytes().to_vec(),
            seq: 2,
            addrs: many.iter().map(|a| ByteBuf::from(a.to_vec())).collect(),
            expires_at: NOW + HOUR,
            online: true,
        };
        let body_bytes = crate::wire::encode(&body).unwrap();
        let sig = id
            .sign(&signed::signed_bytes(SIG_DOMAIN, &body_bytes))
            .to_bytes()
            .to_vec();
        let value = assemble(&body, sig).unwrap();
        assert_eq!(
            validate(&record_key(&id.peer_id()), &value, NOW, None),
            Err(RecordError::BadAddrs)
        );
    }

    #[test]
    fn a_lookup_accepts_only_the_record_it_asked_for() {
        let buddy = Identity::generate().unwrap();
        let other = Identity::generate().unwrap();
        let asked = buddy.peer_id();
        let key = record_key(&asked);
        let good = sign(&buddy, 5, &[addr()], NOW + HOUR, true).unwrap();
        let loc = validate_answer(&asked, &key, &good, NOW).unwrap();
        assert_eq!((loc.peer, loc.online), (asked, true));

        // Another identity's own, valid record, under its own key.
        let theirs = sign(&other, 9, &[], NOW + HOUR, false).unwrap();
        let their_key = record_key(&other.peer_id());
        assert!(validate(&their_key, &theirs, NOW, None).is_ok());
        assert_eq!(
            validate_answer(&asked, &their_key, &theirs, NOW),
            Err(RecordError::NotAsked {
                asked,
                got: other.peer_id().to_string()
            })
        );
        // The buddy's own record, but returned under another key.
        assert!(matches!(
            validate_answer(&asked, &their_key, &good, NOW),
            Err(RecordError::NotAsked { .. })
        ));
        // A key that is no locator key at all.
        assert!(matches!(
            validate_answer(&asked, &RecordKey::new(b"/x"), &good, NOW),
            Err(RecordError::NotAsked { .. })
        ));
        // Another identity's record under the buddy's key.
        assert_eq!(
            validate_answer(&asked, &key, &theirs, NOW),
            Err(RecordError::KeyMismatch)
        );
        // And everything `validate` refuses.
        assert_eq!(
            validate_answer(&asked, &key, &good, NOW + HOUR),
            Err(RecordError::Expired)
        );
    }

    #[test]
    fn one_identity_has_one_key() {
        let id = Identity::generate().unwrap();
        let value = sign(&id, 1, &[], NOW + HOUR, true).unwrap();
        // `parse_id` trims, so these name the same ID; each would be a
        // separate DHT key, and one identity could fill a store with them.
        for padded in [" ", "\n", "\t\t"] {
            let key = RecordKey::new(&format!("{KEY_PREFIX}{}{padded}", id.peer_id()));
            assert_eq!(peer_of_key(&key), Some(id.peer_id()));
            assert_eq!(validate(&key, &value, NOW, None), Err(RecordError::BadKey));
        }
        let key = RecordKey::new(&format!("{KEY_PREFIX} {}", id.peer_id()));
        assert_eq!(validate(&key, &value, NOW, None), Err(RecordError::BadKey));
    }

    #[test]
    fn seq_of_reads_back() {
        let id = Identity::generate().unwrap();
        let value = sign(&id, 77, &[], NOW + HOUR, false).unwrap();
        assert_eq!(seq_of(&value), Some(77));
    }
}
