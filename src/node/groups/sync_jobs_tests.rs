//! The catch-up's store jobs against real stores (no sockets): who is
//! answered, what the answer carries, and how it is filed.

use super::*;
use crate::node::groups::test_peer::{Peer, joined_group as group, peer};
use crate::wire::group::{Op, sign_message};

/// What `to` answers `from`'s question about `epoch` of `gid` (naming
/// what `from` has of it): the answer's bytes for `from`, or why it
/// refused.
fn answer_of(
    from: &Peer,
    to: &Peer,
    gid: &GroupId,
    epoch: u64,
) -> Result<Vec<Vec<u8>>, GroupError> {
    answer_at(from, to, gid, epoch, 10)
}

/// [`answer_of`] at time `now` (unix ms).
fn answer_at(
    from: &Peer,
    to: &Peer,
    gid: &GroupId,
    epoch: u64,
    now: u64,
) -> Result<Vec<Vec<u8>>, GroupError> {
    let taken = from.store.group_seen_in(gid, epoch).unwrap();
    let ask = crate::wire::encode(&GroupBody::SyncAsk {
        group_id: *gid,
        epoch,
        have: sync::have_of(taken.iter().map(|(s, n, _)| (s.as_slice(), *n)), 0),
    })
    .unwrap();
    let rows = to.store.outbox_len().unwrap();
    let answer = receive::take(&to.store, &to.ctx, &from.id(), &ask, now)
        .unwrap()
        .map(|t| {
            assert!(t.out.is_empty(), "an answer for the outbox");
            from.mine(&t.direct)
        });
    // For a direct link only: nothing to retry, nothing to deposit.
    assert_eq!(
        to.store.outbox_len().unwrap(),
        rows,
        "an answer written to the outbox"
    );
    answer
}

#[test]
fn a_member_catches_up_what_it_lacks_once_and_in_order() {
    let (alice, bob, carol) = (peer(), peer(), peer());
    let gid = group(&alice, &[&bob, &carol]);
    let epoch = carol.epoch(&gid);
    for (i, text) in ["m0", "m1", "m2"].iter().enumerate() {
        let sent = super::ops::send(&alice.store, &alice.ctx, &gid, text, 4 + i as u64).unwrap();
        bob.takes(&alice, &sent.out, 7);
        if i == 1 {
            // Carol had only the second.
            carol.takes(&alice, &sent.out, 7);
        }
    }
    let answer = answer_of(&carol, &bob, &gid, epoch).unwrap();
    assert_eq!(answer.len(), 1, "one answer");
    let GroupBody::Relay { messages, more } = crate::wire::group::decode_body(&answer[0]).unwrap()
    else {
        panic!("not a relay")
    };
    assert_eq!((messages.len(), more), (2, false), "the two she lacks");
    let taken = receive::take(&carol.store, &carol.ctx, &bob.id(), &answer[0], 11)
        .unwrap()
        .unwrap();
    assert_eq!(taken.events.len(), 2);
    assert!(taken.direct.is_empty(), "nothing more to ask");
    assert_eq!(carol.texts(&gid), ["m0", "m1", "m2"]);
    // The same answer again files nothing twice; a new question gets none.
    let again = receive::take(&carol.store, &carol.ctx, &bob.id(), &answer[0], 12)
        .unwrap()
        .unwrap();
    assert!(again.events.is_empty());
    assert_eq!(carol.texts(&gid), ["m0", "m1", "m2"]);
    assert!(answer_of(&carol, &bob, &gid, epoch).unwrap().is_empty());
}

#[test]
fn only_a_member_of_the_epoch_is_answered() {
    let (alice, bob, carol, dave) = (peer(), peer(), peer(), peer());
    let gid = group(&alice, &[&bob, &carol]);
    let first = bob.epoch(&gid);
    let sent = super::ops::send(&alice.store, &alice.ctx, &gid, "before", 4).unwrap();
    bob.takes(&alice, &sent.out, 5);
    // Dave was never in it.
    assert_eq!(
        answer_of(&dave, &bob, &gid, first),
        Err(GroupError::NotMember)
    );
    // Carol is removed: Bob takes the new epoch, and a message in it.
    let removed = super::ops::change(
        &alice.store,
        &alice.ctx,
        &gid,
        Op::Remove(carol.id().to_bytes()),
        6,
    )
    .unwrap();
    bob.takes(&alice, &removed.out, 7);
    let second = bob.epoch(&gid);
    assert!(second > first);
    let sent = super::ops::send(&alice.store, &alice.ctx, &gid, "after", 8).unwrap();
    bob.takes(&alice, &sent.out, 9);
    // Carol asks about the epoch after her removal: refused.
    assert_eq!(
        answer_of(&carol, &bob, &gid, second),
        Err(GroupError::NotMember)
    );
    // About the one she was in, while Bob keeps it: answered, with what
    // was sent in it only.
    let answer = answer_of(&carol, &bob, &gid, first).unwrap();
    let GroupBody::Relay { messages, .. } = crate::wire::group::decode_body(&answer[0]).unwrap()
    else {
        panic!("not a relay")
    };
    assert_eq!(messages.len(), 1, "only the epoch she was in");
}

#[test]
fn a_relayed_message_not_signed_by_its_sender_is_dropped() {
    let (alice, bob, mallory) = (peer(), peer(), peer());
    let gid = group(&alice, &[&bob, &mallory]);
    let sent = super::ops::send(&alice.store, &alice.ctx, &gid, "real", 4).unwrap();
    let GroupBody::Message(real) =
        crate::wire::group::decode_body(&mallory.mine(&sent.out)[0]).unwrap()
    else {
        panic!("not a message")
    };
    // Mallory signs Alice's message body with her own key and relays it.
    let body: MsgBody = crate::wire::decode(&real.body, MAX_GROUP_BYTES).unwrap();
    let forged = sign_message(&mallory.ctx.identity, &body).unwrap();
    let relay = crate::wire::encode(&GroupBody::Relay {
        messages: vec![forged],
        more: true,
    })
    .unwrap();
    let taken = receive::take(&bob.store, &bob.ctx, &mallory.id(), &relay, 5)
        .unwrap()
        .unwrap();
    assert!(taken.events.is_empty(), "the forged one is filed");
    assert!(taken.direct.is_empty(), "nothing new: no question back");
    // The genuine bytes, relayed by Mallory, are taken: Alice signed them.
    let relay = crate::wire::encode(&GroupBody::Relay {
        messages: vec![real],
        more: false,
    })
    .unwrap();
    receive::take(&bob.store, &bob.ctx, &mallory.id(), &relay, 6)
        .unwrap()
        .unwrap();
    assert_eq!(bob.texts(&gid), ["real"]);
}

#[test]
fn a_relay_from_a_non_member_is_dropped_whole() {
    let (alice, bob, carol, nora) = (peer(), peer(), peer(), peer());
    let gid = group(&alice, &[&bob, &carol]);
    let sent = super::ops::send(&alice.store, &alice.ctx, &gid, "real", 4).unwrap();
    let GroupBody::Message(real) =
        crate::wire::group::decode_body(&carol.mine(&sent.out)[0]).unwrap()
    else {
        panic!("not a message")
    };
    // Nora, no member, relays genuine bytes she got somehow.
    let relay = crate::wire::encode(&GroupBody::Relay {
        messages: vec![real.clone()],
        more: true,
    })
    .unwrap();
    let res = receive::take(&bob.store, &bob.ctx, &nora.id(), &relay, 5).unwrap();
    assert_eq!(res.err(), Some(GroupError::NotMember));
    assert!(bob.texts(&gid).is_empty(), "filed from a non-member");
    // The same bytes from Carol, a member: taken.
    let taken = receive::take(&bob.store, &bob.ctx, &carol.id(), &relay, 6)
        .unwrap()
        .unwrap();
    assert_eq!(taken.events.len(), 1);
    assert_eq!(bob.texts(&gid), ["real"]);
}

#[test]
fn a_blocked_member_counts_as_complete_in_a_question() {
    let (alice, bob, mallory) = (peer(), peer(), peer());
    let gid = group(&alice, &[&bob, &mallory]);
    let epoch = bob.epoch(&gid);
    let sent = super::ops::send(&mallory.store, &mallory.ctx, &gid, "blocked", 4).unwrap();
    alice.takes(&mallory, &sent.out, 5);
    bob.store.block(&mallory.id()).unwrap();
    let q = ask(&bob.store, &bob.ctx, &gid, epoch, 0).unwrap().unwrap();
    assert!(q.members.contains(&mallory.id()));
    // Alice, asked, has nothing Bob lacks: Mallory's message is not sent.
    let taken = receive::take(&alice.store, &alice.ctx, &bob.id(), &q.bytes, 6)
        .unwrap()
        .unwrap();
    assert!(
        taken.direct.is_empty(),
        "a blocked sender's message relayed"
    );
    // A sentinel from Alice, after it: relayed.
    super::ops::send(&alice.store, &alice.ctx, &gid, "sentinel", 7).unwrap();
    let q = ask(&bob.store, &bob.ctx, &gid, epoch, 0).unwrap().unwrap();
    let taken = receive::take(&alice.store, &alice.ctx, &bob.id(), &q.bytes, 8)
        .unwrap()
        .unwrap();
    assert_eq!(taken.direct.len(), 1, "Alice's own message not relayed");
}

#[test]
fn a_member_asking_in_a_loop_is_answered_at_the_limits_pace() {
    let (alice, bob, carol, dave) = (peer(), peer(), peer(), peer());
    let gid = group(&alice, &[&bob, &carol, &dave]);
    let epoch = carol.epoch(&gid);
    let sent = super::ops::send(&alice.store, &alice.ctx, &gid, "lacked", 4).unwrap();
    bob.takes(&alice, &sent.out, 5);
    // Carol (and Dave) never file the answers, so every question lacks the message.
    let t0 = 1_000_000;
    for i in 0..sync::ANSWER_BURST {
        let answer = answer_at(&carol, &bob, &gid, epoch, t0).unwrap();
        assert_eq!(answer.len(), 1, "question {i} of the burst unanswered");
    }
    let over = answer_at(&carol, &bob, &gid, epoch, t0).unwrap();
    assert!(over.is_empty(), "answered past the burst");
    // Another member is not held back by Carol's questions.
    let dave = answer_at(&dave, &bob, &gid, epoch, t0).unwrap();
    assert_eq!(dave.len(), 1, "Dave held back by Carol's questions");
    // A period later, Carol is answered again: the limit, not a refusal.
    let later = answer_at(&carol, &bob, &gid, epoch, t0 + sync::ANSWER_EVERY_MS).unwrap();
    assert_eq!(later.len(), 1, "not answered after a period");
}
