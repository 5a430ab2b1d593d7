//! Bytes signed by an identity key, the one shape shared by everything a
//! user signs (locator records, invites): `{body, sig}`, where `body` is
//! CBOR and `sig` an ed25519 signature over a domain prefix and exactly
//! those bytes. Signing the bytes as sent (instead of re-encoding a decoded
//! struct) means no canonical-encoding rules are needed for the signature
//! to check; the domain keeps a signature made for one purpose from ever
//! passing as another.

use ed25519_dalek::{Signature, VerifyingKey};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::WireError;
use crate::identity::{Identity, peer_id_of};

/// A body and the signature over it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Signed {
    /// CBOR of what was signed.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// ed25519 signature over the domain and `body`.
    #[serde(with = "serde_bytes")]
    pub sig: Vec<u8>,
}

/// What the signature covers: the domain, then the body's bytes.
pub(crate) fn signed_bytes(domain: &[u8], body: &[u8]) -> Vec<u8> {
    [domain, body].concat()
}

/// Signs the CBOR bytes `body` for `domain`; returns the CBOR of [`Signed`].
pub(crate) fn sign(
    identity: &Identity,
    domain: &[u8],
    body: Vec<u8>,
) -> Result<Vec<u8>, WireError> {
    let sig = identity
        .sign(&signed_bytes(domain, &body))
        .to_bytes()
        .to_vec();
    super::encode(&Signed { body, sig })
}

/// `{body, sig}` with any body and signature, for tests that forge
/// signed things.
#[cfg(feature = "test-util")]
pub(crate) fn assemble(body: &impl Serialize, sig: Vec<u8>) -> Result<Vec<u8>, WireError> {
    super::encode(&Signed {
        body: super::encode(body)?,
        sig,
    })
}

/// The ed25519 key in `pubkey` (32 bytes) and the ID it makes, if it is one.
pub(crate) fn key_of(pubkey: &[u8]) -> Option<(VerifyingKey, PeerId)> {
    let bytes: [u8; 32] = pubkey.try_into().ok()?;
    let vk = VerifyingKey::from_bytes(&bytes).ok()?;
    Some((vk, peer_id_of(&vk)?))
}

/// Whether `signed.sig` is `vk`'s signature over `domain` and `signed.body`
/// (strict: no malleable or small-order forms).
pub(crate) fn verifies(vk: &VerifyingKey, domain: &[u8], signed: &Signed) -> bool {
    Signature::from_slice(&signed.sig).is_ok_and(|sig| {
        vk.verify_strict(&signed_bytes(domain, &signed.body), &sig)
            .is_ok()
    })
}
