//! Invites: how two people who share nothing yet become buddies. An invite
//! is the owner's ID, the addresses that reach the owner's node now (relay
//! `/p2p-circuit` addresses included) and an expiry, signed with the
//! identity key. Whoever holds one can add the owner *and* reach the owner's
//! node without knowing any other peer: the addresses join the network.
//!
//! Binary form: a [`super::signed::Signed`] `{body, sig}` whose body is the
//! CBOR of [`InviteBody`], signed under its own domain; at most
//! [`MAX_INVITE_BYTES`]. Text form: `roost:` and the binary form in
//! uppercase base32 without padding, which QR codes carry in their compact
//! alphanumeric mode. Both forms are canonical: decoding re-encodes and
//! compares, so every change to an accepted invite is refused, not only
//! changes to what the signature covers.

use std::time::Duration;

use data_encoding::BASE32_NOPAD;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::signed::{self, Signed};
use crate::clock::format_utc;
use crate::identity::Identity;

/// What every invite's text starts with.
pub const URI_PREFIX: &str = "roost:";
/// Largest binary invite we make or read.
pub const MAX_INVITE_BYTES: usize = 1024;
/// Longest invite text read: the prefix and the base32 of
/// [`MAX_INVITE_BYTES`]. Anything longer is refused before decoding.
pub const MAX_URI_CHARS: usize = URI_PREFIX.len() + (MAX_INVITE_BYTES * 8).div_ceil(5);
/// Most addresses one invite carries.
pub const MAX_ADDRS: usize = 8;
/// Of those, most relay circuit addresses: two or three relays are what a
/// node behind a NAT holds; the rest of the room is for direct addresses.
pub const MAX_CIRCUIT_ADDRS: usize = 4;
/// Longest address carried (as for locator records).
pub const MAX_ADDR_BYTES: usize = super::locator::MAX_ADDR_BYTES;
/// How long an invite lasts unless the owner says otherwise: long enough to
/// reach someone by mail or chat, short enough that its addresses are
/// still likely to work.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// Shortest lifetime an invite may be given.
pub const MIN_LIFETIME: Duration = Duration::from_secs(60);
/// Longest lifetime an invite may be given: a home node's addresses rarely
/// last longer, and a leaked invite should not point at them for good.
pub const MAX_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

const SIG_DOMAIN: &[u8] = b"roost/invite/v1\0";

/// What the signature covers. Short keys: every byte is a few more modules
/// in the QR code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteBody {
    /// The owner's ed25519 public key (32 bytes): the ID.
    #[serde(rename = "k", with = "serde_bytes")]
    pub pubkey: Vec<u8>,
    /// Multiaddrs in binary form, without the owner's `/p2p/<ID>`.
    #[serde(rename = "a")]
    pub addrs: Vec<ByteBuf>,
    /// Unix time in milliseconds after which the invite is refused.
    #[serde(rename = "x")]
    pub expires_at: u64,
}

/// A checked invite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// Whose invite it is: the ID its key makes.
    pub peer: PeerId,
    /// Where the owner's node could be reached when it made the invite.
    pub addrs: Vec<Multiaddr>,
    /// Unix milliseconds after which it is refused.
    pub expires_at: u64,
}

/// Why an invite was refused (or could not be made).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    /// The text does not start with [`URI_PREFIX`].
    #[error("not a roost invite: an invite starts with \"{URI_PREFIX}\"")]
    WrongPrefix,
    /// Longer than [`MAX_URI_CHARS`]; not decoded at all.
    #[error("the invite is {0} characters long, over the limit of {MAX_URI_CHARS}")]
    TooLarge(usize),
    /// Not base32, not an invite's CBOR, not in its canonical form, or
    /// carrying a bad key or address: damaged or cut short.
    #[error("the invite is damaged or incomplete ({0})")]
    Malformed(String),
    /// The signature is not the named key's: altered or forged.
    #[error("the invite's signature does not match the ID in it: it was altered or forged")]
    BadSignature,
    /// Its expiry (Unix milliseconds) has passed.
    #[error("this invite expired on {}; ask its owner for a new one", format_utc(*.0))]
    Expired(u64),
    /// A lifetime asked for outside [`MIN_LIFETIME`]..=[`MAX_LIFETIME`].
    #[error("an invite may last from 1 minute to 90 days")]
    Lifetime,
}

impl Invite {
    /// Who the invite lets us reach, and where: the owner at each of its
    /// addresses, and each relay at the address its circuit goes through
    /// (a relay is a reachable node: it serves as a way into the network
    /// even when the owner, behind a NAT, does not serve the DHT).
    pub fn contacts(&self) -> Vec<(PeerId, Multiaddr)> {
        let mut out: Vec<(PeerId, Multiaddr)> =
            self.addrs.iter().map(|a| (self.peer, a.clone())).collect();
        for relay in self.addrs.iter().filter_map(relay_of) {
            if !out.contains(&relay) {
                out.push(relay);
            }
        }
        out
    }

    /// The contacts as full addresses (`…/p2p/<ID>`), as `--bootstrap`
    /// takes them.
    pub fn bootstrap_addrs(&self) -> Vec<Multiaddr> {
        self.contacts()
            .into_iter()
            .map(|(peer, addr)| addr.with(Protocol::P2p(peer)))
            .collect()
    }
}

/// Whether `text` is meant as an invite rather than an ID: IDs never hold
/// a `:`, so anything that does is read (and judged) as an invite.
pub fn looks_like_invite(text: &str) -> bool {
    text.contains(':')
}

/// The relay of a circuit address `<transport>/p2p/<relay>/p2p-circuit…`
/// and the address it is reached at.
fn relay_of(addr: &Multiaddr) -> Option<(PeerId, Multiaddr)> {
    let parts: Vec<Protocol> = addr.iter().collect();
    let circuit = parts.iter().position(|p| *p == Protocol::P2pCircuit)?;
    let Some(Protocol::P2p(relay)) = circuit.checked_sub(1).and_then(|i| parts.get(i)) else {
        return None;
    };
    let transport: Multiaddr = parts[..circuit - 1].iter().cloned().collect();
    (!transport.is_empty()).then_some((*relay, transport))
}

/// Which of `addrs` go into `me`'s invite: without a trailing `/p2p/<me>`
/// (the key names it), within the size limits, no duplicates, direct
/// addresses first, then up to [`MAX_CIRCUIT_ADDRS`] relay circuits, at
/// most [`MAX_ADDRS`] in all. Within each kind, those anyone on the
/// internet can dial come first (for a circuit: through a relay at a
/// global address), so that what is left out for lack of room is a
/// loopback or LAN address, which would only reach the reader if they
/// happen to share our host or LAN.
fn pick(addrs: &[Multiaddr], me: PeerId) -> Vec<Multiaddr> {
    let mut seen = Vec::new();
    for a in addrs {
        let mut a = a.clone();
        match a.iter().last() {
            Some(Protocol::P2p(p)) if p == me => {
                a.pop();
            }
            Some(Protocol::P2p(_)) => continue,
            _ => {}
        }
        if a.is_empty() || a.len() > MAX_ADDR_BYTES || seen.contains(&a) {
            continue;
        }
        seen.push(a);
    }
    // A stable sort: otherwise in the order given.
    seen.sort_by_key(|a| !super::addr::is_global(a));
    let (circuits, direct): (Vec<_>, Vec<_>) = seen.into_iter().partition(super::addr::is_circuit);
    let circuits: Vec<_> = circuits.into_iter().take(MAX_CIRCUIT_ADDRS).collect();
    let mut out: Vec<_> = direct
        .into_iter()
        .take(MAX_ADDRS - circuits.len())
        .collect();
    out.extend(circuits);
    out
}

/// Makes and signs `identity`'s invite: the text form. Addresses beyond
/// the limits are left out (we never make what others would refuse).
pub fn create(
    identity: &Identity,
    addrs: &[Multiaddr],
    expires_at: u64,
) -> Result<String, super::WireError> {
    make(identity, addrs, expires_at).map(|(text, _)| text)
}

/// [`create`], also returning what the invite says (the addresses that
/// fitted): the maker has it at hand, with no need to read its own
/// invite back.
pub fn make(
    identity: &Identity,
    addrs: &[Multiaddr],
    expires_at: u64,
) -> Result<(String, Invite), super::WireError> {
    let mut addrs = pick(addrs, identity.peer_id());
    loop {
        let body = super::encode(&InviteBody {
            pubkey: identity.verifying_key().to_bytes().to_vec(),
            addrs: addrs.iter().map(|a| ByteBuf::from(a.to_vec())).collect(),
            expires_at,
        })?;
        let bytes = signed::sign(identity, SIG_DOMAIN, body)?;
        if bytes.len() <= MAX_INVITE_BYTES || addrs.is_empty() {
            let text = format!("{URI_PREFIX}{}", BASE32_NOPAD.encode(&bytes));
            let invite = Invite {
                peer: identity.peer_id(),
                addrs,
                expires_at,
            };
            return Ok((text, invite));
        }
        // Out of room: the last that is not global goes first, whatever
        // its kind, so a global circuit outlives a LAN address.
        let least = addrs.iter().rposition(|a| !super::addr::is_global(a));
        addrs.remove(least.unwrap_or(addrs.len() - 1));
    }
}

/// Reads and checks an invite at time `now_ms`: the prefix, the length
/// (before anything is decoded), the encoding, the signature by the key
/// it names, the addresses, then the expiry. Whitespace around it (a
/// pasted line) is ignored.
pub fn parse(text: &str, now_ms: u64) -> Result<Invite, InviteError> {
    let text = text.trim();
    let payload = text
        .strip_prefix(URI_PREFIX)
        .ok_or(InviteError::WrongPrefix)?;
    if text.len() > MAX_URI_CHARS {
        return Err(InviteError::TooLarge(text.len()));
    }
    let malformed = |what: &str| InviteError::Malformed(what.to_string());
    let bytes = BASE32_NOPAD
        .decode(payload.as_bytes())
        .map_err(|_| malformed("not uppercase base32"))?;
    let signed: Signed =
        super::decode(&bytes, MAX_INVITE_BYTES).map_err(|_| malformed("not an invite"))?;
    if super::encode(&signed).ok().as_deref() != Some(bytes.as_slice()) {
        return Err(malformed("not in its canonical form"));
    }
    let body: InviteBody =
        super::decode(&signed.body, MAX_INVITE_BYTES).map_err(|_| malformed("not an invite"))?;
    let (key, peer) = signed::key_of(&body.pubkey).ok_or_else(|| malformed("no valid ID"))?;
    if !signed::verifies(&key, SIG_DOMAIN, &signed) {
        return Err(InviteError::BadSignature);
    }
    if body.addrs.len() > MAX_ADDRS {
        return Err(malformed("too many addresses"));
    }
    let addrs = body
        .addrs
        .into_iter()
        .map(|a| {
            let addr = (a.len() <= MAX_ADDR_BYTES)
                .then(|| Multiaddr::try_from(a.into_vec()).ok())
                .flatten()
                .filter(|m| !matches!(m.iter().last(), Some(Protocol::P2p(_))));
            addr.ok_or_else(|| malformed("a bad address"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let circuits = addrs
        .iter()
        .filter(|a| a.iter().any(|p| p == Protocol::P2pCircuit))
        .count();
    if circuits > MAX_CIRCUIT_ADDRS {
        return Err(malformed("too many relay addresses"));
    }
    if body.expires_at <= now_ms {
        return Err(InviteError::Expired(body.expires_at));
    }
    Ok(Invite {
        peer,
        addrs,
        expires_at: body.expires_at,
    })
}

/// An invite with any body and signature, for tests that forge one.
#[cfg(feature = "test-util")]
pub fn assemble(body: &InviteBody, sig: Vec<u8>) -> Result<String, super::WireError> {
    let bytes = signed::assemble(body, sig)?;
    Ok(format!("{URI_PREFIX}{}", BASE32_NOPAD.encode(&bytes)))
}

#[cfg(test)]
#[path = "invite_tests.rs"]
mod tests;
