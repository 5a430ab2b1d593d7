//! Offline delivery under churn: roost's mailbox placement, quorum and
//! hand-off (`node::mailbox`) and the senders' outbox
//! (`node::outbox::Outbox`) over the modelled network.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use roost::backoff::Jitter;
use roost::node::mailbox::{Handed, handoff, holders, quorum};
use roost::node::outbox::Outbox;
use roost::wire::mailbox::mailbox_key;
use roost::wire::message::MessageId;
use serde_json::{Value, json};

use super::{Net, QUORUM, R, key_of_bytes};

struct Item {
    id: MessageId,
    recipient: usize,
}

/// Who holds which copies: `held[node]` = set of (recipient, message id).
type Held = BTreeMap<usize, BTreeSet<(usize, MessageId)>>;

/// Per mailbox, the R closest peers its last deposit or hand-off lookup
/// found, and the reverse. Between routing-table refreshes a holder's
/// periodic lookup can only come out differently when one of these has
/// left, so the holders of exactly those mailboxes run their pass in a
/// step: the outcome of roost's full pass every step, at a fraction of
/// the lookups.
#[derive(Default)]
struct Tops {
    of: BTreeMap<usize, Vec<usize>>,
    watching: BTreeMap<usize, BTreeSet<usize>>,
}

impl Tops {
    fn set(&mut self, recipient: usize, top: Vec<usize>) {
        for old in self.of.get(&recipient).into_iter().flatten() {
            if let Some(w) = self.watching.get_mut(old) {
                w.remove(&recipient);
            }
        }
        for &t in &top {
            self.watching.entry(t).or_default().insert(recipient);
        }
        self.of.insert(recipient, top);
    }

    /// Mailboxes whose top R included `node`.
    fn left(&mut self, node: usize) -> BTreeSet<usize> {
        self.watching.remove(&node).unwrap_or_default()
    }
}

/// Holders run roost's hand-off for the given (holder, recipient) pairs:
/// a lookup of the mailbox key on their (possibly stale) routing table,
/// copies to the current R closest they have not handed to yet, and letting
/// go once outranked and all confirmed. Returns the copies made.
fn hand_off(
    net: &mut Net,
    held: &mut Held,
    handed: &mut BTreeMap<(usize, usize), Handed<MessageId>>,
    tops: &mut Tops,
    pairs: Vec<(usize, usize)>,
) -> usize {
    let mut copies = 0;
    for (h, r) in pairs {
        if !net.alive[h] {
            continue;
        }
        let ids: Vec<MessageId> = held
            .get(&h)
            .map(|s| {
                s.iter()
                    .filter(|(rr, _)| *rr == r)
                    .map(|(_, id)| *id)
                    .collect()
            })
            .unwrap_or_default();
        if ids.is_empty() {
            continue;
        }
        let key = mailbox_key(&net.peers[r]);
        let l = net.lookup(h, &key_of_bytes(&key));
        let idx: BTreeMap<PeerId, usize> = l.found.iter().map(|&i| (net.peers[i], i)).collect();
        let top = holders(
            &key,
            l.found.iter().map(|&i| net.peers[i]),
            &[net.peers[r]],
            R,
        );
        tops.set(r, top.iter().map(|p| idx[p]).collect());
        let record = handed.entry((h, r)).or_default();
        let plan = handoff(
            &key,
            l.found.iter().map(|&i| net.peers[i]),
            net.peers[h],
            net.peers[r],
            R,
            &record.holding(&ids),
        );
        let mut confirmed = Vec::new();
        for t in &plan.targets {
            let ti = idx[t];
            if net.alive[ti] {
                for id in &ids {
                    held.entry(ti).or_default().insert((r, *id));
                    copies += 1;
                }
                confirmed.push(*t);
            }
        }
        record.ranked(&plan.ranking);
        record.gave(&confirmed, &ids);
        if !plan.keep
            && confirmed.len() == plan.targets.len()
            && let Some(set) = held.get_mut(&h)
        {
            set.retain(|(rr, _)| *rr != r);
        }
    }
    copies
}

/// Offline delivery under churn: deposit, then `hours` of departures and
/// arrivals, then the recipients come back and fetch.
///
/// Time runs in steps of `every` (roost's periodic hand-off, 5 min by
/// default): in each step some nodes leave for good and as many join;
/// the remaining holders of any mailbox that lost a holder hand off (as
/// their periodic pass would find); senders retry what their outbox says is
/// due. Once an hour, routing tables are refreshed and every holder runs a
/// full pass (reacting to the newcomers). Lookups in between run on stale
/// tables and time out on departed nodes.
pub fn offline_delivery(
    net: &mut Net,
    messages: usize,
    churn: f64,
    hours: usize,
    every: Duration,
) -> Value {
    let n0 = net.peers.len();
    let t0 = Instant::now(); // the simulated clock's origin
    let steps_per_hour = (3600 / every.as_secs().max(1)).max(1) as usize;
    let total_steps = hours * steps_per_hour;
    // Recipients go offline (they are away, not gone); senders are live.
    let mut msgs = Vec::new();
    let (mut away, mut senders) = (BTreeSet::new(), BTreeSet::new());
    while msgs.len() < messages {
        let (s, r) = (net.rng.below(n0), net.rng.below(n0));
        // Senders and recipients are different people.
        if s == r || away.contains(&s) || senders.contains(&r) || !net.alive[s] {
            continue;
        }
        away.insert(r);
        senders.insert(s);
        // Ids from the message's index: unique, and the same in every run.
        let mut id = [0u8; 16];
        id[8..].copy_from_slice(&(msgs.len() as u64).to_be_bytes());
        msgs.push((
            s,
            Item {
                id: MessageId(id),
                recipient: r,
            },
        ));
    }
    for &r in &away {
        net.alive[r] = false;
    }
    let mut held: Held = BTreeMap::new();
    let mut outboxes: BTreeMap<usize, Outbox> = BTreeMap::new();
    let mut to_of: BTreeMap<MessageId, (usize, usize)> = BTreeMap::new();
    for (s, it) in &msgs {
        outboxes
            .entry(*s)
            // Seeded, so the retries' jitter is the same every run.
            .or_insert_with(|| Outbox::with_jitter(Jitter::seeded(*s as u64)))
            .enqueue(it.id, net.peers[it.recipient], t0);
        to_of.insert(it.id, (*s, it.recipient));
    }
    let mut handed: BTreeMap<(usize, usize), Handed<MessageId>> = BTreeMap::new();
    let mut tops = Tops::default();
    let (mut deposits, mut handoff_copies, mut stored_first) = (0usize, 0usize, 0usize);
    let mut gone_total = 0usize;
    let leave_by =
        |k: usize| ((n0 as f64) * churn * k as f64 / total_steps as f64).round() as usize;
    for k in 0..=total_steps {
        let now = t0 + every * k as u32;
        // Senders: whatever their outbox says is due is (re)deposited.
        let senders: Vec<usize> = outboxes.keys().copied().collect();
        for s in senders {
            if !net.alive[s] {
                continue;
            }
            let due = outboxes
                .get_mut(&s)
                .map(|o| o.take_due(now))
                .unwrap_or_default();
            for (_, ids) in due {
                for id in ids {
                    let (_, r) = to_of[&id];
                    let key = mailbox_key(&net.peers[r]);
                    let l = net.lookup(s, &key_of_bytes(&key));
                    let cands: Vec<PeerId> = l.found.iter().map(|&i| net.peers[i]).collect();
                    let chosen = holders(&key, cands, &[net.peers[s], net.peers[r]], R);
                    let idx: BTreeMap<PeerId, usize> =
                        l.found.iter().map(|&i| (net.peers[i], i)).collect();
                    tops.set(r, chosen.iter().map(|h| idx[h]).collect());
                    let mut ok = 0;
                    for h in &chosen {
                        let hi = idx[h];
                        deposits += 1;
                        if net.alive[hi] {
                            held.entry(hi).or_default().insert((r, id));
                            ok += 1;
                        }
                    }
                    let o = outboxes.get_mut(&s).expect("sender's outbox");
                    if !chosen.is_empty() && ok >= quorum(chosen.len(), QUORUM) {
                        o.parked(&id, now);
                        if k == 0 {
                            stored_first += 1;
                        }
                    } else {
                        o.failed(&id, now);
                    }
                }
            }
        }
        if k == total_steps {
            break;
        }
        // Churn: some live nodes leave for good (never the away recipients,
        // who are not live), the same number of new nodes join.
        let leaving = leave_by(k + 1) - leave_by(k);
        let mut affected = BTreeSet::new();
        let mut gone = 0;
        while gone < leaving {
            let i = net.rng.below(net.peers.len());
            if net.alive[i] && !away.contains(&i) {
                net.alive[i] = false;
                if let Some(items) = held.remove(&i) {
                    affected.extend(items.into_iter().map(|(r, _)| r));
                }
                affected.extend(tops.left(i));
                gone += 1;
            }
        }
        gone_total += gone;
        for _ in 0..leaving {
            net.add();
        }
        let hourly = (k + 1) % steps_per_hour == 0;
        if hourly {
            // Newcomers enter routing tables; every holder reacts.
            net.refresh();
        }
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        for (&h, items) in &held {
            let mut rs: Vec<usize> = items
                .iter()
                .map(|(r, _)| *r)
                .filter(|r| hourly || affected.contains(r))
                .collect();
            rs.sort_unstable();
            rs.dedup();
            pairs.extend(rs.into_iter().map(|r| (h, r)));
        }
        handoff_copies += hand_off(net, &mut held, &mut handed, &mut tops, pairs);
    }
    // Recipients come back and fetch from their mailbox's neighbourhood.
    for &r in &away {
        net.alive[r] = true;
    }
    net.refresh();
    let (mut delivered, mut lost_no_copy) = (0, 0);
    for (_, it) in &msgs {
        let r = it.recipient;
        let key = mailbox_key(&net.peers[r]);
        let l = net.lookup(r, &key_of_bytes(&key));
        if l.found
            .iter()
            .any(|f| held.get(f).is_some_and(|s| s.contains(&(r, it.id))))
        {
            delivered += 1;
        } else if !held.values().any(|s| s.contains(&(r, it.id))) {
            lost_no_copy += 1;
        }
    }
    let copies: usize = held.values().map(|s| s.len()).sum();
    json!({
        "experiment": "offline_delivery",
        "nodes": n0,
        "messages": messages,
        "churn_fraction_left": (gone_total as f64 / n0 as f64 * 1000.0).round() / 1000.0,
        "hours": hours,
        "handoff_every_s": every.as_secs(),
        "stored_at_first_attempt": stored_first,
        "delivered": delivered,
        "lost": messages - delivered,
        // Lost because no copy was left anywhere (the rest: copies
        // left on peers outside the recipient's lookup result).
        "lost_no_copy_left": lost_no_copy,
        "success_percent": (delivered as f64 / messages as f64 * 1e4).round() / 100.0,
        "deposit_rpcs": deposits,
        "handoff_copies": handoff_copies,
        "copies_left_at_end_per_message": (copies as f64 / messages as f64 * 100.0).round() / 100.0,
    })
}
