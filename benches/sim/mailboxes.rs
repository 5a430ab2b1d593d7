//! Offline delivery under churn: senders deposit with the holders roost's
//! placement picks and count roost's quorum (`node::mailbox::{holders,
//! quorum}`), and retry per roost's outbox (`node::outbox::Outbox`, its
//! timers rounded up to the next step: the rechecks of a parked message
//! take a step each, so the first deposit again comes 45 min after the
//! deposit at 5 min steps, against about 35 min in roost); every
//! holder is roost's holder machine and a returning recipient fetches with
//! roost's fetcher machines (`holding.rs`), over the modelled network.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use roost::backoff::Jitter;
use roost::node::mailbox::{holders, quorum};
use roost::node::outbox::Outbox;
use roost::wire::mailbox::mailbox_key;
use roost::wire::message::{Envelope, MessageId};
use serde_json::{Value, json};

use super::holding::Mailboxes;
use super::{Net, QUORUM, R, key_of_bytes};

/// One message: who sends it to whom, sealed as it travels.
struct Item {
    sender: usize,
    recipient: usize,
    envelope: Envelope,
}

/// What the run counts.
#[derive(Default)]
struct Counts {
    /// Deposit requests senders made (to live holders or not).
    deposits: usize,
    /// Direct rechecks of parked messages, which miss the away recipient.
    rechecks: usize,
    /// Messages stored with a quorum at their first attempt.
    stored_first: usize,
    /// Nodes that left for good.
    gone: usize,
}

/// `messages` messages between distinct people: recipients are away (not
/// gone), senders live; ids from the message's index, so unique and the
/// same in every run.
fn pick(net: &mut Net, messages: usize) -> (BTreeMap<MessageId, Item>, BTreeSet<usize>) {
    let n0 = net.peers.len();
    let mut msgs = BTreeMap::new();
    let (mut away, mut senders) = (BTreeSet::new(), BTreeSet::new());
    while msgs.len() < messages {
        let (s, r) = (net.rng.below(n0), net.rng.below(n0));
        // Senders and recipients are different people.
        if s == r || away.contains(&s) || senders.contains(&r) || !net.alive[s] {
            continue;
        }
        away.insert(r);
        senders.insert(s);
        let mut id = [0u8; 16];
        id[8..].copy_from_slice(&(msgs.len() as u64).to_be_bytes());
        let envelope = Envelope {
            id: MessageId(id),
            to: net.peers[r].to_bytes(),
            from: net.peers[s].to_bytes(),
            nonce: Default::default(),
            sealed: vec![0; 64],
        };
        let item = Item {
            sender: s,
            recipient: r,
            envelope,
        };
        msgs.insert(MessageId(id), item);
    }
    (msgs, away)
}

/// Every sender's outbox, its messages enqueued at `t0`.
fn outboxes(net: &Net, msgs: &BTreeMap<MessageId, Item>, t0: Instant) -> BTreeMap<usize, Outbox> {
    let mut outboxes: BTreeMap<usize, Outbox> = BTreeMap::new();
    for (id, it) in msgs {
        outboxes
            .entry(it.sender)
            // Seeded, so the retries' jitter is the same every run.
            .or_insert_with(|| Outbox::with_jitter(Jitter::seeded(it.sender as u64)))
            .enqueue(*id, net.peers[it.recipient], t0);
    }
    outboxes
}

/// Live senders deposit whatever their outbox says is due at `now`: a
/// lookup of the mailbox key, a deposit with each of the R closest, then
/// parked on a quorum of "stored" or retried later.
fn deposit_due(
    net: &mut Net,
    boxes: &mut Mailboxes,
    outboxes: &mut BTreeMap<usize, Outbox>,
    msgs: &BTreeMap<MessageId, Item>,
    now: Instant,
    first: bool,
    counts: &mut Counts,
) {
    for (&s, outbox) in outboxes.iter_mut() {
        if !net.alive[s] {
            continue;
        }
        for (_, ids) in outbox.take_due(now) {
            // The recipient is away: a recheck of a parked message misses,
            // and only the others are deposited.
            let due = ids.len();
            let ids = outbox.missed(ids, now);
            counts.rechecks += due - ids.len();
            for id in ids {
                let it = &msgs[&id];
                let key = mailbox_key(&net.peers[it.recipient]);
                let l = net.lookup(s, &key_of_bytes(&key));
                let idx: BTreeMap<PeerId, usize> =
                    l.found.iter().map(|&i| (net.peers[i], i)).collect();
                let exclude = [net.peers[s], net.peers[it.recipient]];
                let chosen = holders(&key, idx.keys().copied(), &exclude, R);
                let mut ok = 0;
                for h in &chosen {
                    counts.deposits += 1;
                    if boxes.deposit(net, s, idx[h], it.envelope.clone(), now) {
                        ok += 1;
                    }
                }
                if !chosen.is_empty() && ok >= quorum(chosen.len(), QUORUM) {
                    outbox.parked(&[id], now);
                    counts.stored_first += usize::from(first);
                } else {
                    outbox.failed(&id, now);
                }
            }
        }
    }
}

/// `leaving` live nodes leave for good (never the away recipients, who
/// are not live), taking their machines and stores with them, and as many
/// new nodes join.
fn churn(net: &mut Net, boxes: &mut Mailboxes, away: &BTreeSet<usize>, leaving: usize) {
    let mut gone = 0;
    while gone < leaving {
        let i = net.rng.below(net.peers.len());
        if net.alive[i] && !away.contains(&i) {
            net.alive[i] = false;
            boxes.leave(i);
            gone += 1;
        }
    }
    for _ in 0..leaving {
        net.add();
    }
    boxes.learn(net, []);
}

/// The recipients come back at `now` and fetch their mailboxes: how many
/// messages they got, and how many of the rest had no copy left anywhere.
fn deliver(
    net: &mut Net,
    boxes: &mut Mailboxes,
    msgs: &BTreeMap<MessageId, Item>,
    away: &BTreeSet<usize>,
    now: Instant,
) -> (usize, usize) {
    for &r in away {
        net.alive[r] = true;
    }
    net.refresh();
    boxes.refreshed();
    let held = boxes.held_anywhere();
    let mut got = BTreeSet::new();
    for &r in away {
        got.extend(boxes.fetch_own(net, r, now).into_iter().map(|id| (r, id)));
    }
    let (mut delivered, mut lost_no_copy) = (0, 0);
    for (id, it) in msgs {
        if got.contains(&(it.recipient, *id)) {
            delivered += 1;
        } else if !held.contains(&(it.recipient, *id)) {
            lost_no_copy += 1;
        }
    }
    (delivered, lost_no_copy)
}

/// Offline delivery under churn: deposit, then `hours` of departures and
/// arrivals, then the recipients come back and fetch.
///
/// Time runs in steps of `every` (roost's mailbox poll, 5 min by default,
/// which is also each holder machine's periodic pass): at the start of
/// each step some nodes leave for good and as many join; senders retry
/// what their outbox says is due; then every holder machine runs the
/// timers it set within the step (its poll, the pass after a deposit
/// brought something new, its purge). Once an hour routing tables are
/// refreshed; lookups in between run on stale tables and time out on
/// departed nodes. The recipients come back one step after the last
/// departures.
pub fn offline_delivery(
    net: &mut Net,
    messages: usize,
    churn_fraction: f64,
    hours: usize,
    every: Duration,
) -> Value {
    let n0 = net.peers.len();
    let t0 = Instant::now(); // the simulated clock's origin
    let steps_per_hour = (3600 / every.as_secs().max(1)).max(1) as usize;
    let total_steps = hours * steps_per_hour;
    let (msgs, away) = pick(net, messages);
    for &r in &away {
        net.alive[r] = false;
    }
    let mut boxes = Mailboxes::new(t0, every);
    boxes.learn(net, away.iter().copied());
    let mut outboxes = outboxes(net, &msgs, t0);
    let mut counts = Counts::default();
    let leave_by =
        |k: usize| ((n0 as f64) * churn_fraction * k as f64 / total_steps as f64).round() as usize;
    for k in 0..=total_steps {
        let now = t0 + every * k as u32;
        if k > 0 {
            let leaving = leave_by(k) - leave_by(k - 1);
            churn(net, &mut boxes, &away, leaving);
            counts.gone += leaving;
            if k % steps_per_hour == 0 {
                // Newcomers enter routing tables.
                net.refresh();
                boxes.refreshed();
            }
        }
        deposit_due(
            net,
            &mut boxes,
            &mut outboxes,
            &msgs,
            now,
            k == 0,
            &mut counts,
        );
        boxes.run_until(net, now + every);
    }
    let copies = boxes.copies();
    let back = t0 + every * (total_steps as u32 + 1);
    let (delivered, lost_no_copy) = deliver(net, &mut boxes, &msgs, &away, back);
    json!({
        "experiment": "offline_delivery",
        "nodes": n0,
        "messages": messages,
        "churn_fraction_left": (counts.gone as f64 / n0 as f64 * 1000.0).round() / 1000.0,
        "hours": hours,
        "handoff_every_s": every.as_secs(),
        "stored_at_first_attempt": counts.stored_first,
        "delivered": delivered,
        "lost": messages - delivered,
        // Lost because no copy was left anywhere (the rest: copies
        // left on peers outside the recipient's lookup result).
        "lost_no_copy_left": lost_no_copy,
        "success_percent": (delivered as f64 / messages as f64 * 1e4).round() / 100.0,
        "deposit_rpcs": counts.deposits,
        "direct_rechecks": counts.rechecks,
        "handoff_copies": boxes.handoff_copies,
        "copies_left_at_end_per_message": (copies as f64 / messages as f64 * 100.0).round() / 100.0,
    })
}
