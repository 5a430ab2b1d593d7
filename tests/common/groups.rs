//! Private groups between test nodes: a network of plain nodes to hold
//! mailboxes, joining a group, and waiting for what a member's log or
//! the mailboxes hold.

use std::collections::HashSet;

use libp2p::{Multiaddr, PeerId};
use roost::NodeHandle;

use super::{TestNode, eventually};

/// A seed and `n` plain nodes (mailbox holders), all up, and the seed's
/// address to bootstrap from.
pub async fn network(n: usize) -> (Vec<TestNode>, Multiaddr) {
    let seed = TestNode::start(&[]).await;
    let boot = seed.addr().await;
    let mut plain = vec![seed];
    for _ in 0..n {
        plain.push(TestNode::start(std::slice::from_ref(&boot)).await);
    }
    (plain, boot)
}

/// Waits until `node` has the invitation to the group `gid`, then accepts it.
pub async fn accept(node: &NodeHandle, gid: &str) {
    eventually("the invitation arrives", || async {
        node.group_list()
            .await
            .unwrap()
            .iter()
            .any(|g| g.id.to_string() == gid)
            .then_some(())
    })
    .await;
    node.group_join(gid).await.unwrap();
}

/// Waits until `node` is at `epoch` of `gid`; fails the test with `what`
/// after the deadline.
pub async fn at_epoch(node: &NodeHandle, gid: &str, epoch: u64, what: &str) {
    eventually(what, || async {
        node.group_list()
            .await
            .unwrap()
            .iter()
            .any(|g| g.id.to_string() == gid && g.epoch == epoch)
            .then_some(())
    })
    .await;
}

/// The texts of `node`'s log of `gid` that are messages (not changes).
pub async fn texts(node: &NodeHandle, gid: &str) -> Vec<String> {
    node.group_log(gid, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|l| !l.system)
        .map(|l| l.text)
        .collect()
}

/// Waits until `node`'s log of `gid` has a message `text`.
pub async fn has(node: &NodeHandle, gid: &str, text: &str) {
    eventually(&format!("{text:?} arrives"), || async {
        texts(node, gid)
            .await
            .iter()
            .any(|t| t == text)
            .then_some(())
    })
    .await;
}

/// Each of `senders` in turn sends `gid` one message, `message {i}` from
/// the i-th.
pub async fn one_message_each(senders: &[TestNode], gid: &str) {
    for (i, sender) in senders.iter().enumerate() {
        sender
            .handle
            .group_send(gid, &format!("message {i}"))
            .await
            .unwrap();
    }
}

/// Waits until the `holders` together hold `n` different items for
/// `whom` in their mailboxes; fails the test with `what` after the
/// deadline.
pub async fn mailboxes_hold(holders: &[&TestNode], whom: PeerId, n: usize, what: &str) {
    eventually(what, || async {
        let mut ids = HashSet::new();
        for p in holders {
            for env in p.handle.held_envelopes(whom).await.unwrap() {
                ids.insert(env.id);
            }
        }
        (ids.len() == n).then_some(())
    })
    .await;
}
