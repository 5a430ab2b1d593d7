//! What one node of the network sends in an hour, from roost's own state
//! machines on the simulated clock.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use roost::config::MailboxConfig;
use roost::node::mailbox::fetcher::{self, Ask, Fetcher};
use roost::node::mailbox::holders;
use roost::node::presence::{Own, OwnStatus, Permission, Publisher, SUBSCRIPTION, Watcher};
use roost::wire::mailbox::{FETCH_FROM, mailbox_key};
use serde_json::{Value, json};

use super::locators::OwnLocator;
use super::{Net, R, Rng, key_of_bytes, peer, prefix_range, xor};

/// What one node sends in a simulated hour, counted where it is sent.
#[derive(Default)]
struct Tally {
    subscribe_renewals: usize,
    subscribe_answers: usize,
    notifies: usize,
    notifies_received: usize,
    mailbox_poll: usize,
    mailbox_fetches: usize,
    mailbox_lookups: usize,
    handoff: usize,
    locator: usize,
    refresh: usize,
}

/// Kademlia's bucket refresh of node `me`, as libp2p's periodic bootstrap
/// runs it: a lookup of its own key, then one for a random key in every
/// non-empty bucket of its routing table. Returns the RPCs sent.
fn bucket_refresh(net: &mut Net, me: usize) -> usize {
    let own = net.keys[me];
    let buckets: BTreeSet<usize> = net.tables[me]
        .iter()
        .map(|&x| {
            let d = xor(&own, &net.keys[x as usize]);
            d.iter()
                .position(|&b| b != 0)
                .map_or(256, |i| i * 8 + d[i].leading_zeros() as usize)
        })
        .collect();
    let mut rpcs = net.lookup(me, &own).msgs as usize;
    for b in buckets {
        let (lo, hi) = prefix_range(&own, b, true);
        let mut target = lo;
        for (t, (l, h)) in target.iter_mut().zip(lo.iter().zip(&hi)) {
            *t = l | (net.rng.next() as u8 & (l ^ h));
        }
        rpcs += net.lookup(me, &target).msgs as usize;
    }
    rpcs
}

/// `count` distinct live nodes of `net`, picked at random.
fn live_nodes(net: &mut Net, count: usize) -> Vec<usize> {
    let mut picked: Vec<usize> = Vec::with_capacity(count);
    while picked.len() < count {
        let i = net.rng.below(net.peers.len());
        if net.alive[i] && !picked.contains(&i) {
            picked.push(i);
        }
    }
    picked
}

/// One node and its buddies over the simulated hour: their presence
/// machines, its locator, the mailboxes it holds, and what it sent.
struct Hour {
    me: usize,
    me_id: PeerId,
    /// The recipients whose mailboxes it holds.
    others: Vec<usize>,
    ids: Vec<PeerId>,
    publisher: Publisher,
    locator: OwnLocator,
    watcher: Watcher,
    /// Each buddy's publisher and its watcher of us.
    theirs: Vec<(Publisher, Watcher)>,
    /// When to fetch our own mailbox and whom to ask: roost's machine, on
    /// a clock an hour ahead (see [`Hour::fetch_due`]).
    fetcher: Fetcher,
    sent: Tally,
}

/// How far the fetcher's clock runs ahead of the hour counted: the hour
/// before it, uncounted, brings the machine to its settled pace (its first
/// fetch a lookup, then polls that back off and ask the last lookup's
/// closest), as a node that has been up a while polls.
const FETCHER_AHEAD: Duration = Duration::from_secs(3600);

impl Hour {
    /// A random live node holding `held` others' mailboxes, with `buddies`
    /// buddies, every machine started at `t0`; its fetcher polls every
    /// `poll`.
    fn start(net: &mut Net, buddies: usize, held: usize, poll: Duration, t0: Instant) -> Self {
        let mut others = live_nodes(net, held + 1);
        let me = others.remove(0);
        let me_id = net.peers[me];
        let mut rng = Rng::new(99);
        let ids: Vec<PeerId> = (0..buddies).map(|_| peer(&mut rng)).collect();
        let publisher = Publisher::new(Own::default(), None, t0);
        let locator = OwnLocator::start(net, me, t0);
        let mut watcher = Watcher::new();
        let theirs = ids
            .iter()
            .map(|_| {
                let mut w = Watcher::new();
                w.add(me_id, t0);
                (Publisher::new(Own::default(), None, t0), w)
            })
            .collect();
        for p in &ids {
            watcher.add(*p, t0);
        }
        let fetcher = Fetcher::new(&mailbox_key(&me_id), poll, R, t0);
        Self {
            me,
            me_id,
            others,
            ids,
            publisher,
            locator,
            watcher,
            theirs,
            fetcher,
            sent: Tally::default(),
        }
    }

    /// Subscriptions due at `now`: we renew ours and each buddy answers;
    /// our buddies renew theirs to us and we answer each.
    fn renew(&mut self, now: Instant) {
        for p in self.watcher.due(now) {
            self.sent.subscribe_renewals += 1;
            let b = self.ids.iter().position(|x| *x == p).expect("a buddy");
            let info = self.theirs[b]
                .0
                .subscribe(self.me_id, Permission::Allowed, SUBSCRIPTION, now)
                .expect("allowed");
            self.watcher.subscribed(&p, info, now);
        }
        for (b, (_, w)) in self.theirs.iter_mut().enumerate() {
            for _ in w.due(now) {
                let info = self
                    .publisher
                    .subscribe(self.ids[b], Permission::Allowed, SUBSCRIPTION, now)
                    .expect("allowed");
                self.sent.subscribe_answers += 1;
                w.subscribed(&self.me_id, info, now);
            }
        }
    }

    /// We and every buddy change state to `status` at `now`: the
    /// notifications we send, and those our buddies send us.
    fn change(&mut self, status: OwnStatus, now: Instant) {
        let own = Own {
            status,
            ..Own::default()
        };
        self.publisher.set_own(own.clone(), now);
        self.sent.notifies += self.publisher.notifications(|_| Permission::Allowed).len();
        for (p, _) in self.theirs.iter_mut() {
            p.set_own(own.clone(), now);
            self.sent.notifies_received += p
                .notifications(|_| Permission::Allowed)
                .iter()
                .filter(|(to, _)| *to == self.me_id)
                .count();
        }
    }

    /// Our mailbox fetches due by `at` on the fetcher's clock, as roost's
    /// `Fetcher` asks for them: a lookup of our mailbox key and a fetch
    /// from each peer `node::mailbox::holders` picks among those found, or
    /// a fetch from the holders it names without a lookup. No mail is
    /// found (a settled node's poll), so its interval backs off. Counted
    /// only if `count`.
    fn fetch_due(&mut self, net: &mut Net, at: Instant, count: bool) {
        let key = mailbox_key(&self.me_id);
        while self.fetcher.poll_timeout() <= at {
            let due = self.fetcher.poll_timeout();
            for out in self.fetcher.handle(fetcher::Input::Tick, due) {
                let fetcher::Output::Fetch(ask) = out else {
                    continue;
                };
                let (rpcs, asked) = match ask {
                    Ask::Holders(asked) => (0, asked),
                    Ask::Lookup(_) => {
                        let l = net.lookup(self.me, &key_of_bytes(&key));
                        let found = l.found.iter().map(|&i| net.peers[i]);
                        let asked = holders(&key, found, &[self.me_id], R.max(FETCH_FROM));
                        self.sent.mailbox_lookups += usize::from(count);
                        (l.msgs as usize, asked)
                    }
                };
                if count {
                    self.sent.mailbox_fetches += 1;
                    self.sent.mailbox_poll += rpcs + asked.len();
                }
                self.fetcher.handle(fetcher::Input::done(asked, &[]), due);
            }
        }
    }

    /// The hand-off pass of the holder's poll: a lookup per mailbox held
    /// for others.
    fn handoff_pass(&mut self, net: &mut Net) {
        for &r in &self.others {
            let key = mailbox_key(&net.peers[r]);
            self.sent.handoff += net.lookup(self.me, &key_of_bytes(&key)).msgs as usize;
        }
    }
}

/// Presence and background traffic of one live node of `net` over an hour,
/// from roost's own state machines on the simulated clock: its presence
/// publisher and watcher and those of its `buddies` (who change state as
/// often as it does), its mailbox fetches as roost's fetcher machine
/// asks for them, the holder's hand-off pass over the `held` mailboxes it
/// holds for others (every 5 min), its locator
/// republish (roost's locator machine: every 30 min, half the locator's
/// lifetime) and the hourly
/// bucket refresh, each lookup run on the model. Every figure is a count of
/// requests and answers as the simulation sends them.
pub fn per_node_traffic(
    net: &mut Net,
    buddies: usize,
    changes_per_hour: u32,
    held: usize,
) -> Value {
    const REFRESH_S: u32 = 3600;
    let t0 = Instant::now(); // the simulated clock's origin
    // The fetcher's poll backs off while it finds nothing; the holder's
    // pass runs at the configured poll.
    let poll = MailboxConfig::default().poll;
    let mut hour = Hour::start(net, buddies, held, poll, t0);
    hour.fetch_due(net, t0 + FETCHER_AHEAD, false);
    let poll_s = poll.as_secs();
    let mut now = t0;
    let every = 3600 / changes_per_hour.max(1);
    for s in 1..=3600u32 {
        now += Duration::from_secs(1);
        hour.renew(now);
        if changes_per_hour > 0 && s.is_multiple_of(every) {
            let status = if (s / every).is_multiple_of(2) {
                OwnStatus::Online
            } else {
                OwnStatus::Away
            };
            hour.change(status, now);
        }
        hour.publisher.tick(now);
        for (p, _) in hour.theirs.iter_mut() {
            p.tick(now);
        }
        hour.fetch_due(net, now + FETCHER_AHEAD, true);
        if u64::from(s).is_multiple_of(poll_s) {
            hour.handoff_pass(net);
        }
        hour.sent.locator += hour.locator.tick(net, now);
        if s.is_multiple_of(REFRESH_S) {
            hour.sent.refresh += bucket_refresh(net, hour.me);
        }
    }
    report(net, &hour.sent, buddies, changes_per_hour, held)
}

/// The hour's counts as one JSON record.
fn report(net: &Net, sent: &Tally, buddies: usize, changes_per_hour: u32, held: usize) -> Value {
    let total = sent.subscribe_renewals
        + sent.subscribe_answers
        + sent.notifies
        + sent.mailbox_poll
        + sent.handoff
        + sent.locator
        + sent.refresh;
    json!({
        "experiment": "per_node_per_hour",
        "nodes": net.alive.iter().filter(|a| **a).count(),
        "buddies": buddies,
        "presence_changes": changes_per_hour,
        "mailboxes_held": held,
        "subscribe_renewals_sent": sent.subscribe_renewals,
        "subscribe_answers_sent": sent.subscribe_answers,
        "notifies_sent": sent.notifies,
        "notifies_received": sent.notifies_received,
        "mailbox_poll_rpcs": sent.mailbox_poll,
        "mailbox_fetches": sent.mailbox_fetches,
        "mailbox_fetch_lookups": sent.mailbox_lookups,
        "handoff_pass_rpcs": sent.handoff,
        "locator_republish_rpcs": sent.locator,
        "dht_refresh_rpcs": sent.refresh,
        "total_sent": total,
    })
}
