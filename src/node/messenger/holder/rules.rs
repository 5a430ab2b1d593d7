//! The holder's rules, with no I/O: what a deposit may add (addressing,
//! size, quotas), which peer is known to hold which items, and when to
//! forget that. The holder task ([`super`]) applies them to the store.

use std::collections::{HashMap, HashSet};

use libp2p::PeerId;

use crate::node::mailbox::{Handed, Ledger, Quotas, outranks};
use crate::store::HeldItem;
use crate::wire::mailbox::{
    DEPOSIT_BATCH, DepositReject, ItemHash, MAX_HELD_ENVELOPE, mailbox_key,
};
use crate::wire::message::Envelope;

/// What the holder knows, without I/O: the quota ledger, and per
/// recipient which peers are known to hold which items.
pub(crate) struct Rules {
    me: PeerId,
    ledger: Ledger,
    handed: HashMap<PeerId, Handed>,
}

/// A deposit batch after [`Rules::admit`]: the answer so far, and what to
/// write.
pub(crate) struct Admitted {
    /// Per envelope, in order: `None` if admitted.
    pub results: Vec<Option<DepositReject>>,
    /// The admitted items and their envelopes, already counted.
    pub items: Vec<HeldItem>,
    /// The admitted envelopes, in the same order as `items`.
    pub envelopes: Vec<Envelope>,
}

impl Rules {
    /// Nothing held yet, under these quotas.
    pub fn new(me: PeerId, quotas: Quotas) -> Self {
        Self {
            me,
            ledger: Ledger::new(quotas),
            handed: HashMap::new(),
        }
    }

    /// Items found in the store at start.
    pub fn loaded(&mut self, items: &[HeldItem]) {
        items.iter().for_each(|i| self.ledger.added(i));
    }

    /// Checks a deposit from `peer` item by item: addressing, size and the
    /// quotas (this batch's earlier items count too). Admitted items are
    /// counted at once; [`Rules::stored`] or [`Rules::not_stored`] settles.
    pub fn admit(&mut self, peer: PeerId, envs: Vec<Envelope>, expires_at: u64) -> Admitted {
        let mut out = Admitted {
            results: Vec::with_capacity(envs.len()),
            items: Vec::new(),
            envelopes: Vec::new(),
        };
        for env in envs.into_iter().take(DEPOSIT_BATCH) {
            let verdict = match PeerId::from_bytes(&env.to) {
                Ok(r) if r != self.me && r != peer && PeerId::from_bytes(&env.from).is_ok() => {
                    let too_large =
                        crate::wire::encode(&env).map_or(true, |b| b.len() > MAX_HELD_ENVELOPE);
                    let item = HeldItem {
                        recipient: r,
                        depositor: peer,
                        size: env.sealed.len(),
                        expires_at,
                    };
                    if too_large {
                        Err(DepositReject::TooLarge)
                    } else {
                        self.ledger.admit(&r, &peer, item.size).map(|()| {
                            self.ledger.added(&item);
                            item
                        })
                    }
                }
                _ => Err(DepositReject::NotAcceptable),
            };
            match verdict {
                Ok(item) => {
                    out.results.push(None);
                    out.items.push(item);
                    out.envelopes.push(env);
                }
                Err(why) => out.results.push(Some(why)),
            }
        }
        out
    }

    /// The store held `items` (`fresh[i]`: new, rather than these exact
    /// bytes already held). Items a co-holder hands on (not their sender,
    /// whose outbox copy serves no fetch) count as held by it: by their
    /// hash, so other bytes under a real id say nothing of the real item.
    /// Returns whether anything was new.
    pub fn stored(&mut self, peer: PeerId, admitted: &Admitted, fresh: &[bool]) -> bool {
        let from = peer.to_bytes();
        for ((item, env), new) in admitted.items.iter().zip(&admitted.envelopes).zip(fresh) {
            if !new {
                // Counted in `admit`, but held already.
                self.ledger.removed(item);
            }
            if env.from != from
                && let Some(h) = ItemHash::of(env)
            {
                self.handed
                    .entry(item.recipient)
                    .or_default()
                    .gave(&[peer], &[h]);
            }
        }
        fresh.iter().any(|n| *n)
    }

    /// The store could not hold what `admit` counted.
    pub fn not_stored(&mut self, admitted: &mut Admitted) {
        admitted.items.iter().for_each(|i| self.ledger.removed(i));
        admitted
            .results
            .iter_mut()
            .filter(|r| r.is_none())
            .for_each(|r| *r = Some(DepositReject::Unavailable));
    }

    /// Items went (acked, purged, handed on): uncount them, and forget
    /// what peers hold of a recipient of whom nothing is left here.
    pub fn removed(&mut self, gone: &[HeldItem]) {
        for item in gone {
            self.ledger.removed(item);
        }
        let ledger = &self.ledger;
        self.handed.retain(|r, _| ledger.holds_for(r));
    }

    /// Whose rules these are.
    pub fn me(&self) -> PeerId {
        self.me
    }

    /// Recipients with items here.
    pub fn recipients(&self) -> Vec<PeerId> {
        self.ledger.recipients()
    }

    /// Whether a new peer is closer than we are to a mailbox we hold.
    pub fn outranked_by(&self, peer: &PeerId) -> bool {
        self.recipients()
            .iter()
            .any(|r| outranks(&mailbox_key(r), peer, &self.me))
    }

    /// Before a hand-off pass over `recipient`'s `items` (every one held):
    /// forgets confirmations of items no longer held, and returns what is
    /// known of who holds what.
    pub fn known(&mut self, recipient: &PeerId, items: &[ItemHash]) -> Handed {
        let held: HashSet<ItemHash> = items.iter().copied().collect();
        let Some(h) = self.handed.get_mut(recipient) else {
            return Handed::default();
        };
        if h.keep_only(&held) {
            self.handed.remove(recipient);
            return Handed::default();
        }
        h.clone()
    }

    /// A pass ranked `ranking` the closest and `peers` confirmed `items`.
    /// Nothing is recorded for a recipient of whom nothing is held (its
    /// items went while the pass ran).
    pub fn handed_off(
        &mut self,
        recipient: PeerId,
        ranking: &[PeerId],
        peers: &[PeerId],
        items: &[ItemHash],
    ) {
        if !self.ledger.holds_for(&recipient) {
            return;
        }
        let handed = self.handed.entry(recipient).or_default();
        handed.ranked(ranking);
        handed.gave(peers, items);
    }

    /// Recipients whose hand-off bookkeeping is kept (tests).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.handed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::mailbox::{handoff, holders};
    use crate::wire::message::MessageId;

    fn envelope(to: PeerId, from: PeerId, id: MessageId, fill: u8) -> Envelope {
        Envelope {
            id,
            to: to.to_bytes(),
            from: from.to_bytes(),
            nonce: [0; 24],
            sealed: vec![fill; 64],
        }
    }

    /// Admits and "stores" a batch from `peer` (every item new).
    fn deposit(rules: &mut Rules, peer: PeerId, envs: Vec<Envelope>) -> Vec<Option<DepositReject>> {
        let admitted = rules.admit(peer, envs, 1);
        let fresh = vec![true; admitted.items.len()];
        rules.stored(peer, &admitted, &fresh);
        admitted.results
    }

    #[test]
    fn junk_under_a_real_id_does_not_count_as_holding_the_real_item() {
        let (jack, alice) = (PeerId::random(), PeerId::random());
        let key = mailbox_key(&jack);
        // Mallory is the closest to Jack's mailbox; we are outranked by
        // three peers, so we hand on and would let go.
        let top = holders(&key, (0..6).map(|_| PeerId::random()), &[], 6);
        let (mallory, me) = (top[0], top[4]);
        let mut rules = Rules::new(me, Quotas::default());
        let id = MessageId::random();
        let real = envelope(jack, alice, id, 1);
        let junk = envelope(jack, alice, id, 0xEE);
        assert_eq!(deposit(&mut rules, alice, vec![real.clone()]), vec![None]);
        // Mallory "hands on" other bytes under the real id.
        assert_eq!(deposit(&mut rules, mallory, vec![junk.clone()]), vec![None]);

        let items: Vec<ItemHash> = [&real, &junk]
            .iter()
            .filter_map(|e| ItemHash::of(e))
            .collect();
        let known = rules.known(&jack, &items);
        assert!(known.has(&mallory, &items[1]), "Mallory gave us the junk");
        assert!(!known.has(&mallory, &items[0]), "not the real item");
        let plan = handoff(&key, top.clone(), me, jack, 3, &known.holding(&items));
        assert!(!plan.keep);
        assert!(
            plan.targets.contains(&mallory),
            "Mallory must confirm the real bytes itself: {:?}",
            plan.targets
        );
        // The honest co-holders confirm; Mallory does not: we keep ours.
        let honest: Vec<PeerId> = plan
            .targets
            .iter()
            .filter(|p| **p != mallory)
            .copied()
            .collect();
        assert!(!plan.lets_go(&honest), "let go of the real item on junk");
        assert!(plan.lets_go(&plan.targets));
    }

    #[test]
    fn what_peers_hold_is_forgotten_once_nothing_is_left() {
        let (jack, jill, alice, coholder) = (
            PeerId::random(),
            PeerId::random(),
            PeerId::random(),
            PeerId::random(),
        );
        let mut rules = Rules::new(PeerId::random(), Quotas::default());
        let for_jack = envelope(jack, alice, MessageId::random(), 1);
        let for_jill = envelope(jill, alice, MessageId::random(), 2);
        deposit(&mut rules, coholder, vec![for_jack.clone(), for_jill]);
        assert_eq!(rules.tracked(), 2);
        let h = ItemHash::of(&for_jack).unwrap();
        let pass = [coholder, PeerId::random()];
        rules.handed_off(jack, &pass, &pass, &[h]);
        // Jack fetched and acked everything: his entry goes, Jill's stays.
        let item = |r| HeldItem {
            recipient: r,
            depositor: coholder,
            size: 64,
            expires_at: 1,
        };
        rules.removed(&[item(jack)]);
        assert_eq!(rules.tracked(), 1);
        // A pass that ends after the items went records nothing.
        rules.handed_off(jack, &pass, &pass, &[h]);
        assert_eq!(rules.tracked(), 1);
        rules.removed(&[item(jill)]);
        assert_eq!(rules.tracked(), 0);
    }

    #[test]
    fn oversized_and_misaddressed_envelopes_are_refused_by_kind() {
        let (me, jack, alice) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut rules = Rules::new(me, Quotas::default());
        let mut big = envelope(jack, alice, MessageId::random(), 1);
        big.sealed = vec![1; MAX_HELD_ENVELOPE];
        let to_me = envelope(me, alice, MessageId::random(), 2);
        let ok = envelope(jack, alice, MessageId::random(), 3);
        let admitted = rules.admit(alice, vec![big, to_me, ok.clone()], 1);
        assert_eq!(
            admitted.results,
            vec![
                Some(DepositReject::TooLarge),
                Some(DepositReject::NotAcceptable),
                None
            ]
        );
        assert_eq!(admitted.envelopes, vec![ok]);
    }
}
