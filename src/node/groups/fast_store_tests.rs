//! The fast path's store job ([`take_gossip`]) against a real store (no
//! sockets): what it files.

use super::*;
use crate::node::groups::ops;
use crate::node::groups::test_peer::{Peer, create_adding, joined_group as group, peer};

impl Peer {
    /// The topic of `gid`'s current epoch, as we know it.
    fn topic(&self, gid: &GroupId) -> String {
        let row = self.store.group(gid).unwrap().unwrap();
        let epoch = row.state.open().unwrap().epoch;
        topic(&row.secret.unwrap(), gid, epoch)
    }
}

/// What `p`'s store job makes of `bytes` gossiped on `topic`, once the
/// message passed [`precheck`] (as the actor judges it).
fn filed(p: &Peer, topic: &str, bytes: &[u8], now: u64) -> (GossipVerdict, Taken) {
    let checked = precheck(topic, bytes, |_| Some(topic.to_string())).unwrap();
    take_gossip(&p.store, &p.ctx, topic, bytes, checked, now).unwrap()
}

#[test]
fn gossip_from_a_blocked_member_is_not_filed() {
    let (alice, bob, mallory) = (peer(), peer(), peer());
    let gid = group(&alice, &[&bob, &mallory]);
    bob.store.block(&mallory.id()).unwrap();
    let topic = bob.topic(&gid);
    let sent = ops::send(&mallory.store, &mallory.ctx, &gid, "blocked", 4).unwrap();
    let (verdict, taken) = filed(&bob, &topic, &bob.mine(&sent.out)[0], 5);
    assert_eq!(verdict, GossipVerdict::Ignore, "a blocked sender's gossip");
    assert!(taken.events.is_empty());
    // A sentinel from Alice, after it, on the same topic: taken.
    let sent = ops::send(&alice.store, &alice.ctx, &gid, "sentinel", 6).unwrap();
    let (verdict, _) = filed(&bob, &topic, &bob.mine(&sent.out)[0], 7);
    assert!(matches!(verdict, GossipVerdict::Took), "{verdict:?}");
    assert_eq!(bob.texts(&gid), ["sentinel"], "only Alice's is filed");
}

#[test]
fn only_joined_groups_are_followed() {
    let (alice, bob) = (peer(), peer());
    let (gid, done) = create_adding(&alice, &[&bob]);
    receive::take(
        &bob.store,
        &bob.ctx,
        &alice.id(),
        &bob.mine(&done.out)[0],
        3,
    )
    .unwrap()
    .unwrap();
    let cfg = FastConfig {
        threshold: 2,
        ..FastConfig::default()
    };
    let wanted = |p: &Peer| wanted_topics(&p.store.groups().unwrap(), &p.ctx.states, &cfg, 4);
    assert!(wanted(&bob).is_empty(), "an invitation is not followed");
    ops::join(&bob.store, &gid).unwrap();
    let topics = wanted(&bob);
    assert_eq!(topics.len(), 1, "joined: followed");
    let epoch = bob.epoch(&gid);
    assert_eq!(topics.get(&bob.topic(&gid)), Some(&(gid, epoch)));
    assert!(
        wanted(&alice).contains_key(&bob.topic(&gid)),
        "the creator follows it"
    );
    // Who may speak there, as the actor keeps it: the epoch's members.
    let groups = bob.store.groups().unwrap();
    let speakers = super::speakers(&groups, &bob.ctx.states, &topics, HashSet::new());
    let (group, view) = &speakers.topics[&bob.topic(&gid)];
    assert_eq!((*group, view.epoch), (gid, epoch));
    for p in [&alice, &bob] {
        assert!(view.members.contains(&p.id().to_bytes()));
    }
}

#[test]
fn the_store_job_files_only_what_the_stored_group_puts_on_that_topic() {
    let (alice, bob, carol) = (peer(), peer(), peer());
    let gid = group(&alice, &[&bob, &carol]);
    let topic = bob.topic(&gid);
    // Judged against a topic the stored group does not name (the
    // speakers kept in memory were stale): refused, nothing filed.
    let sent = ops::send(&alice.store, &alice.ctx, &gid, "elsewhere", 4).unwrap();
    let (verdict, taken) = filed(&bob, "other", &bob.mine(&sent.out)[0], 5);
    assert_eq!(verdict, GossipVerdict::Reject(GroupError::NotMember));
    assert!(taken.events.is_empty());
    // A checked message handed over with another sender than it names.
    let sent = ops::send(&carol.store, &carol.ctx, &gid, "carol's", 6).unwrap();
    let bytes = &bob.mine(&sent.out)[0];
    let mut checked = precheck(&topic, bytes, |_| Some(topic.clone())).unwrap();
    checked.sender = alice.id();
    let (verdict, _) = take_gossip(&bob.store, &bob.ctx, &topic, bytes, checked, 7).unwrap();
    assert_eq!(verdict, GossipVerdict::Reject(GroupError::SenderMismatch));
    // A sentinel on the stored topic, after them: filed.
    let sent = ops::send(&alice.store, &alice.ctx, &gid, "sentinel", 8).unwrap();
    let (verdict, _) = filed(&bob, &topic, &bob.mine(&sent.out)[0], 9);
    assert_eq!(verdict, GossipVerdict::Took);
    assert_eq!(bob.texts(&gid), ["sentinel"], "only the sentinel is filed");
}
