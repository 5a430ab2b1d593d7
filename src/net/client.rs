//! [`NetClient`]: the cloneable handle to the network task.

use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use super::Command;
use crate::wire::locator::Locator;
use crate::wire::mailbox::{MailboxRequest, MailboxResponse};
use crate::wire::presence::{PresenceInfo, PresenceRequest, PresenceResponse};
use libp2p::request_response::ResponseChannel;

/// Longest a dial may take before we give up on it.
const DIAL_TIMEOUT: Duration = Duration::from_secs(20);

/// How often a dial still under way looks the peer up again. A dial of
/// the addresses of a stale record (the peer's previous run) can hang for
/// a transport's timeout — QUIC waits out its handshake on an address
/// that swallows packets, a relay tries a dead connection of the peer's
/// previous run — and every other dial of the peer waits for it. A newer
/// record found meanwhile gets a dial of its own beside it.
pub const REDIAL_AFTER: Duration = Duration::from_secs(1);

/// Why a request to the network task, or through it to a peer, failed.
/// The node maps each case onto its own error of the same name, so net
/// needs nothing from node.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The network task has shut down.
    #[error("the node is not running")]
    Stopped,
    /// No locator record for that ID in the DHT.
    #[error("{0} is not known to the network (no locator record found)")]
    NotFound(PeerId),
    /// The peer's last record says it left.
    #[error("{0} is offline")]
    Offline(PeerId),
    /// The peer could not be reached, or did not answer.
    #[error("cannot connect to {peer}: {reason}")]
    Dial {
        /// Whom we tried.
        peer: PeerId,
        /// Why it failed.
        reason: String,
    },
}

/// Sends [`Command`]s to the event loop and awaits the answers.
#[derive(Clone)]
pub struct NetClient {
    commands: mpsc::Sender<Command>,
}

impl NetClient {
    pub(crate) fn new(commands: mpsc::Sender<Command>) -> Self {
        Self { commands }
    }

    /// The command channel, for the methods in other modules (`pubsub`).
    pub(super) fn sender(&self) -> &mpsc::Sender<Command> {
        &self.commands
    }

    /// Asks the network task for something; its being gone means the
    /// node has stopped.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, RequestError> {
        crate::call::call(&self.commands, make)
            .await
            .map_err(|_| RequestError::Stopped)
    }

    /// Where this node listens, with the real ports.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, RequestError> {
        self.ask(|reply| Command::ListenAddrs { reply }).await
    }

    /// Peers we currently have a connection to.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, RequestError> {
        self.ask(|reply| Command::ConnectedPeers { reply }).await
    }

    /// The addresses our locator record would carry now.
    pub async fn public_addrs(&self) -> Result<Vec<Multiaddr>, RequestError> {
        self.ask(|reply| Command::PublicAddrs { reply }).await
    }

    /// Hands the network peers and addresses learnt outside the DHT (an
    /// invite), and has it dial `peer`; returns once the network task has
    /// them, not when the dial ends.
    pub async fn meet(
        &self,
        peer: PeerId,
        contacts: Vec<(PeerId, Multiaddr)>,
    ) -> Result<(), RequestError> {
        self.commands
            .send(Command::Meet { peer, contacts })
            .await
            .map_err(|_| RequestError::Stopped)
    }

    /// Our reachability, the relay reservations held, the open connections.
    pub async fn reach_status(&self) -> Result<super::ReachStatus, RequestError> {
        self.ask(|reply| Command::Reach { reply }).await
    }

    /// Looks up `peer`'s locator in the DHT; `None` if no valid record exists.
    pub async fn find(&self, peer: PeerId) -> Result<Option<Locator>, RequestError> {
        self.ask(|reply| Command::Find { peer, reply }).await
    }

    /// Connects to `peer`, found by its ID alone through the DHT: by its
    /// locator record, or where there is none yet, by the addresses our
    /// routing table knows (no lookup if a connection is already open).
    pub async fn dial(&self, peer: PeerId) -> Result<(), RequestError> {
        if self.connected_peers().await?.contains(&peer) {
            return Ok(());
        }
        let (addrs, seq) = match self.find(peer).await? {
            Some(loc) if !loc.online => return Err(RequestError::Offline(peer)),
            Some(loc) => (loc.addrs, Some(loc.seq)),
            // No record (a node that started a moment ago has not published
            // yet): try the addresses our routing table already knows.
            None => (Vec::new(), None),
        };
        let by_record = !addrs.is_empty();
        let reason = match self.dial_and_redial(peer, addrs, seq).await? {
            Ok(()) => return Ok(()),
            Err(reason) => reason,
        };
        if by_record {
            Err(RequestError::Dial { peer, reason })
        } else {
            Err(RequestError::NotFound(peer))
        }
    }

    /// Dials `peer` at `addrs` (from its record of `seq`, if any); while
    /// that dial is under way, looks the peer up every [`REDIAL_AFTER`]
    /// (counted from the end of the last lookup) and dials a newer
    /// record's addresses beside it, once; a newer record saying the peer
    /// left ends the dial with [`RequestError::Offline`]. A lookup runs
    /// beside the dials, never in their way: the first connection answers
    /// at once, as does the deadline; a failure answers once no dial is
    /// left.
    async fn dial_and_redial(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        seq: Option<u64>,
    ) -> Result<Result<(), String>, RequestError> {
        use futures::FutureExt;
        let deadline = tokio::time::Instant::now() + DIAL_TIMEOUT;
        let first = self.ask(|reply| Command::Dial {
            peer,
            addrs,
            alongside: false,
            reply,
        });
        tokio::pin!(first);
        let mut next_lookup = tokio::time::Instant::now() + REDIAL_AFTER;
        let lookup = futures::future::Fuse::terminated();
        tokio::pin!(lookup);
        let mut looking = false;
        let second = futures::future::Fuse::terminated();
        tokio::pin!(second);
        let mut redialled = false;
        let (mut first_failed, mut second_failed) = (None, None);
        loop {
            tokio::select! {
                res = &mut first, if first_failed.is_none() => match res? {
                    Ok(()) => return Ok(Ok(())),
                    Err(e) if !redialled => return Ok(Err(e)),
                    Err(e) => first_failed = Some(e),
                },
                res = &mut second, if redialled && second_failed.is_none() => match res? {
                    Ok(()) => return Ok(Ok(())),
                    Err(e) => second_failed = Some(e),
                },
                _ = tokio::time::sleep_until(next_lookup), if !redialled && !looking => {
                    looking = true;
                    lookup.set(self.find(peer).fuse());
                }
                found = &mut lookup, if looking => {
                    looking = false;
                    next_lookup = tokio::time::Instant::now() + REDIAL_AFTER;
                    match found? {
                        Some(loc) if Some(loc.seq) > seq && !loc.online => {
                            tracing::debug!(%peer, "a newer record says the peer left");
                            return Err(RequestError::Offline(peer));
                        }
                        Some(loc) if Some(loc.seq) > seq => {
                            tracing::debug!(%peer, "a newer record: dialling it too");
                            redialled = true;
                            second.set(
                                self.ask(move |reply| Command::Dial {
                                    peer,
                                    addrs: loc.addrs,
                                    alongside: true,
                                    reply,
                                })
                                .fuse(),
                            );
                        }
                        _ => {}
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return Ok(Err("timed out".into())),
            }
            if let (Some(_), Some(e)) = (&first_failed, &second_failed) {
                return Ok(Err(e.clone()));
            }
        }
    }

    /// Puts raw bytes as a DHT record at `peer`, bypassing our checks.
    #[cfg(feature = "test-util")]
    pub async fn put_record_to(
        &self,
        key: libp2p::kad::RecordKey,
        value: Vec<u8>,
        peer: PeerId,
    ) -> Result<(), RequestError> {
        self.ask(|reply| Command::PutRecordTo {
            key,
            value,
            peer,
            reply,
        })
        .await?
        .map_err(|reason| RequestError::Dial { peer, reason })
    }

    /// The DHT record held locally under `key`.
    #[cfg(feature = "test-util")]
    pub async fn held_record(
        &self,
        key: libp2p::kad::RecordKey,
    ) -> Result<Option<Vec<u8>>, RequestError> {
        self.ask(|reply| Command::HeldRecord { key, reply }).await
    }

    /// The peers closest to `key`, by an iterative DHT lookup.
    pub async fn closest_peers(&self, key: Vec<u8>) -> Result<Vec<PeerId>, RequestError> {
        self.ask(|reply| Command::ClosestPeers { key, reply }).await
    }

    /// Sends a mailbox request to `peer`.
    pub async fn mailbox(
        &self,
        peer: PeerId,
        request: MailboxRequest,
    ) -> Result<MailboxResponse, RequestError> {
        self.ask(|reply| Command::Mailbox {
            peer,
            request,
            reply,
        })
        .await?
        .map_err(|reason| RequestError::Dial { peer, reason })
    }

    /// Answers a mailbox request (fire and forget).
    pub async fn mailbox_respond(
        &self,
        channel: ResponseChannel<MailboxResponse>,
        response: MailboxResponse,
    ) {
        let _ = self
            .commands
            .send(Command::MailboxRespond { channel, response })
            .await;
    }

    /// Sends a presence request to `peer`.
    pub async fn presence(
        &self,
        peer: PeerId,
        request: PresenceRequest,
    ) -> Result<PresenceResponse, RequestError> {
        self.ask(|reply| Command::Presence {
            peer,
            request,
            reply,
        })
        .await?
        .map_err(|reason| RequestError::Dial { peer, reason })
    }

    /// Sends NOTIFYs to many subscribers with one command, not waiting for
    /// their answers: a fan-out to hundreds of watchers then costs one hop
    /// to the event loop, not a task and a round trip per watcher.
    pub async fn notify(&self, to: Vec<(PeerId, PresenceInfo)>) {
        let _ = self.commands.send(Command::Notify { to }).await;
    }

    /// Keeps the connections to exactly `peers` (our buddies) open past the
    /// idle timeout, so presence does not re-dial them at every timeout.
    pub async fn keep_alive(&self, peers: std::collections::HashSet<PeerId>) {
        let _ = self.commands.send(Command::KeepAlive { peers }).await;
    }

    /// Answers a presence request (fire and forget).
    pub async fn presence_respond(
        &self,
        channel: ResponseChannel<PresenceResponse>,
        response: PresenceResponse,
    ) {
        let _ = self
            .commands
            .send(Command::PresenceRespond { channel, response })
            .await;
    }
}
