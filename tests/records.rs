//! [core] The *storing* node refuses bad locator records sent by a hostile
//! peer, and keeps serving honest ones.

mod common;

use common::{TestNode, eventually, init_tracing};
use libp2p::PeerId;
use libp2p::kad::RecordKey;
use roost::Identity;
use roost::clock::unix_ms;
use roost::wire::locator::{self, LocatorBody, MAX_RECORD_BYTES, record_key};

const HOUR: u64 = 3_600_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storing_node_refuses_forged_replayed_oversized_and_far_future_records() {
    init_tracing();
    let (honest, hostile) = honest_node_that_met_a_hostile_one().await;
    let victim = Identity::generate().unwrap();
    let mallory = Identity::generate().unwrap();
    let key = record_key(&victim.peer_id());
    let now = unix_ms();
    let addr = "/ip4/127.0.0.1/tcp/9".parse().unwrap();
    let mut ch = Channel::new(&honest, &hostile, now);

    // A good record with seq 10 is stored; this also proves the channel works.
    let good = locator::sign(&victim, 10, &[addr], now + HOUR, true).unwrap();
    ch.put(key.clone(), good.clone()).await;
    eventually("honest node stores the good record", || async {
        (ch.held(key.clone()).await == Some(good.clone())).then_some(())
    })
    .await;

    refuses_bad_records(&mut ch, &victim, &mallory, &key, &good).await;
    refuses_replays_and_foreign_keys(&mut ch, &victim, &mallory, &key, good).await;

    // And a lookup through the hostile-fed node still validates.
    let probe = locator::sign(&victim, 12, &[], now + HOUR, true).unwrap();
    ch.put(key.clone(), probe.clone()).await;
    eventually("honest node stores the probe", || async {
        (ch.held(key.clone()).await == Some(probe.clone())).then_some(())
    })
    .await;
    let loc = hostile
        .handle
        .find(victim.peer_id())
        .await
        .unwrap()
        .expect("found");
    assert_eq!(loc.seq, 12);
    honest.handle.shutdown().await.unwrap();
    hostile.handle.shutdown().await.unwrap();
}

/// Starts the honest node and the hostile one, and waits until the honest
/// node has met the hostile one.
async fn honest_node_that_met_a_hostile_one() -> (TestNode, TestNode) {
    let honest = TestNode::start(&[]).await;
    let hostile = TestNode::start(&[honest.addr().await]).await;
    let target = honest.handle.peer_id();
    // The honest node must have met the hostile one before any record
    // exists: a node hands the records it holds to a peer it meets
    // (`net::record_handoff`), and a copy in the hostile node's own store
    // would answer its lookup at the end instead of the honest node.
    let hostile_id = hostile.handle.peer_id();
    eventually(
        "the honest node has the hostile one in its routing table",
        || async {
            let peers = honest.handle.net().closest_peers(target.to_bytes()).await;
            peers.expect("running").contains(&hostile_id).then_some(())
        },
    )
    .await;
    (honest, hostile)
}

/// The hostile peer's put channel to the honest node, and what the honest
/// node holds.
///
/// A put is answered before it is validated (`FilterBoth`), so the
/// answer says nothing about the verdict. The hostile peer's puts reach
/// the honest node's event loop in order: once a valid record of a
/// witness, put right after a refused one, is held, the refused one has
/// been judged, and what is held under its key is the verdict.
struct Channel<'a> {
    honest: &'a TestNode,
    hostile: &'a TestNode,
    target: PeerId,
    now: u64,
    witness: Identity,
    witness_key: RecordKey,
    witness_seq: u64,
}

impl<'a> Channel<'a> {
    fn new(honest: &'a TestNode, hostile: &'a TestNode, now: u64) -> Self {
        let witness = Identity::generate().unwrap();
        let witness_key = record_key(&witness.peer_id());
        Self {
            honest,
            hostile,
            target: honest.handle.peer_id(),
            now,
            witness,
            witness_key,
            witness_seq: 0,
        }
    }

    async fn put(&self, key: RecordKey, value: Vec<u8>) {
        self.hostile
            .handle
            .net()
            .put_record_to(key, value, self.target)
            .await
            .expect("peer answered")
    }

    async fn held(&self, key: RecordKey) -> Option<Vec<u8>> {
        self.honest
            .handle
            .net()
            .held_record(key)
            .await
            .expect("running")
    }

    /// Returns once every put made before it has been judged.
    async fn judged(&mut self) {
        self.witness_seq += 1;
        let (witness, now) = (&self.witness, self.now);
        let sentinel = locator::sign(witness, self.witness_seq, &[], now + HOUR, true).unwrap();
        self.put(self.witness_key.clone(), sentinel.clone()).await;
        eventually("the honest node holds the witness's sentinel", || async {
            (self.held(self.witness_key.clone()).await == Some(sentinel.clone())).then_some(())
        })
        .await;
    }
}

/// None of these may replace what the honest node holds (`good`).
async fn refuses_bad_records(
    ch: &mut Channel<'_>,
    victim: &Identity,
    mallory: &Identity,
    key: &RecordKey,
    good: &[u8],
) {
    let now = ch.now;
    let body = LocatorBody {
        pubkey: victim.verifying_key().to_bytes().to_vec(),
        seq: 20,
        addrs: vec![],
        expires_at: now + HOUR,
        online: true,
    };
    let bad_signature =
        locator::assemble(&body, mallory.sign(b"nope").to_bytes().to_vec()).unwrap();
    let other_key = locator::sign(mallory, 21, &[], now + HOUR, true).unwrap();
    let replay_older = locator::sign(victim, 5, &[], now + HOUR, true).unwrap();
    let far_future = locator::sign(victim, 22, &[], now + 48 * HOUR, true).unwrap();
    let mut oversized = locator::sign(victim, 23, &[], now + HOUR, true).unwrap();
    oversized.resize(MAX_RECORD_BYTES + 100, 0);
    let garbage = b"\xa1\x61x\xff not a record".to_vec();
    for (what, bad) in [
        ("a forged signature", bad_signature),
        ("another identity's record", other_key),
        ("an older seq", replay_older),
        ("a far-future expiry", far_future),
        ("an oversized record", oversized),
        ("garbage", garbage),
    ] {
        ch.put(key.clone(), bad).await;
        ch.judged().await;
        assert_eq!(
            ch.held(key.clone()).await,
            Some(good.to_vec()),
            "{what} replaced the held record"
        );
    }
    // A key that is not a locator key at all.
    let junk_key = RecordKey::new(b"/not/roost");
    ch.put(junk_key.clone(), good.to_vec()).await;
    ch.judged().await;
    assert_eq!(
        ch.held(junk_key).await,
        None,
        "a non-locator key was stored"
    );
}

/// A newer honest record replaces `good` (seq 10): the node kept serving;
/// replaying seq 10, or the victim's record under mallory's key, is refused.
async fn refuses_replays_and_foreign_keys(
    ch: &mut Channel<'_>,
    victim: &Identity,
    mallory: &Identity,
    key: &RecordKey,
    good: Vec<u8>,
) {
    // A newer honest record is accepted: the node kept serving.
    let newer = locator::sign(victim, 11, &[], ch.now + HOUR, false).unwrap();
    ch.put(key.clone(), newer.clone()).await;
    eventually("honest node stores the newer record", || async {
        (ch.held(key.clone()).await == Some(newer.clone())).then_some(())
    })
    .await;
    // Replaying the seq-10 record after seq 11 is refused too.
    ch.put(key.clone(), good).await;
    ch.judged().await;
    assert_eq!(
        ch.held(key.clone()).await,
        Some(newer.clone()),
        "a replay of seq 10 replaced seq 11"
    );
    // The victim's record under mallory's key.
    let mallory_key = record_key(&mallory.peer_id());
    ch.put(mallory_key.clone(), newer.clone()).await;
    ch.judged().await;
    assert_eq!(
        ch.held(mallory_key).await,
        None,
        "a record was stored under another identity's key"
    );
}
