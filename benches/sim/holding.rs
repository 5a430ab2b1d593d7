//! roost's mailbox machines in the modelled network. Every holder is an
//! instance of roost's holder machine (`node::mailbox::holder::Holder`:
//! admission, quotas, expiry, hand-off, release, and its timers), fed its
//! requests, store results, lookups and ticks on the simulated clock; a
//! returning recipient runs roost's fetcher machines
//! (`node::mailbox::fetcher::{Fetcher, HolderFetch}`). What is modelled
//! here is only the I/O the machines' tasks do in a node: a map per holder
//! in place of its sled tree, lookups on the modelled network, and requests
//! delivered to the other node's machine and answered in the same
//! simulated instant (a departed node answers nothing).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use roost::config::MailboxConfig;
use roost::node::mailbox::fetcher::{self, Fetcher, HolderFetch, Step, Stop};
use roost::node::mailbox::holder::{Holder, Input, Output, encode_deposit};
use roost::node::mailbox::holders;
use roost::store::{Admitted, HeldItem};
use roost::wire::mailbox::{
    DEPOSIT_BATCH, FETCH_FROM, ItemHash, MailboxRequest, MailboxResponse, PAGE_ITEMS, mailbox_key,
};
use roost::wire::message::{Ack, AckResult, Envelope, MessageId};

use super::{Net, R, key_of_bytes};

/// Unix ms of the simulated clock's origin: a fixed date, so that expiries
/// are the same in every run.
const WALL_ORIGIN_MS: u64 = 1_800_000_000_000;
/// Most fetches a returning recipient makes in a row (its fetcher asks
/// for another at once only while a holder stopped early with new mail).
const FETCHES: usize = 16;

/// One held item, as a holder's store keeps it.
struct Row {
    item: HeldItem,
    hash: ItemHash,
    envelope: Envelope,
}

/// One holder's store: its rows by (recipient, number in order of
/// arrival); a page's cursor is a row's number, as in the sled tree.
#[derive(Default)]
struct Shelf {
    next: u64,
    rows: BTreeMap<(usize, u64), Row>,
}

impl Shelf {
    /// Rows of `recipient` that `gone` picks go; returns what went.
    fn remove(&mut self, recipient: usize, gone: impl Fn(&Row) -> bool) -> Vec<HeldItem> {
        let keys: Vec<(usize, u64)> = self
            .rows
            .range((recipient, 0)..=(recipient, u64::MAX))
            .filter(|(_, row)| gone(row))
            .map(|(k, _)| *k)
            .collect();
        keys.iter()
            .filter_map(|k| self.rows.remove(k))
            .map(|row| row.item)
            .collect()
    }
}

/// Every node's holder machine and store, the timers they asked for, and
/// what their lookups found. See the module documentation.
pub struct Mailboxes {
    t0: Instant,
    config: MailboxConfig,
    machines: BTreeMap<usize, Holder>,
    shelves: BTreeMap<usize, Shelf>,
    /// When each machine next wants a tick ([`Holder::poll_timeout`]).
    timers: BTreeSet<(Instant, usize)>,
    timer_of: BTreeMap<usize, Instant>,
    /// Node of each peer id, and recipient of each mailbox key.
    index: BTreeMap<PeerId, usize>,
    mailbox_of: BTreeMap<Vec<u8>, usize>,
    /// Per recipient and holder, the R + 1 closest peers its last lookup
    /// of the mailbox found (all a hand-off plan reads), and per node the
    /// recipients whose cached results it is in. Between routing-table
    /// refreshes a lookup can only come out differently when one of these
    /// has left, so a holder's periodic pass looks up again only then: the
    /// outcome of a lookup every pass, at a fraction of the lookups.
    found: BTreeMap<usize, BTreeMap<usize, Vec<u32>>>,
    watching: BTreeMap<usize, BTreeSet<usize>>,
    /// Envelopes holders sent to live peers in hand-off copies.
    pub handoff_copies: usize,
}

impl Mailboxes {
    /// No machine yet; the clock starts at `t0`, holders poll every `poll`.
    pub fn new(t0: Instant, poll: Duration) -> Self {
        Self {
            t0,
            config: MailboxConfig {
                replicas: R,
                poll,
                ..MailboxConfig::default()
            },
            machines: BTreeMap::new(),
            shelves: BTreeMap::new(),
            timers: BTreeSet::new(),
            timer_of: BTreeMap::new(),
            index: BTreeMap::new(),
            mailbox_of: BTreeMap::new(),
            found: BTreeMap::new(),
            watching: BTreeMap::new(),
            handoff_copies: 0,
        }
    }

    /// Learns the nodes that joined since the last call, and `recipients`'
    /// mailbox keys.
    pub fn learn(&mut self, net: &Net, recipients: impl IntoIterator<Item = usize>) {
        for i in self.index.len()..net.peers.len() {
            self.index.insert(net.peers[i], i);
        }
        for r in recipients {
            self.mailbox_of.insert(mailbox_key(&net.peers[r]), r);
        }
    }

    /// `sender` deposits `envelope` with `holder` at `now`: whether the
    /// holder answered that it stored it.
    pub fn deposit(
        &mut self,
        net: &mut Net,
        sender: usize,
        holder: usize,
        envelope: Envelope,
        now: Instant,
    ) -> bool {
        let request = MailboxRequest::Deposit(vec![envelope]);
        matches!(
            self.request(net, sender, holder, request, now),
            Some(MailboxResponse::Deposited(r)) if r.first() == Some(&None)
        )
    }

    /// Runs every machine's timers due before `until`, in time order.
    pub fn run_until(&mut self, net: &mut Net, until: Instant) {
        while let Some(&(at, node)) = self.timers.first() {
            if at >= until {
                break;
            }
            self.timers.pop_first();
            self.timer_of.remove(&node);
            if net.alive[node] {
                self.feed(net, node, Input::Tick, at);
            }
        }
    }

    /// `node` left for good: its machine and store go with it, and every
    /// cached lookup result it was in.
    pub fn leave(&mut self, node: usize) {
        self.machines.remove(&node);
        self.shelves.remove(&node);
        if let Some(at) = self.timer_of.remove(&node) {
            self.timers.remove(&(at, node));
        }
        for r in self.watching.remove(&node).unwrap_or_default() {
            self.found.remove(&r);
        }
    }

    /// Routing tables were refreshed: every lookup may come out otherwise.
    pub fn refreshed(&mut self) {
        self.found.clear();
        self.watching.clear();
    }

    /// Every (recipient, message) some node holds a copy of.
    pub fn held_anywhere(&self) -> BTreeSet<(usize, MessageId)> {
        self.shelves
            .values()
            .flat_map(|s| s.rows.iter().map(|((r, _), row)| (*r, row.envelope.id)))
            .collect()
    }

    /// Items held in all.
    pub fn copies(&self) -> usize {
        self.shelves.values().map(|s| s.rows.len()).sum()
    }

    /// Recipient `r` is back at `now`: its fetcher fetches its mailbox (a
    /// settle after the first peer of its routing table is known, then as
    /// long as it asks for more). Returns the messages it got.
    pub fn fetch_own(&mut self, net: &mut Net, r: usize, now: Instant) -> BTreeSet<MessageId> {
        let key = mailbox_key(&net.peers[r]);
        let mut machine = Fetcher::new(&key, self.config.poll, R, now);
        let mut got = BTreeSet::new();
        let Some(&first) = net.tables[r].first() else {
            return got;
        };
        machine.handle(fetcher::Input::NewPeer(net.peers[first as usize]), now);
        let at = machine.poll_timeout();
        let mut outputs = machine.handle(fetcher::Input::Tick, at);
        for _ in 0..FETCHES {
            let Some(ask) = outputs.into_iter().find_map(|o| match o {
                fetcher::Output::Fetch(ask) => Some(ask),
                _ => None,
            }) else {
                break;
            };
            let asked = match ask {
                fetcher::Ask::Holders(asked) => asked,
                fetcher::Ask::Lookup(_) => {
                    let l = net.lookup(r, &key_of_bytes(&key));
                    let found = l.found.iter().map(|&i| net.peers[i]);
                    holders(&key, found, &[net.peers[r]], R.max(FETCH_FROM))
                }
            };
            let ends: Vec<_> = asked
                .iter()
                .map(|h| self.fetch_from(net, r, self.index[h], at, &mut got))
                .collect();
            outputs = machine.handle(fetcher::Input::done(asked, &ends), at);
        }
        got
    }

    /// One fetch of `r`'s mailbox from `holder`, within [`HolderFetch`]'s
    /// bounds: why it stopped, and whether to fetch again at once.
    fn fetch_from(
        &mut self,
        net: &mut Net,
        r: usize,
        holder: usize,
        now: Instant,
        got: &mut BTreeSet<MessageId>,
    ) -> (Stop, bool) {
        let me = net.peers[r].to_bytes();
        let mut run = HolderFetch::new(now);
        let mut step = run.start();
        let stop = loop {
            let cursor = match step {
                Step::Ask(c) => c,
                Step::Stop(why) => break why,
            };
            let request = MailboxRequest::Fetch {
                recipient: me.clone(),
                cursor,
            };
            let Some(MailboxResponse::Page { mut items, next }) =
                self.request(net, r, holder, request, now)
            else {
                break Stop::Failed;
            };
            let verdict = run.page(now, items.len(), next);
            items.truncate(verdict.take);
            step = verdict.then;
            if items.is_empty() {
                continue;
            }
            let acks: Vec<Ack> = items
                .iter()
                .map(|e| Ack {
                    id: Some(e.id),
                    result: if got.insert(e.id) {
                        AckResult::Accepted
                    } else {
                        AckResult::Duplicate
                    },
                })
                .collect();
            let Some(ids) = run.filed(acks, &vec![true; items.len()]) else {
                break Stop::Unfiled;
            };
            let ack = MailboxRequest::Ack {
                recipient: me.clone(),
                ids,
            };
            self.request(net, r, holder, ack, now);
        };
        (stop, run.more(stop))
    }

    /// `from` sends `request` to `to`'s holder machine: its answer, or
    /// `None` if `to` has left.
    fn request(
        &mut self,
        net: &mut Net,
        from: usize,
        to: usize,
        request: MailboxRequest,
        now: Instant,
    ) -> Option<MailboxResponse> {
        if !net.alive[to] {
            return None;
        }
        let peer = net.peers[from];
        self.feed(net, to, Input::Request { peer, request }, now)
    }

    /// Gives `node`'s machine one input at `now` and carries out what it
    /// asks, feeding back the results; returns its answer to a request.
    fn feed(
        &mut self,
        net: &mut Net,
        node: usize,
        input: Input,
        now: Instant,
    ) -> Option<MailboxResponse> {
        let wall_ms = WALL_ORIGIN_MS + now.duration_since(self.t0).as_millis() as u64;
        let (me, config) = (net.peers[node], &self.config);
        let machine = self.machines.entry(node).or_insert_with(|| {
            Holder::new(
                me,
                config.quotas,
                config.replicas,
                config.ttl,
                config.poll,
                now,
            )
        });
        let outputs = machine.handle(input, now, wall_ms);
        let next = machine.poll_timeout();
        if let Some(at) = self.timer_of.insert(node, next) {
            self.timers.remove(&(at, node));
        }
        self.timers.insert((next, node));
        let mut response = None;
        // A pass per recipient, in the order of their nodes (the machine
        // lists them in its hash order).
        let mut reads = Vec::new();
        for output in outputs {
            match output {
                Output::Respond(r) => response = Some(r),
                Output::ReadHeld(p) => reads.push(self.index[&p]),
                other => {
                    if let Some(r) = self.carry_out(net, node, other, now) {
                        response = Some(r);
                    }
                }
            }
        }
        reads.sort_unstable();
        for r in reads {
            let items = self.shelves.get(&node).map_or_else(Vec::new, |s| {
                s.rows
                    .range((r, 0)..=(r, u64::MAX))
                    .map(|(_, row)| (row.hash, row.envelope.clone()))
                    .collect()
            });
            let recipient = net.peers[r];
            self.feed(net, node, Input::HeldFor { recipient, items }, now);
        }
        response
    }

    /// Carries out one output of `node`'s machine (the holder task's
    /// work: store jobs, lookups, copies); returns the answer it leads to.
    fn carry_out(
        &mut self,
        net: &mut Net,
        node: usize,
        output: Output,
        now: Instant,
    ) -> Option<MailboxResponse> {
        let next = match output {
            Output::Encode { peer, envelopes } => Input::Encoded {
                peer,
                batch: encode_deposit(envelopes),
            },
            Output::Hold { deposit, items } => {
                let fresh = Some(self.hold(node, items));
                Input::Held { deposit, fresh }
            }
            Output::Page { recipient, cursor } => {
                return Some(self.page(node, self.index[&recipient], cursor));
            }
            Output::Release { recipient, ids } => {
                let r = self.index[&recipient];
                let shelf = self.shelves.entry(node).or_default();
                Input::Acked(Some(shelf.remove(r, |row| ids.contains(&row.envelope.id))))
            }
            Output::Purge { wall_ms } => {
                let shelf = self.shelves.entry(node).or_default();
                let mut gone = Vec::new();
                shelf.rows.retain(|_, row| {
                    let keep = row.item.expires_at > wall_ms;
                    if !keep {
                        gone.push(row.item.clone());
                    }
                    keep
                });
                Input::Removed(gone)
            }
            Output::Lookup { pass, key } => {
                let peers = self.lookup(net, node, &key);
                Input::Found { pass, peers }
            }
            Output::Copy {
                pass,
                peer,
                envelopes,
            } => {
                let confirmed = self.copy(net, node, peer, envelopes, now);
                Input::Copied {
                    pass,
                    peer,
                    confirmed,
                }
            }
            Output::ReleaseItems { recipient, items } => {
                let r = self.index[&recipient];
                let shelf = self.shelves.entry(node).or_default();
                Input::Removed(shelf.remove(r, |row| items.contains(&(row.envelope.id, row.hash))))
            }
            Output::Respond(r) => return Some(r),
            Output::ReadHeld(_) => unreachable!("passes are read in `feed`"),
        };
        self.feed(net, node, next, now)
    }

    /// The store's `hold`: per item, whether these exact bytes are new.
    fn hold(&mut self, node: usize, items: Vec<Admitted>) -> Vec<bool> {
        let shelf = self.shelves.entry(node).or_default();
        let mut fresh = Vec::with_capacity(items.len());
        for Admitted {
            item,
            encoding,
            envelope,
        } in items
        {
            let hash = encoding.hash;
            let r = self.index[&item.recipient];
            let held = shelf
                .rows
                .range((r, 0)..=(r, u64::MAX))
                .any(|(_, row)| row.hash == hash);
            fresh.push(!held);
            if !held {
                shelf.next += 1;
                let row = Row {
                    item,
                    hash,
                    envelope,
                };
                shelf.rows.insert((r, shelf.next), row);
            }
        }
        fresh
    }

    /// The store's `held_page`: up to [`PAGE_ITEMS`] of `r`'s items from
    /// `cursor` on, and the cursor of the next page if more remain.
    fn page(&self, node: usize, r: usize, cursor: u64) -> MailboxResponse {
        let rows = self.shelves.get(&node).map(|s| {
            s.rows
                .range((r, cursor)..=(r, u64::MAX))
                .take(PAGE_ITEMS + 1)
                .map(|((_, seq), row)| (*seq, row.envelope.clone()))
                .collect::<Vec<_>>()
        });
        let mut rows = rows.unwrap_or_default();
        let next = (rows.len() > PAGE_ITEMS).then(|| rows[PAGE_ITEMS].0);
        rows.truncate(PAGE_ITEMS);
        MailboxResponse::Page {
            items: rows.into_iter().map(|(_, e)| e).collect(),
            next,
        }
    }

    /// `node`'s lookup of a mailbox key: the closest peers it finds (the
    /// R + 1 closest, from its last lookup while none of them has left and
    /// no refresh came in between).
    fn lookup(&mut self, net: &mut Net, node: usize, key: &[u8]) -> Vec<PeerId> {
        let Some(&r) = self.mailbox_of.get(key) else {
            return Vec::new();
        };
        if let Some(top) = self.found.get(&r).and_then(|f| f.get(&node)) {
            return top.iter().map(|&i| net.peers[i as usize]).collect();
        }
        let l = net.lookup(node, &key_of_bytes(key));
        let found = l.found.iter().map(|&i| net.peers[i]);
        let top = holders(key, found, &[net.peers[r]], R + 1);
        let nodes: Vec<u32> = top.iter().map(|p| self.index[p] as u32).collect();
        for &i in &nodes {
            self.watching.entry(i as usize).or_default().insert(r);
        }
        self.found.entry(r).or_default().insert(node, nodes);
        top
    }

    /// A hand-off copy from `node` to `peer`, in deposit batches: whether
    /// `peer` stored every envelope.
    fn copy(
        &mut self,
        net: &mut Net,
        node: usize,
        peer: PeerId,
        mut envelopes: Vec<Envelope>,
        now: Instant,
    ) -> bool {
        let target = self.index[&peer];
        if !net.alive[target] {
            return false;
        }
        self.handoff_copies += envelopes.len();
        let mut all = true;
        while !envelopes.is_empty() {
            let rest = envelopes.split_off(envelopes.len().min(DEPOSIT_BATCH));
            let chunk = std::mem::replace(&mut envelopes, rest);
            let n = chunk.len();
            let request = MailboxRequest::Deposit(chunk);
            all &= matches!(
                self.request(net, node, target, request, now),
                Some(MailboxResponse::Deposited(r)) if r.len() == n && r.iter().all(Option::is_none)
            );
        }
        all
    }
}
