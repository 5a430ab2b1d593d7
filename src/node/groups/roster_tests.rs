//! The roster and epoch rules.

use libp2p::PeerId;

use super::*;
use crate::identity::Identity;
use crate::wire::group::{GroupId, Member, Op, Role};

struct G {
    creator: Identity,
    admin: PeerId,
    member: PeerId,
    state: GroupState,
    signed: SignedState,
}

fn group() -> G {
    let creator = Identity::generate().unwrap();
    let (admin, member) = (PeerId::random(), PeerId::random());
    let m = |p: &PeerId, role| Member {
        id: p.to_bytes(),
        role,
    };
    let state = GroupState {
        group_id: GroupId([3; 32]),
        name: "team".into(),
        creator: creator.peer_id().to_bytes(),
        epoch: 4,
        roster: vec![
            m(&creator.peer_id(), Role::Admin),
            m(&admin, Role::Admin),
            m(&member, Role::Member),
        ],
        prev: [0; 32],
        issued_at: 1,
        change: Change::Created,
    };
    let signed = SignedState::sign(&creator, &state).unwrap();
    G {
        creator,
        admin,
        member,
        state,
        signed,
    }
}

#[test]
fn only_admins_add_and_remove_and_the_creator_stays() {
    let g = group();
    let newcomer = PeerId::random();
    let add = Op::Add(vec![newcomer.to_bytes().into()]);
    assert_eq!(
        next_state(&g.state, &g.signed, &g.member, &add, 9),
        Err(GroupError::NotAdmin)
    );
    assert_eq!(
        next_state(
            &g.state,
            &g.signed,
            &g.member,
            &Op::Remove(g.admin.to_bytes()),
            9
        ),
        Err(GroupError::NotAdmin)
    );
    assert_eq!(
        next_state(&g.state, &g.signed, &PeerId::random(), &Op::Leave, 9),
        Err(GroupError::NotMember)
    );
    let next = next_state(&g.state, &g.signed, &g.admin, &add, 9).unwrap();
    assert_eq!(next.epoch, 5);
    assert_eq!(next.prev, g.signed.hash());
    assert_eq!(next.role_of(&newcomer), Some(Role::Member));
    assert_eq!(
        next_state(
            &g.state,
            &g.signed,
            &g.admin,
            &Op::Add(vec![g.member.to_bytes().into()]),
            9
        ),
        Err(GroupError::AlreadyMember)
    );
    let removed = next_state(
        &g.state,
        &g.signed,
        &g.admin,
        &Op::Remove(g.member.to_bytes()),
        9,
    )
    .unwrap();
    assert_eq!(removed.role_of(&g.member), None);
    assert_eq!(removed.change, Change::Removed(g.member.to_bytes()));
    let creator = g.creator.peer_id();
    assert_eq!(
        next_state(
            &g.state,
            &g.signed,
            &g.admin,
            &Op::Remove(creator.to_bytes()),
            9
        ),
        Err(GroupError::Creator)
    );
    assert_eq!(
        next_state(&g.state, &g.signed, &creator, &Op::Leave, 9),
        Err(GroupError::Creator)
    );
    let left = next_state(&g.state, &g.signed, &g.member, &Op::Leave, 9).unwrap();
    assert_eq!(left.change, Change::Left(g.member.to_bytes()));
}

#[test]
fn members_take_only_newer_states_that_follow_theirs() {
    let g = group();
    let next = next_state(&g.state, &g.signed, &g.admin, &Op::Leave, 9).unwrap();
    assert_eq!(accept_state(&g.state, &g.signed, &next), Ok(()));
    assert_eq!(
        accept_state(&g.state, &g.signed, &g.state),
        Err(GroupError::Stale)
    );
    let mut fork = next.clone();
    fork.prev = [9; 32];
    assert_eq!(
        accept_state(&g.state, &g.signed, &fork),
        Err(GroupError::Fork)
    );
    let mut other = next.clone();
    other.creator = PeerId::random().to_bytes();
    assert_eq!(
        accept_state(&g.state, &g.signed, &other),
        Err(GroupError::NotCreator)
    );
    // A gap is taken: the state carries the whole roster.
    let mut later = next;
    later.epoch = 7;
    later.prev = [1; 32];
    assert_eq!(accept_state(&g.state, &g.signed, &later), Ok(()));
}

#[test]
fn a_removed_members_messages_are_refused_after_the_grace_window() {
    let (a, b) = (b"a".to_vec(), b"b".to_vec());
    let ended = 1_000_000;
    let prev = EpochView {
        epoch: 4,
        members: vec![a.clone(), b.clone()],
        ended_at: Some(ended),
    };
    let cur = EpochView {
        epoch: 5,
        members: vec![a.clone()],
        ended_at: None,
    };
    // b was removed in epoch 5: not in the current roster.
    assert_eq!(
        may_send(&cur, Some(&prev), &b, 5, ended),
        Err(GroupError::NotMember)
    );
    // Its message of epoch 4, in flight at the change: taken within grace.
    assert_eq!(may_send(&cur, Some(&prev), &b, 4, ended + GRACE_MS), Ok(()));
    assert_eq!(
        may_send(&cur, Some(&prev), &b, 4, ended + GRACE_MS + 1),
        Err(GroupError::GraceOver)
    );
    assert_eq!(
        may_send(&cur, Some(&prev), &a, 5, ended + GRACE_MS + 1),
        Ok(())
    );
    assert_eq!(
        may_send(&cur, Some(&prev), &a, 3, ended),
        Err(GroupError::GraceOver)
    );
    assert_eq!(
        may_send(&cur, Some(&prev), &a, 6, ended),
        Err(GroupError::UnknownEpoch(6))
    );
    assert_eq!(
        may_send(&cur, None, b"c", 5, ended),
        Err(GroupError::NotMember)
    );
}

#[test]
fn admins_make_and_unmake_admins_but_not_of_the_creator() {
    let g = group();
    let creator = g.creator.peer_id();
    let set = |who: &PeerId, id: &PeerId, role| {
        next_state(
            &g.state,
            &g.signed,
            who,
            &Op::SetRole(id.to_bytes(), role),
            9,
        )
    };
    // A member may not; an admin other than the creator may.
    assert_eq!(
        set(&g.member, &g.member, Role::Admin),
        Err(GroupError::NotAdmin)
    );
    let promoted = set(&g.admin, &g.member, Role::Admin).unwrap();
    assert_eq!(promoted.role_of(&g.member), Some(Role::Admin));
    assert_eq!(promoted.epoch, 5);
    assert_eq!(
        promoted.change,
        Change::Role(g.member.to_bytes(), Role::Admin)
    );
    // The promoted member now adds and removes like any admin.
    let newcomer = PeerId::random();
    let add = Op::Add(vec![newcomer.to_bytes().into()]);
    let ps = SignedState::sign(&g.creator, &promoted).unwrap();
    let added = next_state(&promoted, &ps, &g.member, &add, 10).unwrap();
    assert_eq!(added.role_of(&newcomer), Some(Role::Member));
    let demoted = set(&creator, &g.admin, Role::Member).unwrap();
    assert_eq!(demoted.role_of(&g.admin), Some(Role::Member));
    assert_eq!(
        set(&g.admin, &g.admin, Role::Admin),
        Err(GroupError::SameRole)
    );
    assert_eq!(
        set(&g.admin, &creator, Role::Member),
        Err(GroupError::Creator)
    );
    assert_eq!(
        set(&g.admin, &PeerId::random(), Role::Admin),
        Err(GroupError::NotMember)
    );
}
