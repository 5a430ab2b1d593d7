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
