//! The states of this node's groups, opened once and kept.
//!
//! Opening a state ([`SignedState::open`]) decodes its roster, checks
//! every member's id and verifies the creator's signature over the whole
//! body. At 1000 members that body is about 40 KB, and every group
//! message needs the roster of its epoch: opened afresh for each message,
//! it was most of what a member's store thread spent on a message
//! (profile in docs/rooms.md). A state changes only with a membership
//! change, so each group's is opened once and kept until its row holds
//! another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::roster::EpochView;
use crate::wire::group::{GroupId, GroupState, GroupWireError, SignedState};

/// Most groups whose opened state is kept. A node in more groups opens
/// the others' states as before, on each use.
pub const MAX_OPENED: usize = 64;

/// A state opened and checked, with its epoch's members ready for the
/// roster rules.
#[derive(Debug)]
pub(crate) struct Opened {
    /// The state.
    pub(crate) state: GroupState,
    /// Its epoch as the roster rules see it (current: no end).
    pub(crate) view: Arc<EpochView>,
}

impl Opened {
    fn of(state: GroupState) -> Self {
        let view = Arc::new(EpochView {
            epoch: state.epoch,
            members: state.roster.iter().map(|m| m.id.clone()).collect(),
            ended_at: None,
        });
        Self { state, view }
    }
}

/// One kept state: what it was opened from, to tell it from another.
#[derive(Debug)]
struct Kept {
    sig: Vec<u8>,
    body: blake3::Hash,
    opened: Arc<Opened>,
}

/// The opened states of up to [`MAX_OPENED`] groups, per group id. A kept
/// state is used only for exactly the signed bytes it was opened from
/// (same signature, same body hash), so a row that changed is opened
/// again, whoever wrote it.
#[derive(Debug, Default)]
pub(crate) struct OpenedStates {
    kept: Mutex<HashMap<GroupId, Kept>>,
}

impl OpenedStates {
    /// The state `signed` of group `id`, opened and checked: kept from an
    /// earlier call with the same bytes, or opened now (and kept).
    pub(crate) fn open(
        &self,
        id: &GroupId,
        signed: &SignedState,
    ) -> Result<Arc<Opened>, GroupWireError> {
        let body = blake3::hash(&signed.body);
        if let Ok(kept) = self.kept.lock()
            && let Some(k) = kept.get(id)
            && k.sig == signed.sig
            && k.body == body
        {
            return Ok(k.opened.clone());
        }
        let opened = Arc::new(Opened::of(signed.open()?));
        if let Ok(mut kept) = self.kept.lock() {
            if kept.len() >= MAX_OPENED && !kept.contains_key(id) {
                // Rare (a node in more groups than this): forget one.
                if let Some(other) = kept.keys().next().copied() {
                    kept.remove(&other);
                }
            }
            kept.insert(
                *id,
                Kept {
                    sig: signed.sig.clone(),
                    body,
                    opened: opened.clone(),
                },
            );
        }
        Ok(opened)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::wire::group::{Change, Member, Role};

    fn state(creator: &Identity, group: u8, epoch: u64, members: usize) -> SignedState {
        let me = creator.peer_id().to_bytes();
        let mut roster = vec![Member {
            id: me.clone(),
            role: Role::Admin,
        }];
        for _ in 1..members {
            let id = Identity::generate().unwrap().peer_id().to_bytes();
            roster.push(Member {
                id,
                role: Role::Member,
            });
        }
        let s = GroupState {
            group_id: GroupId([group; 32]),
            name: "g".into(),
            creator: me,
            epoch,
            roster,
            prev: [0; 32],
            issued_at: 1,
            change: Change::Created,
        };
        SignedState::sign(creator, &s).unwrap()
    }

    #[test]
    fn a_state_is_opened_once_and_a_changed_one_again() {
        let alice = Identity::generate().unwrap();
        let states = OpenedStates::default();
        let gid = GroupId([1; 32]);
        let first = state(&alice, 1, 1, 3);
        let a = states.open(&gid, &first).unwrap();
        let b = states.open(&gid, &first.clone()).unwrap();
        assert!(
            Arc::ptr_eq(&a, &b),
            "the same bytes: kept, not opened again"
        );
        assert_eq!(a.view.members.len(), 3);
        assert_eq!((a.view.epoch, a.view.ended_at), (1, None));
        let next = state(&alice, 1, 2, 4);
        let c = states.open(&gid, &next).unwrap();
        assert_eq!((c.state.epoch, c.view.members.len()), (2, 4));
    }

    #[test]
    fn a_body_changed_under_a_kept_signature_is_checked_again() {
        let alice = Identity::generate().unwrap();
        let states = OpenedStates::default();
        let gid = GroupId([1; 32]);
        let good = state(&alice, 1, 1, 3);
        states.open(&gid, &good).unwrap();
        // Another body (a fourth member) under the kept signature.
        let other = state(&alice, 1, 1, 4);
        let forged = SignedState {
            body: other.body,
            sig: good.sig.clone(),
        };
        assert_eq!(
            states.open(&gid, &forged).unwrap_err(),
            GroupWireError::BadSignature
        );
        // And another signature over the kept body is no better.
        let resigned = SignedState {
            body: good.body.clone(),
            sig: other.sig,
        };
        assert!(states.open(&gid, &resigned).is_err());
        assert_eq!(states.open(&gid, &good).unwrap().view.members.len(), 3);
    }

    #[test]
    fn at_most_max_opened_states_are_kept() {
        let alice = Identity::generate().unwrap();
        let states = OpenedStates::default();
        for g in 0..=MAX_OPENED as u8 {
            states
                .open(&GroupId([g; 32]), &state(&alice, g, 1, 1))
                .unwrap();
        }
        assert_eq!(states.kept.lock().unwrap().len(), MAX_OPENED);
    }
}
