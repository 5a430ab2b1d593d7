//! The holder machine: every rule of keeping mailboxes for others, with no
//! I/O. `handle(input, now, wall_ms)` takes a request, a store result or a
//! routing change and returns what to do ([`Output`]); the holder task
//! (`node::messenger::holder`) runs the outputs (store jobs, lookups,
//! deposits, answers) and feeds their results back. The machine owns its
//! timers: [`Holder::poll_timeout`] says when to call it with
//! [`Input::Tick`].
//!
//! Its rules: **admission** (addressing, size, the quota ledger, this
//! batch's earlier items counted too); **release** on the recipient's ack
//! (and only the recipient's, as authenticated by the connection);
//! **expiry** (a purge at start, then every [`PURGE_EVERY`] or TTL/2);
//! **hand-off** to the current closest peers after a deposit that brought
//! something new, a closer peer entering the routing table (for the
//! mailboxes it is closer to than we are; settled
//! [`SETTLE`], at most every [`REACT_EVERY`](super::react::REACT_EVERY)) and every poll, letting go
//! once outranked and every target confirmed; and what each peer is known
//! to hold ([`Handed`]), forgotten when nothing is left to remember.
//!
//! Time comes in twice: `now` (an [`Instant`]) drives the timers, and
//! `wall_ms` (Unix ms) stamps expiries, which are kept on disk and so must
//! outlive the process.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use tracing::debug;

use super::ledger::Ledger;
use super::placement::{Handed, Handoff, handoff, outranks};
use super::react::{SETTLE, react_at};
use crate::config::Quotas;
use crate::store::{Admitted, HeldItem};
use crate::wire::mailbox::{
    DEPOSIT_BATCH, DepositReject, Encoding, ItemHash, MAX_ACK_IDS, MAX_HELD_ENVELOPE,
    MailboxRequest, MailboxResponse, mailbox_key,
};
use crate::wire::message::Envelope;

/// How often expired items are purged (or every TTL/2 if shorter).
pub const PURGE_EVERY: Duration = Duration::from_secs(600);

#[path = "holder_interface.rs"]
mod interface;

pub use interface::{DepositId, Input, Output, PassId};

/// Encodes and hashes each envelope of a deposit, for [`Output::Encode`]:
/// the one encoding admission, dedupe and the store row all use.
pub fn encode_deposit(envelopes: Vec<Envelope>) -> Vec<(Envelope, Option<Encoding>)> {
    envelopes
        .into_iter()
        .map(|e| {
            let encoding = Encoding::of(&e);
            (e, encoding)
        })
        .collect()
}

/// A deposit batch waiting for the store.
#[derive(Debug)]
struct Pending {
    peer: PeerId,
    results: Vec<Option<DepositReject>>,
    /// Per admitted item: what the ledger counted, its hash, and whether
    /// the depositor counts as holding it (a co-holder, not its sender).
    items: Vec<(HeldItem, ItemHash, bool)>,
}

/// A hand-off pass over one recipient's items.
#[derive(Debug)]
struct Pass {
    recipient: PeerId,
    items: Vec<(ItemHash, Envelope)>,
    known: Handed,
    plan: Option<Handoff>,
    waiting: usize,
    confirmed: Vec<PeerId>,
}

/// The holder machine. See the module documentation.
#[derive(Debug)]
pub struct Holder {
    me: PeerId,
    replicas: usize,
    ttl: Duration,
    poll: Duration,
    ledger: Ledger,
    /// Per recipient, which peers are known to hold which items.
    handed: HashMap<PeerId, Handed>,
    deposits: HashMap<DepositId, Pending>,
    passes: HashMap<PassId, Pass>,
    next_id: u64,
    handoff_due: Option<Instant>,
    /// The recipients the pass due is for: those a new peer outranks us
    /// for and those something new was deposited for; `None`, every
    /// recipient held (the poll's pass).
    handoff_only: Option<HashSet<PeerId>>,
    last_handoff: Option<Instant>,
    next_poll: Instant,
    next_purge: Instant,
}

impl Holder {
    /// Nothing held yet, at `now`: the first purge is due at once, the
    /// first poll after `poll`.
    pub fn new(
        me: PeerId,
        quotas: Quotas,
        replicas: usize,
        ttl: Duration,
        poll: Duration,
        now: Instant,
    ) -> Self {
        Self {
            me,
            replicas,
            ttl,
            poll,
            ledger: Ledger::new(quotas),
            handed: HashMap::new(),
            deposits: HashMap::new(),
            passes: HashMap::new(),
            next_id: 0,
            handoff_due: None,
            handoff_only: None,
            last_handoff: None,
            next_poll: now + poll,
            next_purge: now,
        }
    }

    /// When the machine next wants [`Input::Tick`].
    pub fn poll_timeout(&self) -> Instant {
        [
            self.handoff_due,
            Some(self.next_poll),
            Some(self.next_purge),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.next_poll)
    }

    /// Takes one input at `now` (`wall_ms`: the same moment in Unix ms).
    pub fn handle(&mut self, input: Input, now: Instant, wall_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Loaded(items) => items.iter().for_each(|i| self.ledger.added(i)),
            Input::Request { peer, request } => self.request(peer, request, &mut out),
            Input::Encoded { peer, batch } => self.deposit(peer, batch, wall_ms, &mut out),
            Input::Held { deposit, fresh } => self.held(deposit, fresh, now, &mut out),
            Input::Acked(gone) => {
                let removed = gone.as_ref().map_or(0, Vec::len) as u32;
                self.removed(&gone.unwrap_or_default());
                out.push(Output::Respond(MailboxResponse::Acked { removed }));
            }
            Input::Removed(gone) => self.removed(&gone),
            Input::NewPeer(peer) => self.new_peer(peer, now),
            Input::HeldFor { recipient, items } => self.pass_read(recipient, items, &mut out),
            Input::Found { pass, peers } => self.pass_found(pass, peers, &mut out),
            Input::Copied {
                pass,
                peer,
                confirmed,
            } => self.pass_copied(pass, peer, confirmed, &mut out),
            Input::Tick => self.tick(now, wall_ms, &mut out),
        }
        out
    }

    /// Answers what needs no store work (a denied fetch or ack), has a
    /// deposit's envelopes encoded and turns the rest into store jobs.
    fn request(&mut self, peer: PeerId, request: MailboxRequest, out: &mut Vec<Output>) {
        match request {
            MailboxRequest::Deposit(mut envelopes) => {
                envelopes.truncate(DEPOSIT_BATCH);
                out.push(Output::Encode { peer, envelopes });
            }
            // Fetch and Ack are only for the recipient itself.
            MailboxRequest::Fetch { recipient, .. } | MailboxRequest::Ack { recipient, .. }
                if recipient != peer.to_bytes() =>
            {
                out.push(Output::Respond(MailboxResponse::Denied));
            }
            MailboxRequest::Fetch { cursor, .. } => out.push(Output::Page {
                recipient: peer,
                cursor,
            }),
            MailboxRequest::Ack { ids, .. } => out.push(Output::Release {
                recipient: peer,
                ids: ids.into_iter().take(MAX_ACK_IDS).collect(),
            }),
        }
    }

    /// Admits a deposit item by item; the admitted are counted at once and
    /// go to the store, the answer waits for it.
    fn deposit(
        &mut self,
        peer: PeerId,
        batch: Vec<(Envelope, Option<Encoding>)>,
        wall_ms: u64,
        out: &mut Vec<Output>,
    ) {
        let expires_at = wall_ms.saturating_add(self.ttl.as_millis() as u64);
        let from = peer.to_bytes();
        let mut results = Vec::with_capacity(batch.len().min(DEPOSIT_BATCH));
        let (mut items, mut pending) = (Vec::new(), Vec::new());
        for (envelope, encoding) in batch.into_iter().take(DEPOSIT_BATCH) {
            match self.admit(peer, &envelope, encoding, expires_at) {
                Ok((item, encoding)) => {
                    results.push(None);
                    pending.push((item.clone(), encoding.hash, envelope.from != from));
                    items.push(Admitted {
                        item,
                        encoding,
                        envelope,
                    });
                }
                Err(why) => results.push(Some(why)),
            }
        }
        if items.is_empty() {
            out.push(Output::Respond(MailboxResponse::Deposited(results)));
            return;
        }
        let deposit = self.fresh_id();
        self.deposits.insert(
            deposit,
            Pending {
                peer,
                results,
                items: pending,
            },
        );
        out.push(Output::Hold { deposit, items });
    }

    /// One envelope from `peer`: addressed to someone else than us and the
    /// depositor, no larger than [`MAX_HELD_ENVELOPE`] encoded, within the
    /// quotas. Its one encoding gives the size here, and the hash and the
    /// row's bytes later.
    fn admit(
        &mut self,
        peer: PeerId,
        env: &Envelope,
        encoding: Option<Encoding>,
        expires_at: u64,
    ) -> Result<(HeldItem, Encoding), DepositReject> {
        let recipient = match PeerId::from_bytes(&env.to) {
            Ok(r) if r != self.me && r != peer && PeerId::from_bytes(&env.from).is_ok() => r,
            _ => return Err(DepositReject::NotAcceptable),
        };
        let encoding = encoding.ok_or(DepositReject::TooLarge)?;
        if encoding.bytes.len() > MAX_HELD_ENVELOPE {
            return Err(DepositReject::TooLarge);
        }
        let item = HeldItem {
            recipient,
            depositor: peer,
            size: env.sealed.len(),
            expires_at,
        };
        self.ledger.admit(&recipient, &peer, item.size)?;
        self.ledger.added(&item);
        Ok((item, encoding))
    }

    /// The store answered a deposit: settle the ledger, note what a
    /// co-holder gave us (by hash: other bytes under a real id say nothing
    /// of the real item), start a pass if anything was new, and answer.
    fn held(
        &mut self,
        deposit: DepositId,
        fresh: Option<Vec<bool>>,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let Some(Pending {
            peer,
            mut results,
            items,
        }) = self.deposits.remove(&deposit)
        else {
            return;
        };
        match fresh {
            Some(fresh) => {
                let mut added = Vec::new();
                for ((item, hash, from_holder), new) in items.iter().zip(&fresh) {
                    if !new {
                        // Counted in `admit`, but held already.
                        self.ledger.removed(item);
                    }
                    if *from_holder {
                        let handed = self.handed.entry(item.recipient).or_default();
                        handed.gave(&[peer], &[*hash]);
                    }
                    if *new {
                        added.push(item.recipient);
                    }
                }
                // Only these mailboxes changed: the others' holders are
                // as they were (the poll's pass looks at every one).
                if !added.is_empty() {
                    self.pass_over(added, now + SETTLE);
                }
            }
            None => {
                items.iter().for_each(|(i, _, _)| self.ledger.removed(i));
                results
                    .iter_mut()
                    .filter(|r| r.is_none())
                    .for_each(|r| *r = Some(DepositReject::Unavailable));
            }
        }
        out.push(Output::Respond(MailboxResponse::Deposited(results)));
    }

    /// Items went: uncount them, and forget what peers hold of a recipient
    /// of whom nothing is left here.
    fn removed(&mut self, gone: &[HeldItem]) {
        gone.iter().for_each(|i| self.ledger.removed(i));
        let ledger = &self.ledger;
        self.handed.retain(|r, _| ledger.holds_for(r));
    }

    /// A peer closer than we are to mailboxes we hold: look again at who
    /// should hold those (not every mailbox held: each costs a lookup, and
    /// in a busy network new peers come all the time), after a settle and
    /// at most every [`REACT_EVERY`](super::react::REACT_EVERY).
    fn new_peer(&mut self, peer: PeerId, now: Instant) {
        let outranked: Vec<PeerId> = self
            .ledger
            .recipients()
            .into_iter()
            .filter(|r| outranks(&mailbox_key(r), &peer, &self.me))
            .collect();
        if outranked.is_empty() {
            return;
        }
        self.pass_over(outranked, react_at(self.last_handoff, now));
    }

    /// Adds `recipients` to the pass due, or makes one due at `at`. A pass
    /// over every mailbox already due covers them.
    fn pass_over(&mut self, recipients: Vec<PeerId>, at: Instant) {
        let full_due = self.handoff_due.is_some() && self.handoff_only.is_none();
        if !full_due {
            self.handoff_only.get_or_insert_default().extend(recipients);
        }
        self.handoff_due.get_or_insert(at);
    }

    fn tick(&mut self, now: Instant, wall_ms: u64, out: &mut Vec<Output>) {
        if now >= self.next_poll {
            self.next_poll = now + self.poll;
            // A co-holder may have left without our routing table
            // changing: its copies must be replaced before the others go.
            if !self.ledger.recipients().is_empty() {
                self.handoff_due.get_or_insert(now);
                self.handoff_only = None;
            }
        }
        if self.handoff_due.is_some_and(|t| t <= now) {
            self.handoff_due = None;
            self.last_handoff = Some(now);
            let only = self.handoff_only.take();
            out.extend(
                self.ledger
                    .recipients()
                    .into_iter()
                    .filter(|r| only.as_ref().is_none_or(|o| o.contains(r)))
                    .map(Output::ReadHeld),
            );
        }
        if now >= self.next_purge {
            self.next_purge = now + PURGE_EVERY.min(self.ttl / 2);
            out.push(Output::Purge { wall_ms });
        }
    }

    /// A pass read `recipient`'s items: forget confirmations of items no
    /// longer held, and look up who should hold them now.
    fn pass_read(
        &mut self,
        recipient: PeerId,
        items: Vec<(ItemHash, Envelope)>,
        out: &mut Vec<Output>,
    ) {
        if items.is_empty() {
            return;
        }
        let held: HashSet<ItemHash> = items.iter().map(|(h, _)| *h).collect();
        let forget = self
            .handed
            .get_mut(&recipient)
            .is_some_and(|h| h.keep_only(&held));
        if forget {
            self.handed.remove(&recipient);
        }
        let known = self.handed.get(&recipient).cloned().unwrap_or_default();
        let pass = self.fresh_id();
        self.passes.insert(
            pass,
            Pass {
                recipient,
                items,
                known,
                plan: None,
                waiting: 0,
                confirmed: Vec::new(),
            },
        );
        out.push(Output::Lookup {
            pass,
            key: mailbox_key(&recipient),
        });
    }

    /// The lookup answered: copy to the closest peers not known to hold
    /// these exact items, each only what it is not known to hold.
    fn pass_found(&mut self, id: PassId, peers: Vec<PeerId>, out: &mut Vec<Output>) {
        if peers.is_empty() {
            self.passes.remove(&id);
            return;
        }
        let Some(pass) = self.passes.get_mut(&id) else {
            return;
        };
        let hashes: Vec<ItemHash> = pass.items.iter().map(|(h, _)| *h).collect();
        let key = mailbox_key(&pass.recipient);
        let already = pass.known.holding(&hashes);
        let plan = handoff(
            &key,
            peers,
            self.me,
            pass.recipient,
            self.replicas,
            &already,
        );
        for target in &plan.targets {
            let envelopes = pass
                .items
                .iter()
                .filter(|(h, _)| !pass.known.has(target, h))
                .map(|(_, e)| e.clone())
                .collect();
            out.push(Output::Copy {
                pass: id,
                peer: *target,
                envelopes,
            });
        }
        pass.waiting = plan.targets.len();
        pass.plan = Some(plan);
        if pass.waiting == 0 {
            self.pass_done(id, out);
        }
    }

    fn pass_copied(&mut self, id: PassId, peer: PeerId, confirmed: bool, out: &mut Vec<Output>) {
        let Some(pass) = self.passes.get_mut(&id) else {
            return;
        };
        if confirmed {
            pass.confirmed.push(peer);
        }
        pass.waiting = pass.waiting.saturating_sub(1);
        if pass.waiting == 0 {
            self.pass_done(id, out);
        }
    }

    /// Every target answered: record who holds what, and let ours go if
    /// we are outranked and every target confirmed. Nothing is recorded
    /// for a recipient of whom nothing is held (its items went meanwhile).
    fn pass_done(&mut self, id: PassId, out: &mut Vec<Output>) {
        let Some(Pass {
            recipient,
            items,
            plan: Some(plan),
            confirmed,
            ..
        }) = self.passes.remove(&id)
        else {
            return;
        };
        let release = plan.lets_go(&confirmed);
        if !confirmed.is_empty() || release {
            debug!(%recipient, peers = confirmed.len(), items = items.len(), release, "handed mailbox on");
        }
        if self.ledger.holds_for(&recipient) {
            let handed = self.handed.entry(recipient).or_default();
            handed.ranked(&plan.ranking);
            let hashes: Vec<ItemHash> = items.iter().map(|(h, _)| *h).collect();
            handed.gave(&confirmed, &hashes);
        }
        if release {
            let items = items.into_iter().map(|(h, e)| (e.id, h)).collect();
            out.push(Output::ReleaseItems { recipient, items });
        }
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Recipients whose hand-off bookkeeping is kept (tests).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.handed.len()
    }
}

#[cfg(test)]
#[path = "holder_tests.rs"]
mod tests;
