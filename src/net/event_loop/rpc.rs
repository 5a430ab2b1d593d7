//! Request-response events (mailboxes, presence) routed between the
//! swarm and the services: inbound requests out as [`NetEvent`]s, answers
//! to whoever waits for them.

use std::collections::HashMap;
use std::time::Instant;

use libp2p::PeerId;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::{Command, EventLoop, NetEvent};
use crate::net::ratelimit::RateLimiter;
use crate::wire::presence::PresenceRequest;

/// Answers awaited for our outbound requests of one request-response
/// protocol.
pub(super) type Pending<Resp> = HashMap<OutboundRequestId, oneshot::Sender<Result<Resp, String>>>;

/// Routes one request-response event: inbound requests become a
/// [`NetEvent`] for the services — unless the peer is over its rate, or the
/// services are behind (the channel is bounded); then the request is dropped
/// and the peer sees a failure it will retry. Answers and failures go to
/// whoever is waiting for them.
pub(super) fn route_rpc<Req, Resp>(
    event: request_response::Event<Req, Resp>,
    pending: &mut Pending<Resp>,
    limiter: &mut RateLimiter,
    events: &mpsc::Sender<NetEvent>,
    inbound: impl FnOnce(PeerId, Req, ResponseChannel<Resp>) -> NetEvent,
) {
    match event {
        request_response::Event::Message {
            peer,
            message:
                request_response::Message::Request {
                    request, channel, ..
                },
            ..
        } => {
            if !limiter.allow(peer, Instant::now()) {
                debug!(%peer, "over its request rate; dropping a request");
                return;
            }
            let busy = events.try_send(inbound(peer, request, channel)).is_err();
            if busy {
                debug!(%peer, "services busy; dropping a request");
            }
        }
        request_response::Event::Message {
            message:
                request_response::Message::Response {
                    request_id,
                    response,
                },
            ..
        } => {
            if let Some(reply) = pending.remove(&request_id) {
                let _ = reply.send(Ok(response));
            }
        }
        request_response::Event::OutboundFailure {
            peer,
            request_id,
            error,
            ..
        } => match pending.remove(&request_id) {
            Some(reply) => {
                let _ = reply.send(Err(error.to_string()));
            }
            None => debug!(%peer, "request not delivered: {error}"),
        },
        _ => {}
    }
}

impl EventLoop {
    /// Sends a request or an answer of the mailbox and presence protocols.
    pub(super) fn on_rpc_command(&mut self, cmd: Command) {
        match cmd {
            Command::Mailbox {
                peer,
                request,
                reply,
            } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .mailbox
                    .send_request(&peer, request);
                self.pending_mailbox.insert(id, reply);
            }
            Command::MailboxRespond { channel, response } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .mailbox
                    .send_response(channel, response);
            }
            Command::Presence {
                peer,
                request,
                reply,
            } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .presence
                    .send_request(&peer, request);
                self.pending_presence.insert(id, reply);
            }
            Command::Notify { to } => {
                let presence = &mut self.swarm.behaviour_mut().presence;
                for (peer, info) in to {
                    // No waiter: the answer is dropped, a failure logged.
                    presence.send_request(&peer, PresenceRequest::Notify(info));
                }
            }
            Command::PresenceRespond { channel, response } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .presence
                    .send_response(channel, response);
            }
            // `on_command` routes only the commands above here.
            _ => {}
        }
    }
}
