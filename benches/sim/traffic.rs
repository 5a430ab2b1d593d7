//! What one node of the network sends in an hour, from roost's own state
//! machines on the simulated clock.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use libp2p::PeerId;
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

/// Presence and background traffic of one live node of `net` over an hour,
/// from roost's own state machines on the simulated clock: its presence
/// publisher and watcher and those of its `buddies` (who change state as
/// often as it does), its mailbox poll with the hand-off pass over the
/// `held` mailboxes it holds for others (every 5 min), its locator
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
    const POLL_S: u32 = 300;
    const REFRESH_S: u32 = 3600;
    let t0 = Instant::now(); // the simulated clock's origin
    let live = |net: &mut Net, not: &[usize]| loop {
        let i = net.rng.below(net.peers.len());
        if net.alive[i] && !not.contains(&i) {
            break i;
        }
    };
    let me = live(net, &[]);
    let mut others = vec![me];
    for _ in 0..held {
        let o = live(net, &others);
        others.push(o);
    }
    others.remove(0);
    let me_id = net.peers[me];
    let mut rng = Rng::new(99);
    let ids: Vec<PeerId> = (0..buddies).map(|_| peer(&mut rng)).collect();
    let mut publisher = Publisher::new(Own::default(), None, t0);
    let mut locator = OwnLocator::start(net, me, t0);
    let mut watcher = Watcher::new();
    // Each buddy's publisher and its watcher of us.
    let mut theirs: Vec<(Publisher, Watcher)> = ids
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
    let mut sent = Tally::default();
    let mut now = t0;
    for s in 1..=3600u32 {
        now += Duration::from_secs(1);
        // We renew our subscriptions; each buddy answers.
        for p in watcher.due(now) {
            sent.subscribe_renewals += 1;
            let b = ids.iter().position(|x| *x == p).expect("a buddy");
            let info = theirs[b]
                .0
                .subscribe(me_id, Permission::Allowed, SUBSCRIPTION, now)
                .expect("allowed");
            watcher.subscribed(&p, info, now);
        }
        // Our buddies renew theirs to us; we answer each.
        for (b, (_, w)) in theirs.iter_mut().enumerate() {
            for _ in w.due(now) {
                let info = publisher
                    .subscribe(ids[b], Permission::Allowed, SUBSCRIPTION, now)
                    .expect("allowed");
                sent.subscribe_answers += 1;
                w.subscribed(&me_id, info, now);
            }
        }
        let every = 3600 / changes_per_hour.max(1);
        if changes_per_hour > 0 && s.is_multiple_of(every) {
            let status = if (s / every).is_multiple_of(2) {
                OwnStatus::Online
            } else {
                OwnStatus::Away
            };
            let own = Own {
                status,
                ..Own::default()
            };
            publisher.set_own(own.clone(), now);
            sent.notifies += publisher.notifications(|_| Permission::Allowed).len();
            for (p, _) in theirs.iter_mut() {
                p.set_own(own.clone(), now);
                sent.notifies_received += p
                    .notifications(|_| Permission::Allowed)
                    .iter()
                    .filter(|(to, _)| *to == me_id)
                    .count();
            }
        }
        publisher.tick(now);
        for (p, _) in theirs.iter_mut() {
            p.tick(now);
        }
        if s.is_multiple_of(POLL_S) {
            // The mailbox poll: a lookup of our mailbox key, then a fetch
            // from each peer roost's poll picks among those found.
            let key = mailbox_key(&me_id);
            let l = net.lookup(me, &key_of_bytes(&key));
            sent.mailbox_poll += l.msgs as usize;
            let found: Vec<PeerId> = l.found.iter().map(|&i| net.peers[i]).collect();
            sent.mailbox_poll += holders(&key, found, &[me_id], R.max(FETCH_FROM)).len();
            // The hand-off pass: a lookup per mailbox held for others.
            for &r in &others {
                let key = mailbox_key(&net.peers[r]);
                sent.handoff += net.lookup(me, &key_of_bytes(&key)).msgs as usize;
            }
        }
        sent.locator += locator.tick(net, now);
        if s.is_multiple_of(REFRESH_S) {
            sent.refresh += bucket_refresh(net, me);
        }
    }
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
        "handoff_pass_rpcs": sent.handoff,
        "locator_republish_rpcs": sent.locator,
        "dht_refresh_rpcs": sent.refresh,
        "total_sent": total,
    })
}
