//! The one place network events fan out to the node's services.

use tokio::sync::mpsc;

use super::lifecycle::Tasks;
use super::messenger::Request;
use super::presence::service as presence_service;
use crate::net::{self, NetEvent};

/// Hands each network event to the service it concerns (a connection
/// opened or closed to both), until the services stop.
pub(super) async fn route_net_events(
    mut from: mpsc::Receiver<NetEvent>,
    to_msgs: mpsc::Sender<Request>,
    to_presence: mpsc::Sender<presence_service::Request>,
    to_rooms: mpsc::Sender<net::pubsub::RoomEvent>,
    tasks: Tasks,
) {
    use presence_service::Request as P;
    loop {
        let ev = tokio::select! {
            ev = from.recv() => ev,
            _ = tasks.stopping() => None,
        };
        let Some(ev) = ev else { break };
        let sent = match ev {
            NetEvent::Connected(peer) => {
                let _ = to_presence.send(P::Net(NetEvent::Connected(peer))).await;
                to_msgs
                    .send(Request::Net(NetEvent::Connected(peer)))
                    .await
                    .is_ok()
            }
            NetEvent::Disconnected(peer) => {
                let _ = to_presence.send(P::Net(NetEvent::Disconnected(peer))).await;
                to_msgs
                    .send(Request::Net(NetEvent::Disconnected(peer)))
                    .await
                    .is_ok()
            }
            ev @ NetEvent::PresenceRequest { .. } => to_presence.send(P::Net(ev)).await.is_ok(),
            // A private group's gossip never comes here: the network task
            // has it judged itself (`net::pubsub::GroupJudge`).
            NetEvent::Rooms(ev) => to_rooms.send(ev).await.is_ok(),
            ev => to_msgs.send(Request::Net(ev)).await.is_ok(),
        };
        if !sent {
            break;
        }
    }
}
