//! Which relays `net::reach` asks for reservations: candidates learnt from
//! identify, the pick among them, and the rest a failed relay takes.

use std::time::Instant;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

use super::addr::{is_circuit, is_unspecified, split_peer};
use super::{CANDIDATE_KEPT, Failed, MAX_BACKOFF, MAX_CANDIDATES, RELAY_RETRY, Reach};

/// A peer advertising HOP that we reached directly.
#[derive(Debug, Default)]
pub(super) struct Candidate {
    /// Where to dial it (the addresses we dialled it on first).
    pub(super) addrs: Vec<Multiaddr>,
    /// When its last direct connection closed; `None` while connected.
    pub(super) gone_since: Option<Instant>,
}

impl Candidate {
    /// Still worth dialling at `now`.
    pub(super) fn kept_at(&self, now: Instant) -> bool {
        self.gone_since.is_none_or(|g| now < g + CANDIDATE_KEPT)
    }
}

impl Reach {
    pub(super) fn add_candidate(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if !self.candidates.contains_key(&peer) && self.candidates.len() >= MAX_CANDIDATES {
            // Full: the one gone longest makes room, if any is gone.
            let oldest = self
                .candidates
                .iter()
                .filter_map(|(p, c)| c.gone_since.map(|g| (g, *p)))
                .min();
            match oldest {
                Some((_, p)) => {
                    self.candidates.remove(&p);
                }
                None => return,
            }
        }
        let list = &mut self.candidates.entry(peer).or_default().addrs;
        for mut a in addrs {
            // A dialled address may end in the peer's ID; ours gets it added.
            if let Some(Protocol::P2p(_)) = a.iter().last() {
                a.pop();
            }
            if !is_circuit(&a) && !is_unspecified(&a) && !list.contains(&a) && list.len() < 8 {
                list.push(a);
            }
        }
    }

    pub(super) fn back_off(&mut self, relay: PeerId, now: Instant) {
        self.hold.relay_failed();
        if self.failed.len() >= MAX_BACKOFF && !self.failed.contains_key(&relay) {
            // Full: the counts of relays no longer resting are forgotten
            // (such a relay, failing again, starts over from the first rest).
            self.failed
                .retain(|_, f| f.rest_until.is_some_and(|until| until > now));
        }
        if self.failed.len() < MAX_BACKOFF || self.failed.contains_key(&relay) {
            let f = self.failed.entry(relay).or_insert(Failed {
                in_a_row: 0,
                rest_until: None,
            });
            let rest = RELAY_RETRY.next_delay(f.in_a_row, self.jitter.next_u64());
            f.in_a_row = f.in_a_row.saturating_add(1);
            f.rest_until = Some(now + rest);
        }
    }

    /// The next relay to reserve on: a configured one first, else a
    /// candidate drawn at random (not by ID order: IDs are cheap to grind,
    /// and whoever holds the smallest would become everyone's relay), one
    /// still connected if any is, else one gone (it is dialled; those gone
    /// longer than [`CANDIDATE_KEPT`] were forgotten before the pick).
    pub(super) fn pick_relay(&mut self) -> Option<(PeerId, Multiaddr)> {
        let resting = |p: &PeerId| self.failed.get(p).is_some_and(|f| f.rest_until.is_some());
        let free = |p: &PeerId| !self.relays.contains_key(p) && !resting(p);
        let configured = self
            .settings
            .relays
            .iter()
            .filter_map(split_peer)
            .find(|(p, _)| free(p));
        if configured.is_some() {
            return configured;
        }
        let usable = |connected: bool| -> Vec<(PeerId, Multiaddr)> {
            self.candidates
                .iter()
                .filter(|(p, c)| free(p) && c.gone_since.is_none() == connected)
                .filter_map(|(p, c)| Some((*p, c.addrs.first()?.clone())))
                .collect()
        };
        let mut found = usable(true);
        if found.is_empty() {
            found = usable(false);
        }
        if found.is_empty() {
            return None;
        }
        // A fixed order for the draw, so a seeded run repeats.
        found.sort_by_key(|(p, _)| *p);
        let i = self.jitter.next_u64() % found.len() as u64;
        Some(found.swap_remove(i as usize))
    }
}
