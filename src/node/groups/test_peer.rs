//! A member for the unit tests of the group machines: an identity, its
//! context and a real store in a temp dir (no sockets), and a group
//! created with members added, the setup those tests share.

use std::sync::Arc;

use libp2p::PeerId;

use super::{Answer, Ctx, GroupDone, ops};
use crate::crypto::Sealer;
use crate::identity::Identity;
use crate::store::Store;
use crate::wire::group::{GroupId, Op};
use crate::wire::message::{self, Body, Envelope};

/// One member: its context and its own store.
pub(super) struct Peer {
    pub(super) ctx: Arc<Ctx>,
    pub(super) store: Store,
    _dir: tempfile::TempDir,
}

/// A new member with a fresh identity and an empty store.
pub(super) fn peer() -> Peer {
    let id = Identity::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    let sealer = Arc::new(Sealer::new(&id));
    Peer {
        ctx: Ctx::new(id, sealer, Default::default()),
        store,
        _dir: dir,
    }
}

impl Peer {
    pub(super) fn id(&self) -> PeerId {
        self.ctx.sealer.me()
    }

    /// The `Body::Group` bytes of the envelopes among `out` addressed to us.
    pub(super) fn mine(&self, out: &[(PeerId, Envelope)]) -> Vec<Vec<u8>> {
        out.iter()
            .filter(|(p, _)| *p == self.id())
            .map(
                |(_, env)| match message::open(&self.ctx.sealer, env).unwrap().1.body {
                    Body::Group(b) => b,
                    other => panic!("not a group item: {other:?}"),
                },
            )
            .collect()
    }

    /// The epoch of `gid`'s state as we hold it.
    pub(super) fn epoch(&self, gid: &GroupId) -> u64 {
        let row = self.store.group(gid).unwrap().unwrap();
        row.state.open().unwrap().epoch
    }

    /// The texts of `gid`'s log, without its system lines.
    pub(super) fn texts(&self, gid: &GroupId) -> Vec<String> {
        self.store
            .group_log(gid, 100)
            .unwrap()
            .into_iter()
            .filter(|l| !l.system)
            .map(|l| l.text)
            .collect()
    }
}

/// `alice` creates the group `g` (at time 1) and adds `members` (at 2):
/// its id and the change, whose `out` holds their invitations.
pub(super) fn create_adding(alice: &Peer, members: &[&Peer]) -> (GroupId, GroupDone) {
    let Answer::Created(gid, _) = ops::create(&alice.store, &alice.ctx, "g", 1)
        .unwrap()
        .answer
    else {
        panic!("not created")
    };
    let add = Op::Add(members.iter().map(|m| m.id().to_bytes().into()).collect());
    let done = ops::change(&alice.store, &alice.ctx, &gid, add, 2).unwrap();
    (gid, done)
}

/// Alice's group with every one of `members` in it and joined.
pub(super) fn joined_group(alice: &Peer, members: &[&Peer]) -> GroupId {
    let (gid, done) = create_adding(alice, members);
    for m in members {
        m.takes(alice, &done.out, 3);
        ops::join(&m.store, &gid).unwrap();
    }
    gid
}

impl Peer {
    /// Takes the first group item among `out` addressed to us, as from
    /// `from`, at `now`.
    pub(super) fn takes(
        &self,
        from: &Peer,
        out: &[(PeerId, Envelope)],
        now: u64,
    ) -> super::receive::Taken {
        super::receive::take(&self.store, &self.ctx, &from.id(), &self.mine(out)[0], now)
            .unwrap()
            .unwrap()
    }
}
