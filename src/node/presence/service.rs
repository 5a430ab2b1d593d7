//! The presence service: one task that drives the [`Publisher`] and
//! [`Watcher`] state machines with the network and the buddy list.
//!
//! Buddy-list changes go through this task (it keeps the list in memory for
//! the permission check of every notify), write through to the store, and
//! take effect at once: a buddy who is hidden, removed or blocked is told
//! `offline` immediately and gets no real state afterwards.
//!
//! When the node's services are told to stop, every watcher is told
//! `offline` (briefly awaited) before the task ends; the network is still
//! up then, as the node stops it only after its services have ended.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::warn;

use super::push::{self, Pushers};
use super::{Own, Permission, Publisher, SUBSCRIPTION, Watcher};
use crate::net::{NetClient, NetEvent};
use crate::node::Event;
use crate::node::lifecycle::Tasks;
use crate::store::{Buddy, StoreError, Worker};
use crate::wire::presence::{PresenceInfo, PresenceRequest, PresenceResponse};

/// A buddy as shown to the user: the entry and its last known presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuddyView {
    /// Its ID.
    pub peer: PeerId,
    /// My name for it.
    pub name: String,
    /// It sees me offline.
    pub hidden: bool,
    /// Everything from it is refused.
    pub blocked: bool,
    /// Its presence as last pushed to me (`offline` if unknown).
    pub presence: PresenceInfo,
}

/// A change to one buddy entry.
#[derive(Debug, Clone)]
pub enum BuddyChange {
    /// Add (or re-add, unblocking) under a name.
    Add(String),
    /// Remove from the list.
    Remove,
    /// New name.
    Rename(String),
    /// Hide (true) or show (false) my presence.
    Hide(bool),
    /// Block (true) or unblock (false).
    Block(bool),
}

pub(crate) enum Request {
    /// Returns whether the peer became a buddy (for the buddy request).
    Change {
        peer: PeerId,
        change: BuddyChange,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    SetOwn {
        own: Own,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Own(oneshot::Sender<Own>),
    Buddies(oneshot::Sender<Vec<BuddyView>>),
    Activity,
    /// `peer` just granted us its presence (its buddy request arrived):
    /// subscribe again now instead of waiting for the backoff.
    Retry(PeerId),
    Net(NetEvent),
}

enum Internal {
    Subscribed(PeerId, Option<PresenceResponse>),
}

struct Service {
    /// Ordered behind the node's other store jobs (and its reads).
    store: Worker,
    net: NetClient,
    events: broadcast::Sender<Event>,
    publisher: Publisher,
    /// Carries the publisher's changes to its subscribers.
    pushers: Pushers,
    watcher: Watcher,
    buddies: HashMap<PeerId, Buddy>,
    int_tx: mpsc::Sender<Internal>,
    /// The buddies whose connections the event loop keeps open, latest
    /// set only, forwarded in order by [`forward_kept`].
    kept: tokio::sync::watch::Sender<HashSet<PeerId>>,
}

/// Loads the buddy list and my presence, and starts the service, with
/// `control` to push our changes on and `incoming`, the push streams
/// publishers open to us.
pub(crate) async fn spawn(
    store: Worker,
    net: NetClient,
    (control, incoming): (libp2p_stream::Control, libp2p_stream::IncomingStreams),
    events: broadcast::Sender<Event>,
    auto_away: Option<Duration>,
    tasks: &Tasks,
) -> Result<mpsc::Sender<Request>, StoreError> {
    let (list, own) = store.run(|s| Ok((s.buddies()?, s.own_presence()?))).await?;
    let now = Instant::now();
    let mut watcher = Watcher::new();
    let mut buddies = HashMap::new();
    for b in list {
        if let Some(p) = b.peer_id() {
            if !b.blocked {
                watcher.add(p, now);
            }
            buddies.insert(p, b);
        }
    }
    let (tx, rx) = mpsc::channel(256);
    let (int_tx, int_rx) = mpsc::channel(256);
    let (kept, kept_rx) = tokio::sync::watch::channel(HashSet::new());
    tasks.spawn(forward_kept(kept_rx, net.clone()));
    // Not waited for at shutdown beyond the services' stop: the streams
    // end only when the network does, which is stopped after the services.
    let (pushed_tx, pushed) = mpsc::channel(256);
    let (watched, stop) = (kept.subscribe(), tasks.clone());
    tasks.spawn(async move {
        tokio::select! {
            () = push::accept(incoming, watched, pushed_tx) => {}
            () = stop.stopping() => {}
        }
    });
    let service = Service {
        store,
        pushers: Pushers::new(control, net.clone()),
        net,
        events,
        publisher: Publisher::new(own.unwrap_or_default(), auto_away, now),
        watcher,
        buddies,
        int_tx,
        kept,
    };
    service.keep_buddies();
    tasks.spawn(service.run(rx, int_rx, pushed, tasks.clone()));
    Ok(tx)
}

/// Hands the event loop each new set of buddies to keep connected, in
/// order and only the latest (the service itself must not wait on the
/// bounded command channel); ends with the service.
async fn forward_kept(mut rx: tokio::sync::watch::Receiver<HashSet<PeerId>>, net: NetClient) {
    while rx.changed().await.is_ok() {
        let peers = rx.borrow_and_update().clone();
        net.keep_alive(peers).await;
    }
}

/// What `peer` may see of our presence: a free function so a borrow of the
/// buddy list alone suffices.
fn permission(buddies: &HashMap<PeerId, Buddy>, peer: &PeerId) -> Permission {
    match buddies.get(peer) {
        Some(b) if b.blocked => Permission::Denied,
        Some(b) if b.hidden => Permission::Hidden,
        Some(_) => Permission::Allowed,
        None => Permission::Denied,
    }
}

impl Service {
    async fn run(
        mut self,
        mut requests: mpsc::Receiver<Request>,
        mut internal: mpsc::Receiver<Internal>,
        mut pushed: mpsc::Receiver<push::Pushed>,
        tasks: Tasks,
    ) {
        loop {
            let now = Instant::now();
            let subscribers = self.publisher.subscriber_count();
            if self.publisher.tick(now) {
                self.notify_all();
            }
            if self.publisher.subscriber_count() != subscribers {
                self.forget_gone();
            }
            for peer in self.watcher.due(now) {
                self.subscribe(peer);
            }
            let wake = [self.publisher.next_deadline(), self.watcher.next_deadline()]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now + Duration::from_secs(3600));
            tokio::select! {
                Some(req) = requests.recv() => self.on_request(req).await,
                _ = tasks.stopping() => {
                    self.leave().await;
                    return;
                }
                Some(Internal::Subscribed(peer, answer)) = internal.recv() => {
                    self.on_subscribed(peer, answer);
                }
                Some((peer, info)) = pushed.recv() => self.notified(peer, info),
                _ = tokio::time::sleep_until(wake.into()) => {
                    crate::net::stats::count(crate::net::stats::Kind::TimerPresence);
                }
            }
        }
    }

    /// Keeps the connections to our (unblocked) buddies open: presence
    /// lives on them, and letting them close at the idle timeout made both
    /// sides re-dial and re-subscribe at every idle timeout.
    fn keep_buddies(&self) {
        let peers = self
            .buddies
            .iter()
            .filter(|(_, b)| !b.blocked)
            .map(|(p, _)| *p)
            .collect();
        self.kept.send_replace(peers);
    }

    fn permission(&self, peer: &PeerId) -> Permission {
        permission(&self.buddies, peer)
    }

    /// Hands each subscriber's state to its pusher (the service never
    /// waits on the network).
    fn send_notifies(&mut self, to: Vec<(PeerId, PresenceInfo)>) {
        self.pushers.push(to);
    }

    /// Ends the pushers of watchers whose subscription has ended (expired,
    /// dropped, or no longer permitted).
    fn forget_gone(&mut self) {
        let publisher = &self.publisher;
        self.pushers.retain(|p| publisher.is_subscribed(p));
    }

    fn notify_all(&mut self) {
        // Disjoint fields: the check reads `buddies` while the publisher
        // is borrowed mutably, with no copy of the permissions per change.
        let buddies = &self.buddies;
        let to = self.publisher.notifications(|p| permission(buddies, p));
        self.send_notifies(to);
        self.forget_gone();
    }

    fn subscribe(&self, peer: PeerId) {
        let (net, int_tx) = (self.net.clone(), self.int_tx.clone());
        tokio::spawn(async move {
            let answer = async {
                net.dial(peer).await.ok()?;
                let req = PresenceRequest::Subscribe {
                    expires_secs: SUBSCRIPTION.as_secs() as u32,
                };
                net.presence(peer, req).await.ok()
            }
            .await;
            let _ = int_tx.send(Internal::Subscribed(peer, answer)).await;
        });
    }

    fn on_subscribed(&mut self, peer: PeerId, answer: Option<PresenceResponse>) {
        let now = Instant::now();
        let changed = match answer {
            Some(PresenceResponse::State(info)) if info.is_within_limits() => {
                self.watcher.subscribed(&peer, info, now)
            }
            _ => self.watcher.failed(&peer, now),
        };
        if let Some(info) = changed {
            let _ = self.events.send(Event::Presence { peer, info });
        }
    }

    async fn on_request(&mut self, req: Request) {
        match req {
            Request::Change {
                peer,
                change,
                reply,
            } => {
                let _ = reply.send(self.change(peer, change).await);
            }
            Request::SetOwn { own, reply } => {
                // Watchers hear of the change at once, not after the disk
                // write (a flush) that keeps it across a restart; the
                // caller's answer waits for that write, off this task. A
                // write that fails is reported to the caller, and the
                // state holds until the node restarts.
                let saved = own.clone();
                let written = self.store.submit(move |s| s.set_own_presence(&saved));
                self.publisher.set_own(own, Instant::now());
                self.notify_all();
                tokio::spawn(async move {
                    let res = written
                        .await
                        .unwrap_or_else(|_| Err(StoreError::Failed("store worker closed".into())));
                    let _ = reply.send(res);
                });
            }
            Request::Own(reply) => {
                let _ = reply.send(self.publisher.own().clone());
            }
            Request::Buddies(reply) => {
                let mut list: Vec<BuddyView> = self
                    .buddies
                    .iter()
                    .map(|(peer, b)| BuddyView {
                        peer: *peer,
                        name: b.name.clone(),
                        hidden: b.hidden,
                        blocked: b.blocked,
                        presence: self.watcher.view(peer),
                    })
                    .collect();
                list.sort_by(|a, b| a.name.cmp(&b.name).then(a.peer.cmp(&b.peer)));
                let _ = reply.send(list);
            }
            Request::Activity => {
                if self.publisher.activity(Instant::now()) {
                    self.notify_all();
                }
            }
            Request::Retry(peer) => self.watcher.granted(&peer, Instant::now()),
            Request::Net(ev) => self.on_net(ev).await,
        }
    }

    async fn on_net(&mut self, ev: NetEvent) {
        let now = Instant::now();
        match ev {
            NetEvent::Connected(peer) => self.watcher.connected(&peer, now),
            NetEvent::Disconnected(peer) => {
                self.publisher.unsubscribe(&peer);
                self.forget_gone();
                self.watcher.disconnected(&peer, now);
            }
            NetEvent::PresenceRequest {
                peer,
                request,
                channel,
            } => {
                let response = match request {
                    PresenceRequest::Subscribe { expires_secs } => {
                        let expires = Duration::from_secs(u64::from(expires_secs));
                        match self
                            .publisher
                            .subscribe(peer, self.permission(&peer), expires, now)
                        {
                            Some(info) => {
                                self.pushers.open(peer);
                                PresenceResponse::State(info)
                            }
                            None => PresenceResponse::Rejected,
                        }
                    }
                    PresenceRequest::Unsubscribe => {
                        self.publisher.unsubscribe(&peer);
                        self.forget_gone();
                        PresenceResponse::Ok
                    }
                    PresenceRequest::Notify(info) => {
                        self.notified(peer, info);
                        PresenceResponse::Ok
                    }
                };
                self.net.presence_respond(channel, response).await;
            }
            _ => {}
        }
    }

    /// A publisher's new state, pushed or as a NOTIFY request: taken only
    /// from buddies we watch, and only well-formed.
    fn notified(&mut self, peer: PeerId, info: PresenceInfo) {
        if self.watcher.watches(&peer)
            && info.is_within_limits()
            && let Some(info) = self.watcher.notified(&peer, info)
        {
            let _ = self.events.send(Event::Presence { peer, info });
        }
    }

    async fn change(&mut self, peer: PeerId, change: BuddyChange) -> Result<bool, StoreError> {
        let now = Instant::now();
        let (entry, became_buddy) = match change {
            BuddyChange::Add(name) => {
                let (entry, new) = self
                    .store
                    .run(move |s| {
                        let new = s.add_buddy(&peer, &name)?;
                        Ok((s.buddy(&peer)?, new))
                    })
                    .await?;
                self.watcher.add(peer, now);
                (entry, new)
            }
            BuddyChange::Remove => {
                self.store.run(move |s| s.remove_buddy(&peer)).await?;
                self.watcher.remove(&peer);
                (None, false)
            }
            BuddyChange::Block(true) => {
                let entry = self
                    .store
                    .run(move |s| {
                        s.block(&peer)?;
                        s.buddy(&peer)
                    })
                    .await?;
                self.watcher.remove(&peer);
                (entry, false)
            }
            other => {
                let b = self
                    .store
                    .run(move |s| {
                        s.update_buddy(&peer, |b| match other {
                            BuddyChange::Rename(n) => b.name = n,
                            BuddyChange::Hide(h) => b.hidden = h,
                            BuddyChange::Block(false) => b.blocked = false,
                            _ => {}
                        })
                    })
                    .await?;
                if b.as_ref().is_some_and(|b| !b.blocked) {
                    self.watcher.add(peer, now);
                }
                (b, false)
            }
        };
        match entry {
            Some(b) => self.buddies.insert(peer, b),
            None => self.buddies.remove(&peer),
        };
        self.keep_buddies();
        // The permission of this one watcher changed: tell it at once.
        if let Some(info) = self
            .publisher
            .notification_for(&peer, self.permission(&peer))
        {
            self.send_notifies(vec![(peer, info)]);
            self.forget_gone();
        }
        Ok(became_buddy)
    }

    /// Clean shutdown: every watcher is told `offline` (briefly awaited).
    async fn leave(&mut self) {
        // The pushers stop first, so that no state they still carry can
        // arrive after the `offline`, which goes as a request: its answer
        // says the watcher has it before the network stops.
        self.pushers.stop();
        let notes = self.publisher.notifications(|_| Permission::Hidden);
        let sends = notes
            .into_iter()
            .map(|(peer, info)| self.net.presence(peer, PresenceRequest::Notify(info)));
        if tokio::time::timeout(Duration::from_secs(2), futures::future::join_all(sends))
            .await
            .is_err()
        {
            warn!("not every watcher heard that we are leaving");
        }
    }
}
