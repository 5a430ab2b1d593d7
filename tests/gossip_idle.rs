//! Connections close at the idle timeout once nothing uses them: between
//! two real nodes (127.0.0.1, mDNS off), one over which gossipsub has
//! spoken (the peer in none of our meshes), and one used only in its first
//! seconds (which the relay server's handler kept without a timer).

mod common;

use std::time::Duration;

use common::{eventually, start_with};
use libp2p::Multiaddr;
use roost::NodeHandle;

/// A node with a short idle timeout, bootstrapped from `boot`.
async fn start(boot: &[Multiaddr]) -> (tempfile::TempDir, NodeHandle) {
    let dir = tempfile::tempdir().expect("temp dir");
    roost::Identity::create_in(dir.path()).expect("identity");
    let node = start_with(&dir, boot, |c| c.idle_timeout = Duration::from_secs(2)).await;
    (dir, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_only_gossipsub_spoke_on_idles_out() {
    let (_da, a) = start(&[]).await;
    let boot = a.dial_addrs().await.expect("addrs");
    let (_db, b) = start(&boot).await;
    // B follows a room's topic and tells every peer so over gossipsub:
    // once A knows it, gossipsub's streams are open on the connection.
    let (room, _) = eventually("B creates a room", || async {
        b.room_create("beta").await.ok()
    })
    .await;
    let topic = room.topic();
    eventually("A hears B's subscription over gossipsub", || async {
        (a.gossip_topic_peers(topic.clone()).await.ok()? == 1).then_some(())
    })
    .await;
    // A follows no topic, so B is in none of A's meshes: nothing keeps
    // the connection but gossipsub's streams.
    eventually("the idle connection closes", || async {
        let peers = a.connected_peers().await.ok()?;
        (!peers.contains(&b.peer_id())).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_used_only_at_its_start_idles_out() {
    let (_da, a) = start(&[]).await;
    let boot = a.dial_addrs().await.expect("addrs");
    // B's start-up (identify, its bootstrap lookup through A) is the only
    // use the connection gets, all within its first seconds.
    let (_db, b) = start(&boot).await;
    eventually("A is connected to B", || async {
        let peers = a.connected_peers().await.ok()?;
        peers.contains(&b.peer_id()).then_some(())
    })
    .await;
    eventually("the connection closes", || async {
        let peers = a.connected_peers().await.ok()?;
        (!peers.contains(&b.peer_id())).then_some(())
    })
    .await;
}
