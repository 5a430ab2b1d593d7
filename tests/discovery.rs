//! [core] Discovery by public key over a real DHT of real nodes.

mod common;

use common::{TestNode, eventually, init_tracing};
use futures::future::join_all;
use libp2p::PeerId;
use libp2p::kad::KBucketKey;
use roost::clock::unix_ms;
use roost::wire::locator;
use roost::{Identity, NodeHandle};

/// Waits until `from` finds `to`'s locator; returns whether it says online.
async fn found(from: &NodeHandle, to: PeerId) -> bool {
    eventually(&format!("{} finds {to}", from.peer_id()), || async move {
        from.find(to).await.expect("node running").map(|l| l.online)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_nodes_find_each_other_and_survive_loss_of_the_bootstrap_node() {
    init_tracing();
    let seed = TestNode::start(&[]).await;
    let boot = seed.addr().await;
    let mut nodes = vec![seed];
    for _ in 1..12 {
        nodes.push(TestNode::start(std::slice::from_ref(&boot)).await);
    }
    let ids: Vec<PeerId> = nodes.iter().map(|n| n.handle.peer_id()).collect();

    // Every node finds every other node's locator by key alone, and connects.
    join_all(nodes.iter().map(|n| {
        let ids = ids.clone();
        async move {
            for &other in ids.iter().filter(|&&p| p != n.handle.peer_id()) {
                assert!(found(&n.handle, other).await, "{other} should be online");
                n.handle.dial(other).await.expect("dial by ID");
            }
        }
    }))
    .await;

    // The bootstrap node leaves; a newcomer that knows only node 5 still
    // finds everyone, and sees node 0 as offline: its last locator, the one
    // it published on leaving, says so.
    let gone = nodes.remove(0);
    gone.handle.shutdown().await.expect("shutdown");
    // The seq of the last locator node 0 published, from its database: a
    // stopped node has released it, and saves each seq it publishes.
    let last_seq = {
        let db = gone.dir.path().join(roost::node::DB_DIR);
        roost::store::Store::open(&db, 1 << 20)
            .expect("node 0's database")
            .locator_seq()
            .expect("seq")
    };
    let via5 = nodes[4].addr().await;
    let late = TestNode::start(&[via5]).await;
    for &other in &ids[1..] {
        assert!(found(&late.handle, other).await);
        late.handle.dial(other).await.expect("dial by ID");
    }
    // Wait for node 0's last record (a holder may still answer with an
    // earlier one), whatever it says; then check what it says.
    let last = eventually("newcomer finds node 0's last locator", || async {
        let loc = late.handle.find(ids[0]).await.expect("running")?;
        (loc.seq >= last_seq).then_some(loc)
    })
    .await;
    assert_eq!(last.seq, last_seq);
    assert!(
        !last.online,
        "node 0's last locator (seq {last_seq}) says it is online"
    );
    for n in nodes.iter().chain([&late]) {
        n.handle.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_rejoins_through_remembered_peers() {
    init_tracing();
    let seed = TestNode::start(&[]).await;
    let boot = seed.addr().await;
    let other = TestNode::start(std::slice::from_ref(&boot)).await;
    let mut roamer = TestNode::start(&[boot]).await;
    found(&roamer.handle, other.handle.peer_id()).await;
    let old_addr = roamer.addr().await;

    // No --bootstrap this time: only what the roamer remembered.
    roamer.restart(&[]).await;
    let new_addr = roamer.addr().await;
    assert_ne!(
        old_addr, new_addr,
        "a restart listens on a new ephemeral port"
    );
    assert!(found(&roamer.handle, other.handle.peer_id()).await);
    // The rest of the network learns the roamer's new address from its
    // republished locator, and can dial it by ID.
    eventually("others see the roamer's new address", || async {
        let loc = other
            .handle
            .find(roamer.handle.peer_id())
            .await
            .expect("running")?;
        let new_plain = new_addr.clone().with_p2p(roamer.handle.peer_id()).ok()?;
        loc.addrs
            .iter()
            .any(|a| a.clone().with_p2p(roamer.handle.peer_id()).ok() == Some(new_plain.clone()))
            .then_some(())
    })
    .await;
    other
        .handle
        .dial(roamer.handle.peer_id())
        .await
        .expect("dial the roamer by ID");
    for n in [&seed, &other, &roamer] {
        n.handle.shutdown().await.expect("shutdown");
    }
}

/// The in-process memory transport (what the 1000-node benchmark runs on)
/// carries the same stack: discovery by key, then a sealed message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_the_memory_transport_find_and_message_each_other() {
    init_tracing();
    let memory = |c: &mut roost::Config| c.listen = vec!["/memory/0".parse().expect("multiaddr")];
    let dirs: Vec<_> = (0..3)
        .map(|_| {
            let d = tempfile::tempdir().expect("temp dir");
            roost::Identity::create_in(d.path()).expect("identity");
            d
        })
        .collect();
    let seed = common::start_with(&dirs[0], &[], memory).await;
    let boot = seed.dial_addrs().await.expect("addrs");
    assert!(boot[0].to_string().starts_with("/memory/"), "{boot:?}");
    let alice = common::start_with(&dirs[1], &boot, memory).await;
    let bob = common::start_with(&dirs[2], &boot, memory).await;
    assert!(found(&alice, bob.peer_id()).await);
    let id = alice
        .send(bob.peer_id(), roost::Content::text("over memory"))
        .await
        .expect("send");
    common::arrives(&bob, alice.peer_id(), id).await;
    for n in [&seed, &alice, &bob] {
        n.shutdown().await.expect("shutdown");
    }
}

/// A locator published into a small network reaches the nodes that join
/// after it, though its owner does not publish again: whoever is closest to
/// the key hands it to newcomers that rank among the closest (the 1000-node
/// run lost an early node's locator for ten minutes without it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locator_reaches_nodes_that_join_after_it_was_published() {
    init_tracing();
    let seed = TestNode::start(&[]).await;
    let boot = seed.addr().await;
    let dir = tempfile::tempdir().expect("temp dir");
    roost::Identity::create_in(dir.path()).expect("identity");
    // Growth of its routing table would make the owner publish again
    // within a second; an hour keeps the test on the hand-over alone.
    let owner = common::start_with(&dir, std::slice::from_ref(&boot), |c| {
        c.republish_min_interval = std::time::Duration::from_secs(3600)
    })
    .await;
    let key = locator::record_key(&owner.peer_id());
    let holds = |n: &NodeHandle| {
        let key = key.clone();
        let n = n.clone();
        async move { n.net().held_record(key).await.expect("running") }
    };
    eventually("the seed holds the owner's locator", || holds(&seed.handle)).await;

    // Newcomers one at a time; every node already there meets each one
    // (a dial by ID: a lookup, then a connection) before the next comes:
    // this test checks the hand-over on meeting. A record that reaches a
    // node after it met a closer peer is passed on on receipt; the test
    // below checks that.
    let mut late: Vec<TestNode> = Vec::new();
    for _ in 0..6 {
        let n = TestNode::start(std::slice::from_ref(&boot)).await;
        let who = n.handle.peer_id();
        for there in late.iter().map(|t| &t.handle).chain([&seed.handle, &owner]) {
            eventually(
                &format!("{} dials {who} by ID", there.peer_id()),
                || async { there.dial(who).await.ok() },
            )
            .await;
        }
        eventually(&format!("{who} is handed the owner's locator"), || {
            holds(&n.handle)
        })
        .await;
        late.push(n);
    }
    for n in late.iter().chain([&seed]) {
        n.handle.shutdown().await.expect("shutdown");
    }
    owner.shutdown().await.expect("shutdown");
}

/// The race the hand-over on meeting leaves open: a node that met a closer
/// peer *before* it was handed a record passes the record on when it
/// arrives. Here the owner is not even running: its record is handed to
/// the second-closest node by a third, and must reach the closest, whom
/// only the second-closest knows. (Without passing on, it never does.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_handed_over_is_passed_on_to_a_closer_peer_met_before() {
    init_tracing();
    let owner = Identity::generate().expect("identity");
    let key = locator::record_key(&owner.peer_id());
    let target = KBucketKey::new(key.clone());
    let mut ids: Vec<Identity> = (0..32)
        .map(|_| Identity::generate().expect("identity"))
        .collect();
    ids.sort_by_key(|id| target.distance(&KBucketKey::from(id.peer_id())));
    let [closest, second, third] = [&ids[0], &ids[1], &ids[2]];

    // The closest and the second-closest meet (it bootstraps from it);
    // neither holds the record. The third knows only the second.
    let closest = TestNode::start_as(closest, &[]).await;
    let second = TestNode::start_as(second, &[closest.addr().await]).await;
    let third = TestNode::start_as(third, &[second.addr().await]).await;

    let expires_at = unix_ms() + 30 * 60 * 1000;
    let addr = "/ip4/127.0.0.1/tcp/9".parse().expect("address");
    let value = locator::sign(&owner, 1, &[addr], expires_at, true).expect("sign");
    third
        .handle
        .net()
        .put_record_to(key.clone(), value.clone(), second.handle.peer_id())
        .await
        .expect("the second-closest takes the record");

    let holds = |n: &TestNode| {
        let (key, net) = (key.clone(), n.handle.net().clone());
        async move { net.held_record(key).await.expect("running") }
    };
    eventually("the second-closest holds the record", || holds(&second)).await;
    let passed = eventually("the closest is passed the record", || holds(&closest)).await;
    assert_eq!(passed, value);
    for n in [third, second, closest] {
        n.handle.shutdown().await.expect("shutdown");
    }
}

/// A holder that missed the owner's last put (here: the owner went
/// offline) answers its own lookups with what the network holds, not with
/// its stale copy, and replaces the copy. (Before, the first answer was the
/// holder's own, so it saw "online" for the record's whole lifetime.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_with_a_stale_copy_looks_past_it() {
    init_tracing();
    let owner = Identity::generate().expect("identity");
    let key = locator::record_key(&owner.peer_id());
    let stale_holder = TestNode::start(&[]).await;
    let other = TestNode::start(&[stale_holder.addr().await]).await;
    let expires_at = unix_ms() + 30 * 60 * 1000;
    let addr: libp2p::Multiaddr = "/ip4/127.0.0.1/tcp/9".parse().expect("address");
    let online = locator::sign(&owner, 1, std::slice::from_ref(&addr), expires_at, true);
    let offline = locator::sign(&owner, 2, &[addr], expires_at, false);
    let (online, offline) = (online.expect("sign"), offline.expect("sign"));
    // Raw puts: neither node keeps what it puts to the other.
    let put = |from: &TestNode, value: &Vec<u8>, to: &TestNode| {
        let (net, key, value) = (from.handle.net().clone(), key.clone(), value.clone());
        let to = to.handle.peer_id();
        async move { net.put_record_to(key, value, to).await.expect("taken") }
    };
    let held = |n: &TestNode| {
        let (net, key) = (n.handle.net().clone(), key.clone());
        async move { net.held_record(key).await.expect("running") }
    };
    put(&other, &online, &stale_holder).await;
    put(&stale_holder, &offline, &other).await;
    eventually("both copies are in place", || async {
        let (s, o) = (held(&stale_holder).await, held(&other).await);
        (s.as_ref() == Some(&online) && o.as_ref() == Some(&offline)).then_some(())
    })
    .await;
    // The lookup needs somewhere to look past its own copy: `other` in the
    // stale holder's routing table (identify brings its address).
    let (net, o) = (stale_holder.handle.net().clone(), other.handle.peer_id());
    eventually("the stale holder knows the other node", || {
        let (net, key) = (net.clone(), key.clone());
        async move {
            net.closest_peers(key.to_vec())
                .await
                .expect("running")
                .contains(&o)
                .then_some(())
        }
    })
    .await;

    let loc = stale_holder
        .handle
        .find(owner.peer_id())
        .await
        .expect("running");
    let loc = loc.expect("found");
    assert_eq!((loc.seq, loc.online), (2, false), "the newer record wins");
    assert_eq!(
        held(&stale_holder).await,
        Some(offline),
        "the stale copy is replaced"
    );
    for n in [other, stale_holder] {
        n.handle.shutdown().await.expect("shutdown");
    }
}
