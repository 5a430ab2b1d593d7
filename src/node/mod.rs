//! The node: [`Node::start`] brings one up and returns a [`NodeHandle`], the
//! cloneable client through which everything else (the API, the CLI's
//! daemon, tests, the demo) uses it. Protocol policy lives in small pure
//! state machines beside it ([`outbox`], [`presence`], [`mailbox`]).

pub mod content;
mod error;
pub mod files;
pub mod groups;
mod invite;
mod lifecycle;
pub mod mailbox;
pub mod messenger;
pub mod outbox;
pub mod presence;
pub mod rooms;
mod router;
mod services;
/// The presence task, by the path the messenger's requests name.
pub use presence::service as presence_service;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};

pub use content::{Content, ContentError};
pub use error::NodeError;
pub use messenger::Event;
pub use presence::{Own, OwnStatus};
pub use presence_service::{BuddyChange, BuddyView};

use crate::clock::unix_ms;
use crate::config::{Config, ensure_private_dir};
use crate::crypto::Sealer;
use crate::identity::Identity;
use crate::net::{self, EventLoop, NetClient};
use crate::store::{
    BuddyRequest, Direction, MessageState, Store, StoreError, StoredMessage, Worker,
};
use crate::wire::locator::Locator;
use crate::wire::message::{self as msg, Body, Inner, MessageId};
use lifecycle::{Stopped, Tasks};
use messenger::Request;

/// Subdirectory of the data dir holding the sled database.
pub const DB_DIR: &str = "db";
/// Capacity of the event stream; a listener that falls further behind
/// misses events (and is told so by `broadcast`).
const EVENT_CAPACITY: usize = 4096;

/// Sends a request carrying a reply channel to a task and awaits the
/// reply; the task being gone means the node has stopped.
pub(crate) async fn call<R, T>(
    to: &mpsc::Sender<R>,
    make: impl FnOnce(oneshot::Sender<T>) -> R,
) -> Result<T, NodeError> {
    crate::call::call(to, make)
        .await
        .map_err(|_| NodeError::Stopped)
}

/// Namespace for starting nodes.
pub struct Node;

impl Node {
    /// Starts a node from the identity and database in `config.data_dir`:
    /// listeners are up (their addresses known) when this returns, and the
    /// node is joining the network in the background; messages left in the
    /// outbox by an earlier run are being sent again.
    pub async fn start(config: Config) -> Result<NodeHandle, NodeError> {
        let bootstrap = invite::bootstrap(&config, unix_ms())?;
        ensure_private_dir(&config.data_dir)?;
        let identity = Identity::load_from(&config.data_dir)?;
        let db_dir = config.data_dir.join(DB_DIR);
        crate::config::check_owned(&db_dir)?;
        let store = Worker::open(db_dir, config.cache_bytes).await?;
        let (seq, known) = store
            .run(|s| Ok((s.locator_seq()?, s.known_peers(64)?)))
            .await?;
        // Should starting fail below, dropping this stops what has started.
        let tasks = Tasks::default();
        let stop_guard = tasks.drop_guard();

        let swarm = net::build_swarm(&identity, &config)?;
        let control = swarm.behaviour().stream.new_control();
        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let (net_tx, net_rx) = mpsc::channel(256);
        let mut event_loop = EventLoop::new(
            swarm,
            cmd_rx,
            net_tx,
            identity.clone(),
            store.clone(),
            &config,
            seq,
        );
        event_loop.start(&config.listen, &bootstrap, known).await?;
        let net = NetClient::new(cmd_tx);
        let sealer = Arc::new(Sealer::new(&identity));
        let services = services::Services::spawn(
            &config, &identity, &sealer, &store, &net, &control, net_rx, &tasks,
        )
        .await?;
        let net_stop = CancellationToken::new();
        let net_task = tokio::spawn(event_loop.run(net_stop.clone()));
        let stopped = lifecycle::supervise(tasks.clone(), net_stop, net_task, store);
        Ok(NodeHandle {
            inner: Arc::new(NodeInner {
                peer_id: identity.peer_id(),
                identity,
                net,
                messages: services.messages,
                presence: services.presence,
                rooms: services.rooms,
                sealer,
                groups: services.group_ctx,
                events: services.events,
                files: services.files,
                #[cfg(feature = "test-util")]
                control,
                last_sent_at: AtomicU64::new(0),
                tasks,
                stopped,
                _stop_guard: stop_guard,
            }),
        })
    }
}

struct NodeInner {
    peer_id: PeerId,
    /// Signs what this node hands out itself (invites).
    identity: Identity,
    net: NetClient,
    messages: mpsc::Sender<Request>,
    presence: mpsc::Sender<presence_service::Request>,
    /// The public rooms service (`rooms`).
    rooms: Arc<rooms::Rooms>,
    sealer: Arc<Sealer>,
    /// What group jobs need (identity, sealer, the fast path's settings).
    groups: Arc<groups::Ctx>,
    events: broadcast::Sender<Event>,
    /// The files service (`files/`).
    files: files::Files,
    /// Opens raw streams for [`NodeHandle::open_raw_stream`].
    #[cfg(feature = "test-util")]
    control: libp2p_stream::Control,
    last_sent_at: AtomicU64,
    /// The node's services and their stop token.
    tasks: Tasks,
    /// Resolves once the node has stopped and its database is closed.
    stopped: Stopped,
    /// Tells the services to stop when the last handle is dropped.
    _stop_guard: DropGuard,
}

/// Cloneable client of a running node. Dropping every clone shuts the node
/// down as [`NodeHandle::shutdown`] would (in the background: the
/// database is released once that is done; see `node/lifecycle.rs`).
#[derive(Clone)]
pub struct NodeHandle {
    inner: Arc<NodeInner>,
}

impl NodeHandle {
    /// This node's ID.
    pub fn peer_id(&self) -> PeerId {
        self.inner.peer_id
    }

    /// The network side, for lookups and dials.
    pub fn net(&self) -> &NetClient {
        &self.inner.net
    }

    /// Where this node listens, with the real ports.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NodeError> {
        Ok(self.inner.net.listen_addrs().await?)
    }

    /// Full dialable addresses (`…/p2p/<ID>`), to hand to others as
    /// `--bootstrap`.
    pub async fn dial_addrs(&self) -> Result<Vec<Multiaddr>, NodeError> {
        let id = self.peer_id();
        Ok(self
            .listen_addrs()
            .await?
            .into_iter()
            // A relay circuit listen address already ends in our ID.
            .map(|a| match a.iter().last() {
                Some(libp2p::multiaddr::Protocol::P2p(_)) => a,
                _ => a.with(libp2p::multiaddr::Protocol::P2p(id)),
            })
            .collect())
    }

    /// Our reachability, relay reservations and open connections.
    pub async fn reach_status(&self) -> Result<net::ReachStatus, NodeError> {
        Ok(self.inner.net.reach_status().await?)
    }

    /// Peers we currently have a connection to.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NodeError> {
        Ok(self.inner.net.connected_peers().await?)
    }

    /// Looks up `peer`'s locator in the DHT; `None` if no valid record exists.
    pub async fn find(&self, peer: PeerId) -> Result<Option<Locator>, NodeError> {
        Ok(self.inner.net.find(peer).await?)
    }

    /// Connects to `peer`, found by its ID alone through the DHT.
    pub async fn dial(&self, peer: PeerId) -> Result<(), NodeError> {
        Ok(self.inner.net.dial(peer).await?)
    }

    /// Sends a message. When this returns, the message is sealed and in the
    /// durable outbox (flushed): it survives a crash and leaves the outbox
    /// only when the recipient's node has accepted it (or refused it for
    /// good). Delivery happens in the background; watch [`Self::events`].
    pub async fn send(&self, to: PeerId, content: Content) -> Result<MessageId, NodeError> {
        Ok(self.send_many(to, vec![content]).await?[0])
    }

    /// Sends several messages with one flush of the outbox.
    pub async fn send_many(
        &self,
        to: PeerId,
        contents: Vec<Content>,
    ) -> Result<Vec<MessageId>, NodeError> {
        if to == self.peer_id() {
            return Err(NodeError::SelfSend);
        }
        let mut items = Vec::with_capacity(contents.len());
        for c in contents {
            c.validate()?;
            let id = MessageId::random();
            let sent_at = self.next_sent_at();
            let inner = Inner {
                from: self.peer_id().to_bytes(),
                sent_at,
                body: Body::Content {
                    content_type: c.content_type.clone(),
                    subject: c.subject.clone(),
                    data: c.data.clone(),
                },
            };
            let envelope = msg::seal(&self.inner.sealer, id, &to, &inner)?;
            let stored = StoredMessage {
                id,
                peer: to.to_bytes(),
                direction: Direction::Out,
                sent_at,
                stored_at: sent_at,
                content_type: c.content_type,
                subject: c.subject,
                data: c.data,
                state: MessageState::Queued,
                request: false,
            };
            items.push((stored, envelope));
        }
        let ids = items.iter().map(|(m, _)| m.id).collect();
        self.request(|reply| Request::Send { items, reply })
            .await??;
        Ok(ids)
    }

    /// The last `limit` messages exchanged with `peer`, both directions,
    /// ordered by sending time then id.
    pub async fn conversation(
        &self,
        peer: PeerId,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, NodeError> {
        self.read(move |s| s.conversation(&peer, limit)).await
    }

    /// Incoming messages from buddies.
    pub async fn inbox(&self) -> Result<Vec<StoredMessage>, NodeError> {
        self.read(|s| s.incoming(Some(false))).await
    }

    /// Incoming messages from keys that are not buddies.
    pub async fn requests(&self) -> Result<Vec<StoredMessage>, NodeError> {
        self.read(|s| s.incoming(Some(true))).await
    }

    /// Every incoming message, from buddies and strangers alike.
    pub async fn received(&self) -> Result<Vec<StoredMessage>, NodeError> {
        self.read(|s| s.incoming(None)).await
    }

    /// Marks the conversation with `peer` read and sends `peer` a read
    /// receipt; returns how many messages were newly read.
    pub async fn mark_read(&self, peer: PeerId) -> Result<usize, NodeError> {
        Ok(self
            .request(|reply| Request::MarkRead { peer, reply })
            .await??)
    }

    /// Adds `peer` to the buddy list under `name`: it may now see my
    /// presence, its messages are no longer requests, and it is sent a buddy
    /// request (through its mailbox if it is offline). Adding someone who
    /// added me is how a request is accepted.
    pub async fn add_buddy(&self, peer: PeerId, name: String) -> Result<(), NodeError> {
        if peer == self.peer_id() {
            return Err(NodeError::SelfSend);
        }
        if self.change_buddy(peer, BuddyChange::Add(name)).await? {
            let request = Request::Control {
                to: peer,
                body: Body::BuddyRequest,
            };
            self.inner
                .messages
                .send(request)
                .await
                .map_err(|_| NodeError::Stopped)?;
        }
        Ok(())
    }

    /// Changes one buddy entry (remove, rename, hide/show, block/unblock);
    /// permission changes reach that buddy at once. Returns whether the key
    /// became a buddy.
    pub async fn change_buddy(&self, peer: PeerId, change: BuddyChange) -> Result<bool, NodeError> {
        let change = |reply| presence_service::Request::Change {
            peer,
            change,
            reply,
        };
        let became = self.ask_presence(change).await??;
        // A block or an unblock changes whose gossip the fast path
        // forwards; no event tells its actor.
        self.inner.groups.refresh.notify_one();
        Ok(became)
    }

    /// Blocks `peer`: its messages and subscriptions are refused from now on.
    pub async fn block(&self, peer: PeerId) -> Result<(), NodeError> {
        self.change_buddy(peer, BuddyChange::Block(true))
            .await
            .map(|_| ())
    }

    /// The buddy list with each buddy's presence as last pushed to us.
    pub async fn buddies(&self) -> Result<Vec<BuddyView>, NodeError> {
        self.ask_presence(presence_service::Request::Buddies).await
    }

    /// Keys that added me and that I have not added (yet).
    pub async fn buddy_requests(&self) -> Result<Vec<BuddyRequest>, NodeError> {
        self.read(|s| s.buddy_requests()).await
    }

    /// Sets my presence; pushed at once to every buddy allowed to see it,
    /// and kept across restarts.
    pub async fn set_presence(&self, own: Own) -> Result<(), NodeError> {
        Ok(self
            .ask_presence(|reply| presence_service::Request::SetOwn { own, reply })
            .await??)
    }

    /// My presence as I set it.
    pub async fn presence(&self) -> Result<Own, NodeError> {
        self.ask_presence(presence_service::Request::Own).await
    }

    /// Records user activity (ends an automatic away).
    pub async fn touch(&self) {
        let _ = self
            .inner
            .presence
            .send(presence_service::Request::Activity)
            .await;
    }

    /// A buddy's ID from its name, or an ID given as text.
    pub async fn resolve(&self, name_or_id: &str) -> Result<PeerId, NodeError> {
        if let Ok(peer) = crate::identity::parse_id(name_or_id) {
            return Ok(peer);
        }
        let matches: Vec<PeerId> = self
            .buddies()
            .await?
            .into_iter()
            .filter(|b| b.name == name_or_id)
            .map(|b| b.peer)
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(NodeError::UnknownName(name_or_id.to_string())),
            _ => Err(NodeError::AmbiguousName(name_or_id.to_string())),
        }
    }

    async fn ask_presence<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> presence_service::Request,
    ) -> Result<T, NodeError> {
        call(&self.inner.presence, make).await
    }

    /// Messages waiting in the outbox.
    pub async fn outbox_len(&self) -> Result<usize, NodeError> {
        self.read(|s| s.outbox_len()).await
    }

    /// Mailbox items this node holds for others.
    pub async fn held_len(&self) -> Result<usize, NodeError> {
        self.read(|s| s.held_len()).await
    }

    /// Mailbox items this node holds for `recipient`.
    pub async fn held_for(&self, recipient: PeerId) -> Result<usize, NodeError> {
        self.read(move |s| Ok(s.held_for(&recipient)?.len())).await
    }

    /// How many times the node's database has been synced to disk
    /// ([`Store::sync_count`]): tests read it around an acknowledged write
    /// to prove the acknowledgement waited for an `fdatasync`.
    #[cfg(feature = "test-util")]
    pub async fn sync_count(&self) -> Result<u64, NodeError> {
        self.read(|s| Ok(s.sync_count())).await
    }

    /// The peers remembered for the next start, seen most recently first:
    /// tests check who gets in (only peers of lasting connections, see
    /// [`crate::net::lasting`]).
    #[cfg(feature = "test-util")]
    pub async fn known_peers(&self) -> Result<Vec<crate::store::KnownPeer>, NodeError> {
        self.read(|s| s.known_peers(usize::MAX)).await
    }

    /// Holds the mailbox holder's store worker until the guard is dropped,
    /// so a test can show that mailbox work stuck behind the disk does not
    /// hold up messaging.
    #[cfg(feature = "test-util")]
    pub async fn pause_mailbox_holder(&self) -> Result<messenger::MailboxPause, NodeError> {
        self.request(Request::PauseHolder).await
    }

    /// Sends `body` to `peer` the way a large group's catch-up question
    /// goes: over a direct link only, once, never deposited. Tests show
    /// where such a message ends when `peer` is up and when it is away.
    #[cfg(feature = "test-util")]
    pub async fn send_direct(
        &self,
        peer: PeerId,
        body: crate::wire::message::Body,
    ) -> Result<(), NodeError> {
        self.inner
            .messages
            .send(Request::Direct { to: peer, body })
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// How many messages the messaging service still tries to deliver
    /// (sending, waiting for a retry, or parked in mailboxes): tests see
    /// a message that ends rather than wait in the outbox.
    #[cfg(feature = "test-util")]
    pub async fn pending_messages(&self) -> Result<usize, NodeError> {
        self.request(Request::Pending).await
    }

    /// Where the undelivered messages to `peer` stand (attempt in flight,
    /// next retry, failures, mailbox parks) and its link's set-up: benches
    /// tell why a message has not arrived yet.
    #[cfg(feature = "test-util")]
    pub async fn outbox_attempts(&self, peer: PeerId) -> Result<messenger::Attempts, NodeError> {
        self.request(|reply| Request::Attempts(peer, reply)).await
    }

    /// How long until this node next fetches its own mailbox, and its
    /// poll interval now (backed off while fetches find nothing): benches
    /// tell when a deposited message will be picked up.
    #[cfg(feature = "test-util")]
    pub async fn next_fetch(
        &self,
    ) -> Result<(std::time::Duration, std::time::Duration), NodeError> {
        self.request(Request::NextFetch).await
    }

    /// How many message streams `peer` has open to this node now: tests
    /// open streams one at a time, each once the node has taken the last.
    #[cfg(feature = "test-util")]
    pub async fn message_streams(&self, peer: PeerId) -> Result<usize, NodeError> {
        self.request(|reply| Request::MessageStreams(peer, reply))
            .await
    }

    /// Holds the store thread — every write and read of the node — from
    /// when `started` is told until `release` is signalled or dropped:
    /// tests stand in for a slow disk with it.
    #[cfg(feature = "test-util")]
    pub async fn stall_store(
        &self,
        started: oneshot::Sender<()>,
        release: std::sync::mpsc::Receiver<()>,
    ) -> Result<(), NodeError> {
        self.read(move |_| {
            let _ = started.send(());
            let _ = release.recv();
            Ok(())
        })
        .await
    }

    /// New messages and state changes of our messages, as they happen.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Sending times strictly increase, so a burst of messages keeps its
    /// order in every history (which sorts by sending time).
    fn next_sent_at(&self) -> u64 {
        let now = unix_ms();
        let step = |prev: u64| Some(now.max(prev + 1));
        let prev = self
            .inner
            .last_sent_at
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, step)
            .unwrap_or(now);
        now.max(prev + 1)
    }

    /// Opens a raw stream to `peer` on `protocol`: lets tests play a
    /// hostile peer speaking our protocols badly.
    #[cfg(feature = "test-util")]
    pub async fn open_raw_stream(
        &self,
        peer: PeerId,
        protocol: libp2p::StreamProtocol,
    ) -> Result<libp2p::Stream, NodeError> {
        self.dial(peer).await?;
        self.inner
            .control
            .clone()
            .open_stream(peer, protocol)
            .await
            .map_err(|e| NodeError::Dial {
                peer,
                reason: e.to_string(),
            })
    }

    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, NodeError> {
        call(&self.inner.messages, make).await
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, NodeError> {
        let read = |tx: oneshot::Sender<Result<T, StoreError>>| {
            Request::Read(Box::new(move |s| {
                let _ = tx.send(f(s));
            }))
        };
        Ok(self.request(read).await??)
    }

    /// Leaves the network cleanly (watchers are told we are offline, an
    /// "offline" locator replaces ours) and waits until the node has
    /// stopped and its database is closed (the order is in `node/lifecycle.rs`).
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        self.inner.tasks.stop();
        self.inner.stopped.wait().await;
        Ok(())
    }
}
