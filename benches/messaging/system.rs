//! roost's own path: round trips and throughput between two nodes, and the
//! mailbox path (deposit with quorum, pickup after the sender left).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use libp2p::PeerId;
use roost::store::MessageState;
use roost::wire::message::MessageId;
use roost::{Content, Event, Identity, Node, NodeHandle};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::sync::broadcast::Receiver;

use crate::common::wait_until;
use crate::{Counts, LIMIT, WARMUP, bench_config, line, node, payload};

/// The full application path: sealed, authenticated, stored durably by the
/// recipient before it acknowledges, and B's answer too.
pub async fn roost_system(c: &Counts) {
    let root = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let seed = node(root.path(), "seed", &[]).await;
    let boot = seed.dial_addrs().await.unwrap();
    let a = node(root.path(), "a", &boot).await;
    let b = node(root.path(), "b", &boot).await;
    let (ida, idb) = (a.peer_id(), b.peer_id());
    // Connect: A knows only B's key; the first message finds B through the DHT.
    let mut a_events = a.events();
    let first = a.send(idb, Content::text(payload(0))).await.unwrap();
    delivered(&mut a_events, first).await;
    let connect = t0.elapsed();
    // Buddies both ways (once connected, so as not to change the figure
    // above): a stranger's messages are capped
    // (`store::MAX_REQUEST_MESSAGES_PER_STRANGER`) below what is sent here.
    a.add_buddy(idb, "b".into()).await.unwrap();
    b.add_buddy(ida, "a".into()).await.unwrap();
    let rtts = round_trips(&a, &b, &mut a_events, c.latency).await;
    let tp = throughput(&a, idb, &mut a_events, (c.throughput, c.window)).await;
    line("roost", connect, rtts, tp, c);
    for n in [&a, &b, &seed] {
        n.shutdown().await.unwrap();
    }
}

/// Waits for the event saying `id` was delivered.
async fn delivered(events: &mut Receiver<Event>, id: MessageId) {
    loop {
        if let Ok(Event::State {
            id: got,
            state: MessageState::Delivered,
            ..
        }) = events.recv().await
            && got == id
        {
            break;
        }
    }
}

/// `n` round trips (after [`WARMUP`]): A sends, B answers every message
/// from A with a message of its own.
async fn round_trips(
    a: &NodeHandle,
    b: &NodeHandle,
    a_events: &mut Receiver<Event>,
    n: usize,
) -> Vec<std::time::Duration> {
    let (ida, idb) = (a.peer_id(), b.peer_id());
    let responder = {
        let b = b.clone();
        let mut ev = b.events();
        tokio::spawn(async move {
            while let Ok(e) = ev.recv().await {
                if let Event::Message(m) = e
                    && m.peer_id() == Some(ida)
                {
                    let _ = b.send(ida, Content::text(payload(1))).await;
                }
            }
        })
    };
    let mut rtts = Vec::with_capacity(n);
    for i in 0..WARMUP + n {
        let t = Instant::now();
        a.send(idb, Content::text(payload(i))).await.unwrap();
        loop {
            if let Ok(Event::Message(m)) = a_events.recv().await
                && m.peer_id() == Some(idb)
            {
                break;
            }
        }
        if i >= WARMUP {
            rtts.push(t.elapsed());
        }
    }
    responder.abort();
    rtts
}

/// Messages per second from A to B, at most `window` unacknowledged
/// (not yet delivered). Only this part's own messages count: a late
/// `Delivered` of a round trip's message is no throughput.
async fn throughput(
    a: &NodeHandle,
    idb: PeerId,
    a_events: &mut Receiver<Event>,
    (n, window): (usize, usize),
) -> f64 {
    let window = Arc::new(Semaphore::new(window));
    let (ids_tx, mut ids_rx) = tokio::sync::mpsc::unbounded_channel();
    let t = Instant::now();
    let sender = {
        let (a, window) = (a.clone(), window.clone());
        tokio::spawn(async move {
            for i in 0..n {
                window.acquire().await.unwrap().forget();
                let (a, ids_tx) = (a.clone(), ids_tx.clone());
                tokio::spawn(async move {
                    let id = a.send(idb, Content::text(payload(i))).await.unwrap();
                    let _ = ids_tx.send(id);
                });
            }
        })
    };
    // A delivery may be reported before its send returns the id.
    let (mut ours, mut unclaimed) = (HashSet::new(), HashSet::new());
    let mut delivered = 0;
    while delivered < n {
        let counted = tokio::select! {
            Some(id) = ids_rx.recv() => claim(&mut unclaimed, &mut ours, id),
            ev = a_events.recv() => match ev {
                Ok(Event::State {
                    id,
                    state: MessageState::Delivered,
                    ..
                }) => claim(&mut ours, &mut unclaimed, id),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    panic!("event stream lagged by {n}")
                }
                _ => false,
            },
        };
        if counted {
            delivered += 1;
            window.add_permits(1);
        }
    }
    let tp = n as f64 / t.elapsed().as_secs_f64();
    sender.await.unwrap();
    tp
}

/// Whether `id` completes a pair: it is in `waiting` (taken out), or it
/// now waits in `other` for its partner.
fn claim(waiting: &mut HashSet<MessageId>, other: &mut HashSet<MessageId>, id: MessageId) -> bool {
    if waiting.remove(&id) {
        return true;
    }
    other.insert(id);
    false
}

/// Deposit with quorum, then pickup when the recipient connects after the
/// sender has left.
pub async fn mailbox(c: &Counts) {
    let root = tempfile::tempdir().unwrap();
    let seed = node(root.path(), "seed", &[]).await;
    let boot = seed.dial_addrs().await.unwrap();
    let mut holders = vec![seed];
    for i in 0..3 {
        holders.push(node(root.path(), &format!("h{i}"), &boot).await);
    }
    let a = node(root.path(), "a", &boot).await;
    let jack_dir = root.path().join("jack");
    let jack_id = Identity::create_in(&jack_dir).unwrap();
    let jack = jack_id.peer_id();
    // A is Jack's buddy (added while Jack is offline, straight in his
    // store): a stranger's messages are capped below what is sent here.
    {
        let db = jack_dir.join(roost::node::DB_DIR);
        let store = roost::store::Store::open(&db, 1 << 20).unwrap();
        store.add_buddy(&a.peer_id(), "a").unwrap();
    }
    wait_until("a connected", LIMIT, || async {
        a.connected_peers().await.unwrap().len() >= 3
    })
    .await;
    let t = Instant::now();
    let contents: Vec<Content> = (0..c.mailbox).map(|i| Content::text(payload(i))).collect();
    a.send_many(jack, contents).await.unwrap();
    wait_until("all stored", LIMIT, || async {
        let conv = a.conversation(jack, c.mailbox + 10).await.unwrap();
        conv.iter()
            .filter(|m| m.state == MessageState::Stored)
            .count()
            == c.mailbox
    })
    .await;
    let deposit = t.elapsed();
    // The sender is offline before the recipient starts, so only the
    // mailboxes can deliver.
    a.shutdown().await.unwrap();
    let t = Instant::now();
    let j = Node::start(bench_config(&jack_dir, &boot)).await.unwrap();
    wait_until("all picked up", LIMIT, || async {
        j.conversation(a.peer_id(), c.mailbox + 10)
            .await
            .unwrap()
            .len()
            == c.mailbox
    })
    .await;
    let pickup = t.elapsed();
    println!(
        "{}",
        json!({
            "system": "roost-mailbox",
            "messages": c.mailbox,
            "deposit_all_stored_ms": crate::common::ms(deposit),
            "pickup_ms": crate::common::ms(pickup),
            "note": "pickup = sender shut down, then recipient node started -> all messages stored locally",
        })
    );
    for n in holders.iter().chain([&j]) {
        n.shutdown().await.unwrap();
    }
}
