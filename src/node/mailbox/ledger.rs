//! The quota ledger: running counts of what a holder keeps, so a deposit
//! is checked against [`Quotas`] without a scan of the store.

use std::collections::HashMap;

use libp2p::PeerId;

use crate::config::Quotas;
use crate::store::HeldItem;
use crate::wire::mailbox::DepositReject;

/// Running counts of what a holder keeps, for quota checks without a scan.
#[derive(Debug, Default)]
pub struct Ledger {
    quotas: Quotas,
    by_recipient: HashMap<PeerId, (usize, usize)>,
    by_depositor: HashMap<PeerId, usize>,
    /// Items per (depositor, recipient), for [`Quotas::pair_items`].
    by_pair: HashMap<(PeerId, PeerId), usize>,
    total: (usize, usize),
}

impl Ledger {
    /// An empty ledger with these quotas.
    pub fn new(quotas: Quotas) -> Self {
        Self {
            quotas,
            ..Self::default()
        }
    }

    /// Whether one more item of `size` bytes fits.
    pub fn admit(
        &self,
        recipient: &PeerId,
        depositor: &PeerId,
        size: usize,
    ) -> Result<(), DepositReject> {
        let (items, bytes) = self.by_recipient.get(recipient).copied().unwrap_or((0, 0));
        if items + 1 > self.quotas.recipient_items || bytes + size > self.quotas.recipient_bytes {
            return Err(DepositReject::RecipientQuota);
        }
        if self.by_depositor.get(depositor).copied().unwrap_or(0) + 1 > self.quotas.depositor_items
        {
            return Err(DepositReject::DepositorQuota);
        }
        let pair = (*depositor, *recipient);
        if self.by_pair.get(&pair).copied().unwrap_or(0) + 1 > self.quotas.pair_items {
            return Err(DepositReject::DepositorQuota);
        }
        if self.total.0 + 1 > self.quotas.total_items
            || self.total.1 + size > self.quotas.total_bytes
        {
            return Err(DepositReject::Unavailable);
        }
        Ok(())
    }

    /// An item was stored.
    pub fn added(&mut self, item: &HeldItem) {
        self.total.0 += 1;
        self.total.1 += item.size;
        let e = self.by_recipient.entry(item.recipient).or_default();
        e.0 += 1;
        e.1 += item.size;
        *self.by_depositor.entry(item.depositor).or_default() += 1;
        *self
            .by_pair
            .entry((item.depositor, item.recipient))
            .or_default() += 1;
    }

    /// An item was released or purged.
    pub fn removed(&mut self, item: &HeldItem) {
        self.total.0 = self.total.0.saturating_sub(1);
        self.total.1 = self.total.1.saturating_sub(item.size);
        if let Some(e) = self.by_recipient.get_mut(&item.recipient) {
            e.0 = e.0.saturating_sub(1);
            e.1 = e.1.saturating_sub(item.size);
            if e.0 == 0 {
                self.by_recipient.remove(&item.recipient);
            }
        }
        if let Some(d) = self.by_depositor.get_mut(&item.depositor) {
            *d = d.saturating_sub(1);
            if *d == 0 {
                self.by_depositor.remove(&item.depositor);
            }
        }
        let pair = (item.depositor, item.recipient);
        if let Some(n) = self.by_pair.get_mut(&pair) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_pair.remove(&pair);
            }
        }
    }

    /// Whether anything is held for `recipient`.
    pub fn holds_for(&self, recipient: &PeerId) -> bool {
        self.by_recipient.contains_key(recipient)
    }

    /// Recipients with items here.
    pub fn recipients(&self) -> Vec<PeerId> {
        self.by_recipient.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_per_recipient_and_depositor() {
        let q = Quotas {
            recipient_items: 2,
            recipient_bytes: 1000,
            depositor_items: 3,
            pair_items: 10,
            total_items: 4,
            total_bytes: 10_000,
        };
        let mut l = Ledger::new(q);
        let (jack, jill, alice) = (PeerId::random(), PeerId::random(), PeerId::random());
        let item = |r, size| HeldItem {
            recipient: r,
            depositor: alice,
            size,
            expires_at: 0,
        };
        assert!(l.admit(&jack, &alice, 600).is_ok());
        l.added(&item(jack, 600));
        assert_eq!(
            l.admit(&jack, &alice, 600),
            Err(DepositReject::RecipientQuota)
        );
        l.added(&item(jack, 100));
        assert_eq!(
            l.admit(&jack, &alice, 1),
            Err(DepositReject::RecipientQuota)
        );
        l.added(&item(jill, 1));
        assert_eq!(
            l.admit(&jill, &alice, 1),
            Err(DepositReject::DepositorQuota)
        );
        l.removed(&item(jack, 600));
        assert!(l.admit(&jill, &alice, 1).is_ok());
        assert_eq!(l.recipients().len(), 2);
        // The holder's overall limit, whoever deposits.
        let bob = PeerId::random();
        l.added(&HeldItem {
            recipient: jill,
            depositor: bob,
            size: 1,
            expires_at: 0,
        });
        l.added(&HeldItem {
            recipient: PeerId::random(),
            depositor: bob,
            size: 1,
            expires_at: 0,
        });
        assert_eq!(
            l.admit(&PeerId::random(), &PeerId::random(), 1),
            Err(DepositReject::Unavailable)
        );
    }

    #[test]
    fn one_depositor_fills_only_its_share_of_a_mailbox() {
        let q = Quotas {
            pair_items: 2,
            ..Quotas::default()
        };
        let mut l = Ledger::new(q);
        let (jack, jill, mallory, alice) = (
            PeerId::random(),
            PeerId::random(),
            PeerId::random(),
            PeerId::random(),
        );
        let item = |recipient, depositor| HeldItem {
            recipient,
            depositor,
            size: 10,
            expires_at: 0,
        };
        for _ in 0..2 {
            assert!(l.admit(&jack, &mallory, 10).is_ok());
            l.added(&item(jack, mallory));
        }
        assert_eq!(
            l.admit(&jack, &mallory, 10),
            Err(DepositReject::DepositorQuota)
        );
        // Others still reach Jack, and Mallory still reaches others.
        assert!(l.admit(&jack, &alice, 10).is_ok());
        assert!(l.admit(&jill, &mallory, 10).is_ok());
        // The count goes down as items go.
        l.removed(&item(jack, mallory));
        assert!(l.admit(&jack, &mallory, 10).is_ok());
    }
}
