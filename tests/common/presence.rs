//! What a node shows for its buddies' presence, read through its own
//! buddy list (what the user sees), and waiting until that shows a status.

use libp2p::PeerId;
use roost::NodeHandle;
use roost::wire::presence::{PresenceInfo, Status};

use super::eventually;

/// What `who` currently shows for `buddy` (`offline` when not a buddy).
pub async fn seen(who: &NodeHandle, buddy: PeerId) -> PresenceInfo {
    who.buddies()
        .await
        .unwrap()
        .into_iter()
        .find(|b| b.peer == buddy)
        .map(|b| b.presence)
        .unwrap_or_else(PresenceInfo::offline)
}

/// Waits until `who` shows `buddy` with `status`; fails the test with
/// `what` after the deadline.
pub async fn sees(who: &NodeHandle, buddy: PeerId, status: Status, what: &str) {
    eventually(what, || async {
        (seen(who, buddy).await.status == status).then_some(())
    })
    .await;
}

/// `a` and `b` add each other (as `b_name` and `a_name`) and each sees
/// the other online.
pub async fn befriend(a: &NodeHandle, a_name: &str, b: &NodeHandle, b_name: &str) {
    a.add_buddy(b.peer_id(), b_name.into()).await.unwrap();
    b.add_buddy(a.peer_id(), a_name.into()).await.unwrap();
    sees(a, b.peer_id(), Status::Online, "a sees b online").await;
    sees(b, a.peer_id(), Status::Online, "b sees a online").await;
}
