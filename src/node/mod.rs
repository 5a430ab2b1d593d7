//! The node: [`Node::start`] brings one up and returns a [`NodeHandle`], the
//! cloneable client through which everything else (the API, the CLI's
//! daemon, tests, the demo) uses it. Protocol policy lives in small pure
//! state machines beside it ([`republish`]).

pub mod republish;

use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::{Config, ensure_private_dir};
use crate::identity::{Identity, IdentityError};
use crate::net::{self, Command, EventLoop, NetError};
use crate::store::{Store, StoreError};
use crate::wire::locator::Locator;

/// Subdirectory of the data dir holding the sled database.
pub const DB_DIR: &str = "db";
/// Longest a dial may take before we give up on it.
const DIAL_TIMEOUT: Duration = Duration::from_secs(20);

/// Errors a node reports to its users.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Problem with the key file.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Problem with the database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Problem with the network setup.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Problem with the data directory.
    #[error("data directory: {0}")]
    DataDir(std::io::Error),
    /// The node has shut down.
    #[error("the node is not running")]
    Stopped,
    /// No locator record for that ID in the DHT.
    #[error("{0} is not known to the network (no locator record found)")]
    NotFound(PeerId),
    /// The peer's last record says it left.
    #[error("{0} is offline")]
    Offline(PeerId),
    /// The peer could not be reached at its published addresses.
    #[error("cannot connect to {peer}: {reason}")]
    Dial {
        /// Whom we tried.
        peer: PeerId,
        /// Why it failed.
        reason: String,
    },
}

/// Namespace for starting nodes.
pub struct Node;

impl Node {
    /// Starts a node from the identity and database in `config.data_dir`:
    /// listeners are up (their addresses known) when this returns, and the
    /// node is joining the network in the background.
    pub async fn start(config: Config) -> Result<NodeHandle, NodeError> {
        ensure_private_dir(&config.data_dir).map_err(NodeError::DataDir)?;
        let identity = Identity::load_from(&config.data_dir)?;
        let db_dir = config.data_dir.join(DB_DIR);
        let cache = config.cache_bytes;
        let store = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let store = Store::open(&db_dir, cache)?;
            let seq = store.locator_seq()?;
            let known = store.known_peers(64)?;
            Ok((store, seq, known))
        })
        .await
        .map_err(|_| NodeError::Stopped)?;
        let (store, seq, known) = store?;

        let swarm = net::build_swarm(&identity, &config)?;
        let (tx, rx) = mpsc::channel(256);
        let mut event_loop = EventLoop::new(swarm, rx, identity.clone(), store, &config, seq);
        event_loop
            .start(&config.listen, &config.bootstrap, known)
            .await?;
        let task = tokio::spawn(event_loop.run());
        Ok(NodeHandle {
            inner: Arc::new(Inner {
                peer_id: identity.peer_id(),
                commands: tx,
                task: Mutex::new(Some(task)),
            }),
        })
    }
}

struct Inner {
    peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Cloneable client of a running node. Dropping every clone shuts the node
/// down as [`NodeHandle::shutdown`] would.
#[derive(Clone)]
pub struct NodeHandle {
    inner: Arc<Inner>,
}

impl NodeHandle {
    /// This node's ID.
    pub fn peer_id(&self) -> PeerId {
        self.inner.peer_id
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .commands
            .send(make(tx))
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Where this node listens, with the real ports.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NodeError> {
        self.ask(|reply| Command::ListenAddrs { reply }).await
    }

    /// Full dialable addresses (`…/p2p/<ID>`), to hand to others as
    /// `--bootstrap`.
    pub async fn dial_addrs(&self) -> Result<Vec<Multiaddr>, NodeError> {
        let id = self.peer_id();
        Ok(self
            .listen_addrs()
            .await?
            .into_iter()
            .map(|a| a.with(libp2p::multiaddr::Protocol::P2p(id)))
            .collect())
    }

    /// Peers we currently have a connection to.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NodeError> {
        self.ask(|reply| Command::ConnectedPeers { reply }).await
    }

    /// Looks up `peer`'s locator in the DHT; `None` if no valid record exists.
    pub async fn find(&self, peer: PeerId) -> Result<Option<Locator>, NodeError> {
        self.ask(|reply| Command::Find { peer, reply }).await
    }

    /// Connects to `peer`, found by its ID alone through the DHT.
    pub async fn dial(&self, peer: PeerId) -> Result<(), NodeError> {
        let loc = self.find(peer).await?.ok_or(NodeError::NotFound(peer))?;
        if !loc.online {
            return Err(NodeError::Offline(peer));
        }
        let dial = self.ask(|reply| Command::Dial {
            peer,
            addrs: loc.addrs,
            reply,
        });
        match tokio::time::timeout(DIAL_TIMEOUT, dial).await {
            Ok(res) => res?.map_err(|reason| NodeError::Dial { peer, reason }),
            Err(_) => Err(NodeError::Dial {
                peer,
                reason: "timed out".into(),
            }),
        }
    }

    /// Puts raw bytes as a DHT record at `peer` without any checks of ours:
    /// for tests that play a hostile node.
    #[doc(hidden)]
    pub async fn put_record_to(
        &self,
        key: libp2p::kad::RecordKey,
        value: Vec<u8>,
        peer: PeerId,
    ) -> Result<(), NodeError> {
        self.ask(|reply| Command::PutRecordTo {
            key,
            value,
            peer,
            reply,
        })
        .await?
        .map_err(|reason| NodeError::Dial { peer, reason })
    }

    /// The DHT record this node holds under `key`, if any.
    #[doc(hidden)]
    pub async fn held_record(
        &self,
        key: libp2p::kad::RecordKey,
    ) -> Result<Option<Vec<u8>>, NodeError> {
        self.ask(|reply| Command::HeldRecord { key, reply }).await
    }

    /// Leaves the network cleanly (an "offline" locator replaces ours) and
    /// waits until the node has stopped and its database is flushed.
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        // If the loop is already gone, the wait below still applies.
        let _ = self.ask(|reply| Command::Shutdown { reply }).await;
        if let Some(task) = self.inner.task.lock().await.take() {
            let _ = task.await;
        }
        Ok(())
    }
}
