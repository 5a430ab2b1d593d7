//! The key schedule of a private group, pure (no store, no sockets).
//!
//! Each epoch has a random 32-byte secret E, handed to every member sealed
//! pairwise. From E each sender's chain starts at
//! `derive_key("roost group chain v1", E ‖ group_id ‖ epoch ‖ sender)`; the
//! chain key `ck` of message `n` gives the message key
//! `derive_key("roost group message v1", ck)` and the next chain key
//! `derive_key("roost group ratchet v1", ck)`. A message key seals one
//! message only, so the nonce is fixed (zero); the header is the AAD.
//! A receiver keeps, per (epoch, sender), a [`Chain`]: the next chain key
//! and the keys of skipped messages (at most [`MAX_SKIPPED`]), and forgets
//! a key once used, so a replay finds no key ([`KeyError::Replayed`]).

use std::collections::BTreeMap;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use crate::wire::group::GroupId;

/// Most keys of skipped messages a receiver keeps per chain; and how far
/// ahead of the next expected number a message may be.
pub const MAX_SKIPPED: usize = 1000;

const CHAIN_DOMAIN: &str = "roost group chain v1";
const MESSAGE_DOMAIN: &str = "roost group message v1";
const RATCHET_DOMAIN: &str = "roost group ratchet v1";

/// Why a message key could not be had or a message not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Its key was used already (or dropped as too old): a replay.
    #[error("message number already used")]
    Replayed,
    /// More than [`MAX_SKIPPED`] ahead of the chain.
    #[error("message number too far ahead")]
    TooFarAhead,
    /// The tag does not check: not sealed under this key and header.
    #[error("group message does not open")]
    Open,
}

/// The first chain key of `sender` in `epoch` of `group`, from the
/// epoch's secret.
pub fn chain_start(secret: &[u8; 32], group: &GroupId, epoch: u64, sender: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(CHAIN_DOMAIN);
    h.update(secret);
    h.update(&group.0);
    h.update(&epoch.to_be_bytes());
    h.update(sender);
    h.finalize().into()
}

fn message_key(ck: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key(MESSAGE_DOMAIN, ck)
}

fn ratchet(ck: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key(RATCHET_DOMAIN, ck)
}

/// The key of message `n` computed from the chain's start, keeping no
/// state: what a test uses to show which secrets open which messages.
pub fn key_at(start: &[u8; 32], n: u64) -> [u8; 32] {
    let mut ck = *start;
    for _ in 0..n {
        ck = ratchet(&ck);
    }
    message_key(&ck)
}

/// One sender's chain in one epoch, as its sender or a receiver keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    /// The chain key of message `next`.
    ck: [u8; 32],
    /// The next message number not yet reached.
    pub next: u64,
    /// Keys of messages skipped over, by number.
    skipped: BTreeMap<u64, [u8; 32]>,
}

impl Chain {
    /// A chain at its start.
    pub fn new(start: [u8; 32]) -> Self {
        Self {
            ck: start,
            next: 0,
            skipped: BTreeMap::new(),
        }
    }

    /// The sender's side: the next number and its key; the chain moves on
    /// (the caller persists it before the message leaves).
    pub fn advance(&mut self) -> (u64, [u8; 32]) {
        let n = self.next;
        let mk = message_key(&self.ck);
        self.ck = ratchet(&self.ck);
        self.next += 1;
        (n, mk)
    }

    /// The receiver's side: the key of message `n`, used once. Messages
    /// skipped on the way keep their keys (the oldest dropped beyond
    /// [`MAX_SKIPPED`]).
    pub fn take(&mut self, n: u64) -> Result<[u8; 32], KeyError> {
        if n < self.next {
            return self.skipped.remove(&n).ok_or(KeyError::Replayed);
        }
        if n - self.next > MAX_SKIPPED as u64 {
            return Err(KeyError::TooFarAhead);
        }
        while self.next < n {
            let (i, mk) = self.advance();
            self.skipped.insert(i, mk);
        }
        while self.skipped.len() > MAX_SKIPPED {
            self.skipped.pop_first();
        }
        Ok(self.advance().1)
    }

    /// How many skipped keys are kept.
    pub fn skipped(&self) -> usize {
        self.skipped.len()
    }
}

/// Seals `plain` under a message key with `aad` (the header).
pub fn seal(mk: &[u8; 32], aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, KeyError> {
    XChaCha20Poly1305::new(mk.into())
        .encrypt(&XNonce::default(), Payload { msg: plain, aad })
        .map_err(|_| KeyError::Open)
}

/// Opens what [`seal`] made.
pub fn open(mk: &[u8; 32], aad: &[u8], ct: &[u8]) -> Result<Vec<u8>, KeyError> {
    XChaCha20Poly1305::new(mk.into())
        .decrypt(&XNonce::default(), Payload { msg: ct, aad })
        .map_err(|_| KeyError::Open)
}

/// A fresh epoch secret.
pub fn fresh_secret() -> Option<[u8; 32]> {
    let mut s = [0u8; 32];
    getrandom::fill(&mut s).ok()?;
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: GroupId = GroupId([7; 32]);

    #[test]
    fn sender_and_receiver_agree_and_each_key_opens_once() {
        let e = [1u8; 32];
        let start = chain_start(&e, &G, 3, b"alice");
        let (mut tx, mut rx) = (Chain::new(start), Chain::new(start));
        let sealed: Vec<(u64, Vec<u8>)> = (0..5)
            .map(|i| {
                let (n, mk) = tx.advance();
                (n, seal(&mk, b"h", format!("m{i}").as_bytes()).unwrap())
            })
            .collect();
        // Out of order: 3 first, then 0, 1, 2, 4; every one opens once.
        for &i in &[3usize, 0, 1, 2, 4] {
            let (n, ct) = &sealed[i];
            let mk = rx.take(*n).unwrap();
            assert_eq!(open(&mk, b"h", ct).unwrap(), format!("m{i}").as_bytes());
            assert_eq!(mk, key_at(&start, *n));
        }
        assert_eq!(rx.skipped(), 0);
        for n in 0..5 {
            assert_eq!(rx.take(n), Err(KeyError::Replayed), "a replay of {n}");
        }
    }

    #[test]
    fn keys_differ_by_secret_group_epoch_sender_and_header() {
        let e = [1u8; 32];
        let base = chain_start(&e, &G, 1, b"alice");
        assert_ne!(base, chain_start(&[2; 32], &G, 1, b"alice"));
        assert_ne!(base, chain_start(&e, &GroupId([8; 32]), 1, b"alice"));
        assert_ne!(base, chain_start(&e, &G, 2, b"alice"));
        assert_ne!(base, chain_start(&e, &G, 1, b"bob"));
        let mk = key_at(&base, 0);
        let ct = seal(&mk, b"header", b"hi").unwrap();
        assert_eq!(open(&mk, b"other", &ct), Err(KeyError::Open));
        let other = key_at(&chain_start(&[2; 32], &G, 1, b"alice"), 0);
        assert_eq!(open(&other, b"header", &ct), Err(KeyError::Open));
    }

    #[test]
    fn skipped_keys_are_capped_and_far_jumps_refused() {
        let start = chain_start(&[1; 32], &G, 0, b"a");
        let mut rx = Chain::new(start);
        assert_eq!(rx.take(MAX_SKIPPED as u64 + 1), Err(KeyError::TooFarAhead));
        rx.take(MAX_SKIPPED as u64).unwrap();
        assert_eq!(rx.skipped(), MAX_SKIPPED);
        // Another jump: the oldest skipped keys go, the cap holds.
        rx.take(2 * MAX_SKIPPED as u64).unwrap();
        assert_eq!(rx.skipped(), MAX_SKIPPED);
        assert_eq!(rx.take(0), Err(KeyError::Replayed), "dropped as too old");
        assert!(rx.take(2 * MAX_SKIPPED as u64 - 1).is_ok());
    }
}
