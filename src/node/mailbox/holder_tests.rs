//! The holder machine driven through time, with no store or network: the
//! tests play the holder task, answering each output by hand.

use super::*;
use crate::node::mailbox::placement::holders;
use crate::node::mailbox::react::REACT_EVERY;
use crate::wire::message::MessageId;

const POLL: Duration = Duration::from_secs(300);
const TTL: Duration = Duration::from_secs(7 * 24 * 3600);
const WALL: u64 = 1_000_000;

fn envelope(to: PeerId, from: PeerId, id: MessageId, fill: u8) -> Envelope {
    Envelope {
        id,
        to: to.to_bytes(),
        from: from.to_bytes(),
        nonce: [0; 24],
        sealed: vec![fill; 64],
    }
}

fn holder(me: PeerId, quotas: Quotas, t0: Instant) -> Holder {
    Holder::new(me, quotas, 3, TTL, POLL, t0)
}

/// Deposits `envs` from `peer`, the store finding each new when `fresh`
/// (`None`: the store fails); returns the answer and the items written.
fn deposit_with(
    h: &mut Holder,
    peer: PeerId,
    envs: Vec<Envelope>,
    now: Instant,
    fresh: impl FnOnce(usize) -> Option<Vec<bool>>,
) -> (Vec<Option<DepositReject>>, Vec<Admitted>) {
    let request = MailboxRequest::Deposit(envs);
    let batch = match h.handle(Input::Request { peer, request }, now, WALL).pop() {
        Some(Output::Encode { peer: p, envelopes }) if p == peer => encode_deposit(envelopes),
        other => panic!("unexpected {other:?}"),
    };
    let mut out = h.handle(Input::Encoded { peer, batch }, now, WALL);
    let (deposit, items) = match out.pop() {
        Some(Output::Hold { deposit, items }) => (deposit, items),
        Some(Output::Respond(MailboxResponse::Deposited(r))) => return (r, Vec::new()),
        other => panic!("unexpected {other:?}"),
    };
    let fresh = fresh(items.len());
    match h.handle(Input::Held { deposit, fresh }, now, WALL).pop() {
        Some(Output::Respond(MailboxResponse::Deposited(r))) => (r, items),
        other => panic!("unexpected {other:?}"),
    }
}

fn deposit(
    h: &mut Holder,
    peer: PeerId,
    envs: Vec<Envelope>,
    now: Instant,
) -> Vec<Option<DepositReject>> {
    deposit_with(h, peer, envs, now, |n| Some(vec![true; n])).0
}

fn reads(out: &[Output]) -> Vec<PeerId> {
    out.iter()
        .filter_map(|o| match o {
            Output::ReadHeld(r) => Some(*r),
            _ => None,
        })
        .collect()
}

fn sorted_pair(a: PeerId, b: PeerId) -> Vec<PeerId> {
    if a <= b { vec![a, b] } else { vec![b, a] }
}

fn purges(out: &[Output]) -> usize {
    out.iter()
        .filter(|o| matches!(o, Output::Purge { .. }))
        .count()
}

#[test]
fn a_deposit_is_answered_after_the_store_and_a_pass_follows_after_the_settle() {
    let t0 = Instant::now();
    let (me, jack, alice) = (PeerId::random(), PeerId::random(), PeerId::random());
    let mut h = holder(me, Quotas::default(), t0);
    assert_eq!(
        purges(&h.handle(Input::Tick, t0, WALL)),
        1,
        "a purge at start"
    );
    let env = envelope(jack, alice, MessageId::random(), 1);
    let (answer, written) = deposit_with(&mut h, alice, vec![env.clone()], t0, |n| {
        Some(vec![true; n])
    });
    assert_eq!(answer, vec![None]);
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].envelope, env);
    assert_eq!(
        written[0].encoding.hash,
        ItemHash::of(&env).unwrap(),
        "hashed once, before admission"
    );
    assert_eq!(written[0].item.expires_at, WALL + TTL.as_millis() as u64);
    assert_eq!(h.poll_timeout(), t0 + SETTLE);
    assert!(reads(&h.handle(Input::Tick, t0 + SETTLE / 2, WALL)).is_empty());
    assert_eq!(reads(&h.handle(Input::Tick, t0 + SETTLE, WALL)), vec![jack]);
    // The same bytes again: nothing new, no pass, and counted once.
    let (answer, _) = deposit_with(&mut h, alice, vec![env], t0, |n| Some(vec![false; n]));
    assert_eq!(answer, vec![None]);
    assert_eq!(h.poll_timeout(), t0 + POLL);
}

#[test]
fn what_the_store_could_not_write_is_refused_and_uncounted() {
    let t0 = Instant::now();
    let (jack, alice) = (PeerId::random(), PeerId::random());
    let quotas = Quotas {
        recipient_items: 1,
        ..Quotas::default()
    };
    let mut h = holder(PeerId::random(), quotas, t0);
    let env = |n| envelope(jack, alice, MessageId::random(), n);
    let (answer, _) = deposit_with(&mut h, alice, vec![env(1)], t0, |_| None);
    assert_eq!(answer, vec![Some(DepositReject::Unavailable)]);
    // The failed item no longer counts against Jack's quota of one.
    assert_eq!(deposit(&mut h, alice, vec![env(2)], t0), vec![None]);
    assert_eq!(
        deposit(&mut h, alice, vec![env(3)], t0),
        vec![Some(DepositReject::RecipientQuota)]
    );
    // An item released frees its place.
    let item = HeldItem {
        recipient: jack,
        depositor: alice,
        size: 64,
        expires_at: 0,
    };
    h.handle(Input::Removed(vec![item]), t0, WALL);
    assert_eq!(deposit(&mut h, alice, vec![env(4)], t0), vec![None]);
}

#[test]
fn purges_come_at_start_then_every_interval_and_polls_only_pass_over_what_is_held() {
    let t0 = Instant::now();
    let ttl = Duration::from_secs(60);
    let mut h = Holder::new(PeerId::random(), Quotas::default(), 3, ttl, POLL, t0);
    assert_eq!(purges(&h.handle(Input::Tick, t0, WALL)), 1);
    assert_eq!(
        h.poll_timeout(),
        t0 + ttl / 2,
        "TTL/2 when shorter than 10 min"
    );
    assert_eq!(purges(&h.handle(Input::Tick, t0 + ttl / 4, WALL)), 0);
    assert_eq!(purges(&h.handle(Input::Tick, t0 + ttl / 2, WALL)), 1);
    // A poll with nothing held starts no pass.
    let out = h.handle(Input::Tick, t0 + POLL, WALL);
    assert!(reads(&out).is_empty());
    let (jack, alice) = (PeerId::random(), PeerId::random());
    h.handle(
        Input::Loaded(vec![HeldItem {
            recipient: jack,
            depositor: alice,
            size: 10,
            expires_at: 0,
        }]),
        t0,
        WALL,
    );
    assert_eq!(
        reads(&h.handle(Input::Tick, t0 + POLL * 2, WALL)),
        vec![jack]
    );
}

#[test]
fn a_closer_newcomer_starts_a_pass_after_the_settle_and_at_most_every_react_every() {
    let t0 = Instant::now();
    let jack = PeerId::random();
    let key = mailbox_key(&jack);
    let top = holders(&key, (0..8).map(|_| PeerId::random()), &[], 8);
    let me = top[4];
    let mut h = holder(me, Quotas::default(), t0);
    h.handle(Input::Tick, t0, WALL);
    h.handle(
        Input::Loaded(vec![HeldItem {
            recipient: jack,
            depositor: top[7],
            size: 10,
            expires_at: 0,
        }]),
        t0,
        WALL,
    );
    // Farther out than us: cannot change who should hold it.
    h.handle(Input::NewPeer(top[6]), t0, WALL);
    assert_eq!(h.poll_timeout(), t0 + POLL);
    h.handle(Input::NewPeer(top[0]), t0, WALL);
    assert_eq!(reads(&h.handle(Input::Tick, t0 + SETTLE, WALL)), vec![jack]);
    // Another soon after: not before REACT_EVERY since the last pass.
    let t1 = t0 + Duration::from_secs(1);
    h.handle(Input::NewPeer(top[1]), t1, WALL);
    assert_eq!(h.poll_timeout(), t0 + SETTLE + REACT_EVERY + SETTLE);
    assert!(reads(&h.handle(Input::Tick, t1 + SETTLE, WALL)).is_empty());
    let due = h.poll_timeout();
    assert_eq!(reads(&h.handle(Input::Tick, due, WALL)), vec![jack]);
}

#[test]
fn a_closer_newcomer_starts_a_pass_only_for_the_mailboxes_it_is_closer_to() {
    let t0 = Instant::now();
    let (jack, jill) = (PeerId::random(), PeerId::random());
    let (jack_key, jill_key) = (mailbox_key(&jack), mailbox_key(&jill));
    let me = PeerId::random();
    // A peer closer than us to Jack's mailbox and farther from Jill's.
    let newcomer = std::iter::repeat_with(PeerId::random)
        .find(|p| outranks(&jack_key, p, &me) && !outranks(&jill_key, p, &me))
        .expect("such a peer is one in four");
    let mut h = holder(me, Quotas::default(), t0);
    h.handle(Input::Tick, t0, WALL);
    let held = |recipient| HeldItem {
        recipient,
        depositor: PeerId::random(),
        size: 10,
        expires_at: 0,
    };
    h.handle(Input::Loaded(vec![held(jack), held(jill)]), t0, WALL);
    h.handle(Input::NewPeer(newcomer), t0, WALL);
    assert_eq!(reads(&h.handle(Input::Tick, t0 + SETTLE, WALL)), vec![jack]);
    // The poll still passes over every mailbox held.
    let mut all = reads(&h.handle(Input::Tick, t0 + POLL, WALL));
    all.sort();
    assert_eq!(all, sorted_pair(jack, jill));
}

#[test]
fn a_deposit_starts_a_pass_only_for_the_mailboxes_it_added_to() {
    let t0 = Instant::now();
    let [me, jack, jill, alice] = std::array::from_fn(|_| PeerId::random());
    let mut h = holder(me, Quotas::default(), t0);
    h.handle(Input::Tick, t0, WALL);
    let for_jill = envelope(jill, alice, MessageId::random(), 1);
    deposit(&mut h, alice, vec![for_jill.clone()], t0);
    assert_eq!(reads(&h.handle(Input::Tick, t0 + SETTLE, WALL)), vec![jill]);
    // Something new for Jack: his mailbox's pass only, not Jill's again.
    let t1 = t0 + SETTLE * 2;
    deposit(
        &mut h,
        alice,
        vec![envelope(jack, alice, MessageId::random(), 2)],
        t1,
    );
    assert_eq!(reads(&h.handle(Input::Tick, t1 + SETTLE, WALL)), vec![jack]);
    // Bytes held already are nothing new: no pass.
    let (_, written) = deposit_with(&mut h, alice, vec![for_jill], t1, |n| Some(vec![false; n]));
    assert_eq!(written.len(), 1);
    assert_eq!(h.poll_timeout(), t0 + POLL);
    // The poll still passes over every mailbox held.
    let mut all = reads(&h.handle(Input::Tick, t0 + POLL, WALL));
    all.sort();
    assert_eq!(all, sorted_pair(jack, jill));
}

/// A target of a pass and what it got.
type Copied = (PeerId, Vec<Envelope>);

/// Runs a pass for `recipient` over `items` with `found` as the lookup's
/// answer and `confirms` deciding each target's answer; returns the
/// targets with what each got, and the release if any.
fn pass(
    h: &mut Holder,
    recipient: PeerId,
    items: Vec<(ItemHash, Envelope)>,
    found: Vec<PeerId>,
    confirms: impl Fn(&PeerId) -> bool,
    now: Instant,
) -> (Vec<Copied>, Option<Vec<(MessageId, ItemHash)>>) {
    let out = h.handle(Input::HeldFor { recipient, items }, now, WALL);
    let Some(Output::Lookup { pass, key }) = out.into_iter().next() else {
        panic!("no lookup");
    };
    assert_eq!(key, mailbox_key(&recipient));
    let mut copies = Vec::new();
    let mut release = None;
    let mut todo = h.handle(Input::Found { pass, peers: found }, now, WALL);
    while let Some(o) = todo.pop() {
        match o {
            Output::Copy {
                pass,
                peer,
                envelopes,
            } => {
                copies.push((peer, envelopes));
                let confirmed = confirms(&peer);
                todo.extend(h.handle(
                    Input::Copied {
                        pass,
                        peer,
                        confirmed,
                    },
                    now,
                    WALL,
                ));
            }
            Output::ReleaseItems {
                recipient: r,
                items,
            } => {
                assert_eq!(r, recipient);
                release = Some(items);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    copies.sort_by_key(|(p, _)| *p);
    (copies, release)
}

fn entries(envs: &[Envelope]) -> Vec<(ItemHash, Envelope)> {
    envs.iter()
        .map(|e| (ItemHash::of(e).unwrap(), e.clone()))
        .collect()
}

#[test]
fn an_outranked_holder_hands_on_and_lets_go_only_once_every_target_confirmed() {
    let t0 = Instant::now();
    let (jack, alice) = (PeerId::random(), PeerId::random());
    let key = mailbox_key(&jack);
    let top = holders(&key, (0..6).map(|_| PeerId::random()), &[], 6);
    let me = top[4];
    let mut h = holder(me, Quotas::default(), t0);
    let envs: Vec<Envelope> = (1..=2)
        .map(|n| envelope(jack, alice, MessageId::random(), n))
        .collect();
    assert_eq!(deposit(&mut h, alice, envs.clone(), t0), vec![None, None]);

    // top[2] does not confirm: we keep ours.
    let (copies, release) = pass(
        &mut h,
        jack,
        entries(&envs),
        top.clone(),
        |p| *p != top[2],
        t0,
    );
    let mut want = top[..3].to_vec();
    want.sort();
    assert_eq!(copies.iter().map(|(p, _)| *p).collect::<Vec<_>>(), want);
    assert!(copies.iter().all(|(_, e)| *e == envs));
    assert_eq!(release, None);

    // The next pass sends only to top[2], and lets go once it confirms.
    let (copies, release) = pass(&mut h, jack, entries(&envs), top.clone(), |_| true, t0);
    assert_eq!(copies, vec![(top[2], envs.clone())]);
    let release = release.expect("let go");
    assert_eq!(release.len(), 2);
    assert!(
        release
            .iter()
            .zip(&envs)
            .all(|((id, hash), e)| *id == e.id && Some(*hash) == ItemHash::of(e))
    );

    // A lookup that found nobody ends the pass with nothing done.
    let out = h.handle(
        Input::HeldFor {
            recipient: jack,
            items: entries(&envs),
        },
        t0,
        WALL,
    );
    let Some(Output::Lookup { pass, .. }) = out.into_iter().next() else {
        panic!("no lookup");
    };
    assert!(
        h.handle(
            Input::Found {
                pass,
                peers: Vec::new()
            },
            t0,
            WALL
        )
        .is_empty()
    );
}

#[test]
fn only_the_recipient_fetches_and_acks_and_an_ack_is_capped() {
    let t0 = Instant::now();
    let (jack, mallory) = (PeerId::random(), PeerId::random());
    let mut h = holder(PeerId::random(), Quotas::default(), t0);
    let ask = |h: &mut Holder, peer: PeerId, request| {
        h.handle(Input::Request { peer, request }, t0, WALL)
    };
    let fetch = MailboxRequest::Fetch {
        recipient: jack.to_bytes(),
        cursor: 7,
    };
    let out = ask(&mut h, mallory, fetch.clone());
    assert!(
        matches!(out[..], [Output::Respond(MailboxResponse::Denied)]),
        "{out:?}"
    );
    let out = ask(&mut h, jack, fetch);
    assert!(
        matches!(out[..], [Output::Page { recipient, cursor: 7 }] if recipient == jack),
        "{out:?}"
    );
    let ids: Vec<MessageId> = (0..MAX_ACK_IDS + 5).map(|_| MessageId::random()).collect();
    let ack = MailboxRequest::Ack {
        recipient: jack.to_bytes(),
        ids: ids.clone(),
    };
    let out = ask(&mut h, mallory, ack.clone());
    assert!(
        matches!(out[..], [Output::Respond(MailboxResponse::Denied)]),
        "{out:?}"
    );
    match &ask(&mut h, jack, ack)[..] {
        [
            Output::Release {
                recipient,
                ids: asked,
            },
        ] => {
            assert_eq!(*recipient, jack);
            assert_eq!(asked[..], ids[..MAX_ACK_IDS]);
        }
        other => panic!("unexpected {other:?}"),
    }
    let out = h.handle(Input::Acked(None), t0, WALL);
    assert!(matches!(
        out[..],
        [Output::Respond(MailboxResponse::Acked { removed: 0 })]
    ));
}

#[test]
fn junk_under_a_real_id_does_not_count_as_holding_the_real_item() {
    let t0 = Instant::now();
    let (jack, alice) = (PeerId::random(), PeerId::random());
    let key = mailbox_key(&jack);
    // Mallory is the closest to Jack's mailbox; we are outranked by three
    // peers, so we hand on and would let go.
    let top = holders(&key, (0..6).map(|_| PeerId::random()), &[], 6);
    let (mallory, me) = (top[0], top[4]);
    let mut h = holder(me, Quotas::default(), t0);
    let id = MessageId::random();
    let real = envelope(jack, alice, id, 1);
    let junk = envelope(jack, alice, id, 0xEE);
    assert_eq!(deposit(&mut h, alice, vec![real.clone()], t0), vec![None]);
    // Mallory "hands on" other bytes under the real id.
    assert_eq!(deposit(&mut h, mallory, vec![junk.clone()], t0), vec![None]);

    // Mallory is not taken to hold the real item: it gets it, and while
    // it does not confirm, we keep ours.
    let items = entries(&[real.clone(), junk]);
    let (copies, release) = pass(
        &mut h,
        jack,
        items.clone(),
        top.clone(),
        |p| *p != mallory,
        t0,
    );
    let to_mallory = copies
        .iter()
        .find(|(p, _)| *p == mallory)
        .map(|(_, e)| e.clone());
    assert_eq!(
        to_mallory,
        Some(vec![real]),
        "only what it is not known to hold"
    );
    assert_eq!(release, None, "let go of the real item on junk");
    let (_, release) = pass(&mut h, jack, items, top, |_| true, t0);
    assert!(release.is_some());
}

#[test]
fn what_peers_hold_is_forgotten_once_nothing_is_left() {
    let t0 = Instant::now();
    let (jack, jill, alice, coholder) = (
        PeerId::random(),
        PeerId::random(),
        PeerId::random(),
        PeerId::random(),
    );
    let mut h = holder(PeerId::random(), Quotas::default(), t0);
    let for_jack = envelope(jack, alice, MessageId::random(), 1);
    let for_jill = envelope(jill, alice, MessageId::random(), 2);
    deposit(&mut h, coholder, vec![for_jack.clone(), for_jill], t0);
    assert_eq!(h.tracked(), 2);
    // A pass over Jack's mailbox is under way when Jack acks everything.
    let out = h.handle(
        Input::HeldFor {
            recipient: jack,
            items: entries(&[for_jack]),
        },
        t0,
        WALL,
    );
    let Some(Output::Lookup { pass, .. }) = out.into_iter().next() else {
        panic!("no lookup");
    };
    let item = |r| HeldItem {
        recipient: r,
        depositor: coholder,
        size: 64,
        expires_at: 1,
    };
    h.handle(Input::Acked(Some(vec![item(jack)])), t0, WALL);
    assert_eq!(h.tracked(), 1, "Jack's entry goes, Jill's stays");
    // The pass that ends after the items went records nothing.
    let peers = vec![coholder, PeerId::random()];
    let mut todo = h.handle(Input::Found { pass, peers }, t0, WALL);
    while let Some(o) = todo.pop() {
        if let Output::Copy { pass, peer, .. } = o {
            todo.extend(h.handle(
                Input::Copied {
                    pass,
                    peer,
                    confirmed: true,
                },
                t0,
                WALL,
            ));
        }
    }
    assert_eq!(h.tracked(), 1);
    h.handle(Input::Removed(vec![item(jill)]), t0, WALL);
    assert_eq!(h.tracked(), 0);
}

#[test]
fn oversized_and_misaddressed_envelopes_are_refused_by_kind() {
    let t0 = Instant::now();
    let (me, jack, alice) = (PeerId::random(), PeerId::random(), PeerId::random());
    let mut h = holder(me, Quotas::default(), t0);
    let mut big = envelope(jack, alice, MessageId::random(), 1);
    big.sealed = vec![1; MAX_HELD_ENVELOPE];
    let to_me = envelope(me, alice, MessageId::random(), 2);
    let to_depositor = envelope(alice, jack, MessageId::random(), 2);
    let ok = envelope(jack, alice, MessageId::random(), 3);
    let (answer, written) = deposit_with(
        &mut h,
        alice,
        vec![big, to_me, to_depositor, ok.clone()],
        t0,
        |n| Some(vec![true; n]),
    );
    assert_eq!(
        answer,
        vec![
            Some(DepositReject::TooLarge),
            Some(DepositReject::NotAcceptable),
            Some(DepositReject::NotAcceptable),
            None
        ]
    );
    assert_eq!(
        written.into_iter().map(|a| a.envelope).collect::<Vec<_>>(),
        vec![ok]
    );
}
