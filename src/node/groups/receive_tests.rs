//! Taking group items against a real store (no sockets): invitations,
//! dedupe, messages that come before their epoch's state, the cap on
//! pending invitations.

use libp2p::PeerId;

use super::*;
use crate::node::groups::ops;
use crate::node::groups::test_peer::{Peer, create_adding, peer};
use crate::wire::group::{GroupId, Op};

impl Peer {
    fn take(&self, from: &PeerId, bytes: &[u8]) -> Result<Taken, GroupError> {
        take(&self.store, &self.ctx, from, bytes, 1_000).unwrap()
    }
}

/// Alice's group with Bob invited; returns its id and Bob's invitation.
fn invited(alice: &Peer, bob: &Peer) -> (GroupId, Vec<u8>) {
    let (gid, done) = create_adding(alice, &[bob]);
    (gid, bob.mine(&done.out).remove(0))
}

#[test]
fn a_message_is_filed_once_however_often_it_comes() {
    let (alice, bob) = (peer(), peer());
    let (gid, inv) = invited(&alice, &bob);
    bob.take(&alice.id(), &inv).unwrap();
    let sent = ops::send(&alice.store, &alice.ctx, &gid, "hello", 3).unwrap();
    let msg = bob.mine(&sent.out).remove(0);
    assert!(!bob.take(&alice.id(), &msg).unwrap().duplicate);
    assert!(bob.take(&alice.id(), &msg).unwrap().duplicate);
    assert_eq!(bob.texts(&gid), ["hello"]);
    // The same bytes from another member's envelope: refused.
    assert_eq!(
        bob.take(&PeerId::random(), &msg).err(),
        Some(GroupError::SenderMismatch)
    );
}

#[test]
fn a_message_ahead_of_its_state_waits_for_it() {
    let (alice, bob, carol) = (peer(), peer(), peer());
    let (gid, inv) = invited(&alice, &bob);
    bob.take(&alice.id(), &inv).unwrap();
    // Carol joins (epoch 2); Alice writes in epoch 2 before Bob has it.
    let add = Op::Add(vec![carol.id().to_bytes().into()]);
    let change = ops::change(&alice.store, &alice.ctx, &gid, add, 4).unwrap();
    let sent = ops::send(&alice.store, &alice.ctx, &gid, "in epoch 2", 5).unwrap();
    bob.take(&alice.id(), &bob.mine(&sent.out)[0]).unwrap();
    assert!(bob.texts(&gid).is_empty(), "not readable yet");
    let t = bob.take(&alice.id(), &bob.mine(&change.out)[0]).unwrap();
    assert_eq!(bob.texts(&gid), ["in epoch 2"]);
    assert!(
        t.events
            .iter()
            .any(|e| matches!(e, GroupEvent::Message { .. }))
    );
}

#[test]
fn pending_invitations_are_capped() {
    let bob = peer();
    for i in 0..=MAX_INVITATIONS {
        let stranger = peer();
        let (_, inv) = invited(&stranger, &bob);
        let res = bob.take(&stranger.id(), &inv);
        if i < MAX_INVITATIONS {
            assert!(res.is_ok(), "invitation {i}");
        } else {
            assert_eq!(res.err(), Some(GroupError::TooManyInvitations));
        }
    }
}

#[test]
fn a_member_removed_and_added_again_is_a_member_again() {
    let (alice, bob) = (peer(), peer());
    let (gid, inv) = invited(&alice, &bob);
    bob.take(&alice.id(), &inv).unwrap();
    ops::join(&bob.store, &gid).unwrap();
    let bob_b = bob.id().to_bytes();
    let removed =
        ops::change(&alice.store, &alice.ctx, &gid, Op::Remove(bob_b.clone()), 3).unwrap();
    bob.take(&alice.id(), &bob.mine(&removed.out)[0]).unwrap();
    let row = bob.store.group(&gid).unwrap().unwrap();
    assert!(row.gone && row.secret.is_none());
    let again = ops::change(
        &alice.store,
        &alice.ctx,
        &gid,
        Op::Add(vec![bob_b.into()]),
        4,
    )
    .unwrap();
    bob.take(&alice.id(), &bob.mine(&again.out)[0]).unwrap();
    let row = bob.store.group(&gid).unwrap().unwrap();
    assert!(!row.gone && row.secret.is_some(), "a member again");
    let sent = ops::send(&alice.store, &alice.ctx, &gid, "welcome back", 5).unwrap();
    bob.take(&alice.id(), &bob.mine(&sent.out)[0]).unwrap();
    assert_eq!(bob.texts(&gid), ["welcome back"]);
}

#[test]
fn withdrawn_invitations_do_not_dodge_the_cap() {
    let bob = peer();
    let stranger = peer();
    let bob_b = bob.id().to_bytes();
    // Invite, withdraw, again and again: each withdrawn invitation is
    // forgotten, so it neither counts nor stays.
    for i in 0..=MAX_INVITATIONS {
        let (gid, inv) = invited(&stranger, &bob);
        bob.take(&stranger.id(), &inv).unwrap();
        let rm = ops::change(
            &stranger.store,
            &stranger.ctx,
            &gid,
            Op::Remove(bob_b.clone()),
            3,
        )
        .unwrap();
        bob.take(&stranger.id(), &bob.mine(&rm.out)[0]).unwrap();
        assert!(bob.store.group(&gid).unwrap().is_none(), "round {i}");
        assert!(bob.store.group_log(&gid, 10).unwrap().is_empty());
    }
    assert!(bob.store.groups().unwrap().is_empty());
    // Real invitations still fit.
    let (_, inv) = invited(&stranger, &bob);
    bob.take(&stranger.id(), &inv).unwrap();
}

#[test]
fn a_message_dated_far_ahead_is_dropped() {
    let (alice, bob) = (peer(), peer());
    let (gid, inv) = invited(&alice, &bob);
    bob.take(&alice.id(), &inv).unwrap();
    // Bob's clock is 1_000 (see `Peer::take`).
    let ahead = 1_000 + crate::node::rooms::rules::MAX_AHEAD_MS + 1;
    let sent = ops::send(&alice.store, &alice.ctx, &gid, "from the future", ahead).unwrap();
    assert_eq!(
        bob.take(&alice.id(), &bob.mine(&sent.out)[0]).err(),
        Some(GroupError::Malformed)
    );
    let sent = ops::send(&alice.store, &alice.ctx, &gid, "now", 900).unwrap();
    bob.take(&alice.id(), &bob.mine(&sent.out)[0]).unwrap();
    assert_eq!(bob.texts(&gid), ["now"]);
}

#[test]
fn a_message_ahead_from_a_sender_we_do_not_know_is_not_kept() {
    let (alice, bob, carol) = (peer(), peer(), peer());
    let (gid, inv) = invited(&alice, &bob);
    bob.take(&alice.id(), &inv).unwrap();
    // Carol joins (epoch 2) and writes before Bob has that state.
    let add = Op::Add(vec![carol.id().to_bytes().into()]);
    let change = ops::change(&alice.store, &alice.ctx, &gid, add, 4).unwrap();
    carol
        .take(&alice.id(), &carol.mine(&change.out)[0])
        .unwrap();
    let sent = ops::send(&carol.store, &carol.ctx, &gid, "hi from carol", 5).unwrap();
    let msg = bob.mine(&sent.out).remove(0);
    assert_eq!(bob.take(&carol.id(), &msg).err(), Some(GroupError::Later));
    // Nothing was kept: the state alone files nothing.
    bob.take(&alice.id(), &bob.mine(&change.out)[0]).unwrap();
    assert!(bob.texts(&gid).is_empty());
    // Offered again, it is taken.
    bob.take(&carol.id(), &msg).unwrap();
    assert_eq!(bob.texts(&gid), ["hi from carol"]);
}

#[test]
fn a_message_too_many_epochs_ahead_is_not_kept() {
    let (alice, bob) = (peer(), peer());
    let (gid, inv) = invited(&alice, &bob);
    bob.take(&alice.id(), &inv).unwrap();
    let mut states = Vec::new();
    for i in 0..=MAX_EPOCHS_AHEAD {
        let add = Op::Add(vec![peer().id().to_bytes().into()]);
        let done = ops::change(&alice.store, &alice.ctx, &gid, add, 4 + i).unwrap();
        states.push(bob.mine(&done.out).remove(0));
    }
    let sent = ops::send(&alice.store, &alice.ctx, &gid, "far ahead", 20).unwrap();
    let msg = bob.mine(&sent.out).remove(0);
    assert_eq!(bob.take(&alice.id(), &msg).err(), Some(GroupError::Later));
    for st in &states {
        bob.take(&alice.id(), st).unwrap();
    }
    assert!(bob.texts(&gid).is_empty(), "nothing was kept");
    bob.take(&alice.id(), &msg).unwrap();
    assert_eq!(bob.texts(&gid), ["far ahead"]);
}

#[test]
fn a_full_buffer_answers_later_rather_than_losing_the_message() {
    use crate::store::MAX_PENDING;
    let (alice, bob) = (peer(), peer());
    let (gid, inv) = invited(&alice, &bob);
    bob.take(&alice.id(), &inv).unwrap();
    ops::join(&bob.store, &gid).unwrap();
    let add = Op::Add(vec![peer().id().to_bytes().into()]);
    let change = ops::change(&alice.store, &alice.ctx, &gid, add, 4).unwrap();
    let mut kept = 0;
    for i in 0..MAX_PENDING {
        let sent = ops::send(&alice.store, &alice.ctx, &gid, &format!("m{i}"), 5).unwrap();
        if bob.take(&alice.id(), &bob.mine(&sent.out)[0]).is_ok() {
            kept += 1;
        }
    }
    assert_eq!(kept, MAX_PENDING);
    let sent = ops::send(&alice.store, &alice.ctx, &gid, "one more", 6).unwrap();
    let last = bob.mine(&sent.out).remove(0);
    assert_eq!(bob.take(&alice.id(), &last).err(), Some(GroupError::Later));
    bob.take(&alice.id(), &bob.mine(&change.out)[0]).unwrap();
    assert_eq!(bob.texts(&gid).len(), MAX_PENDING.min(100));
    assert!(!bob.texts(&gid).contains(&"one more".to_string()));
    bob.take(&alice.id(), &last).unwrap();
    assert_eq!(bob.texts(&gid).last().map(String::as_str), Some("one more"));
}

#[test]
fn a_store_failure_while_taking_leaves_the_retry_to_be_taken() {
    let (alice, bob) = (peer(), peer());
    let (gid, inv) = invited(&alice, &bob);
    bob.take(&alice.id(), &inv).unwrap();
    let sent = ops::send(&alice.store, &alice.ctx, &gid, "kept", 3).unwrap();
    let msg = bob.mine(&sent.out).remove(0);
    let epoch = bob.epoch(&gid);
    let a = alice.id().to_bytes();
    // Alice's chain at Bob unreadable: taking fails in the store.
    bob.store
        .put_group_chain(&gid, epoch, &a, b"not cbor")
        .unwrap();
    assert!(take(&bob.store, &bob.ctx, &alice.id(), &msg, 1_000).is_err());
    // Repaired (a fresh chain), the sender's retry is taken, not a duplicate.
    let secret = bob.store.group(&gid).unwrap().unwrap().secret.unwrap();
    let fresh = Chain::new(keys::chain_start(&secret, &gid, epoch, &a));
    let fresh = crate::wire::encode(&fresh).unwrap();
    bob.store.put_group_chain(&gid, epoch, &a, &fresh).unwrap();
    assert!(!bob.take(&alice.id(), &msg).unwrap().duplicate);
    assert_eq!(bob.texts(&gid), ["kept"]);
}

#[test]
fn a_pending_invitation_holds_a_bounded_log_and_the_rest_waits_with_its_senders() {
    let (alice, bob, carol) = (peer(), peer(), peer());
    let (gid, inv) = invited(&alice, &bob);
    bob.take(&alice.id(), &inv).unwrap();
    let send = |i: usize, at: u64| {
        let sent = ops::send(&alice.store, &alice.ctx, &gid, &format!("m{i}"), at).unwrap();
        bob.mine(&sent.out).remove(0)
    };
    // Messages for an epoch not here yet count too: 10 kept.
    let add = Op::Add(vec![carol.id().to_bytes().into()]);
    let change = ops::change(&alice.store, &alice.ctx, &gid, add, 4).unwrap();
    for i in 0..10 {
        bob.take(&alice.id(), &send(i, 5)).unwrap();
    }
    // The invitation's line, the change's line, the 10 it releases.
    bob.take(&alice.id(), &bob.mine(&change.out)[0]).unwrap();
    let filed = (10..MAX_PENDING_LINES * 2)
        .take_while(|&i| bob.take(&alice.id(), &send(i, 6)).is_ok())
        .count();
    assert_eq!(filed, MAX_PENDING_LINES - 12);
    let held = bob.store.group_log(&gid, usize::MAX).unwrap();
    assert_eq!(held.len(), MAX_PENDING_LINES);
    let over = send(99_999, 7);
    assert_eq!(bob.take(&alice.id(), &over).err(), Some(GroupError::Later));
    assert_eq!(bob.store.group_log(&gid, usize::MAX).unwrap(), held);
    // Accepted: the one put off is taken when its sender offers it again.
    ops::join(&bob.store, &gid).unwrap();
    bob.take(&alice.id(), &over).unwrap();
    assert_eq!(bob.texts(&gid).last().map(String::as_str), Some("m99999"));
}
