//! The large-group fast path's actor: follows the topics of the large
//! groups this node is in, has what gossip brings judged in the network
//! task with the members it keeps in memory ([`Judge`], [`fast::judge`]),
//! which tells gossipsub at once and files it through the same store job
//! as a 1:1 copy ([`fast::take_gossip`]),
//! asks members it sees on a topic for what it missed ([`sync`]), and
//! dials a few members when it sees too few on a topic. Every rule is in
//! [`fast`] and [`sync`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use libp2p::PeerId;
use libp2p::gossipsub::MessageAcceptance;
use tokio::sync::{broadcast, mpsc};
use tracing::debug;

use super::fast::{self, GossipVerdict};
use super::fast_limits::{self, DialBackoff, FilingSlot, GossipGate, MAX_DIALS_PER_ROUND};
use super::sync::{self, SyncPlan};
use super::{Ctx, GroupEvent};
use crate::clock::unix_ms;
use crate::net::NetClient;
use crate::net::pubsub::GroupJudge;
use crate::node::Event;
use crate::node::lifecycle::Tasks;
use crate::node::messenger::Request;
use crate::store::{Flush, Worker};
use crate::wire::group::GroupId;
use crate::wire::message::Body;

/// How often the topics and their meshes are looked after, while a
/// large group is ours.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// How long a dial may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// What the store job of a gossip message reports back.
struct Filed {
    /// Its slot among the messages being filed, given back when dropped.
    _slot: FilingSlot,
    from: PeerId,
    verdict: GossipVerdict,
    events: Vec<GroupEvent>,
}

struct Service {
    ctx: Arc<Ctx>,
    net: NetClient,
    store: Worker,
    messages: mpsc::Sender<Request>,
    events: broadcast::Sender<Event>,
    /// The topics we follow, with the group and epoch of each.
    topics: HashMap<String, (GroupId, u64)>,
    /// Who may speak on them: the [`Judge`] judges gossip with these.
    speakers: Arc<RwLock<fast::Speakers>>,
    /// Some large group wants following: the upkeep runs.
    following: bool,
    /// The last read of the groups, or a subscription, failed: the next
    /// upkeep reads them again ([`fast::refresh_due`]).
    failed: bool,
    /// When a followed previous epoch's grace ends ([`fast::grace_end`]).
    grace_end: Option<u64>,
    /// When each followed epoch is next caught up.
    sync: SyncPlan,
    round: u64,
    /// Members not to dial yet after a failed dial.
    backoff: Arc<Mutex<DialBackoff>>,
    /// A round of dials is running.
    dialling: Arc<AtomicBool>,
}

/// Starts the fast path's actor; gossip on group topics is judged by the
/// [`Judge`] it installs in the network task.
pub(crate) fn spawn(
    ctx: Arc<Ctx>,
    net: NetClient,
    store: Worker,
    messages: mpsc::Sender<Request>,
    events: broadcast::Sender<Event>,
    tasks: &Tasks,
) {
    let every = ctx.fast.sync_every;
    let svc = Service {
        ctx,
        net,
        store,
        messages,
        events,
        topics: HashMap::new(),
        speakers: Default::default(),
        following: false,
        failed: false,
        grace_end: None,
        sync: SyncPlan::new(every),
        round: 0,
        backoff: Arc::default(),
        dialling: Arc::default(),
    };
    tasks.spawn(svc.run(tasks.clone()));
}

impl Service {
    async fn run(mut self, tasks: Tasks) {
        let (filed_tx, mut filed_rx) = mpsc::unbounded_channel::<Filed>();
        let mut judge = Judge {
            ctx: self.ctx.clone(),
            store: self.store.clone(),
            speakers: self.speakers.clone(),
            gate: GossipGate::default(),
            filing: Arc::default(),
            filed: filed_tx,
        };
        // Before any topic is followed (commands are taken in order).
        let installed = GroupJudge(Box::new(move |from, topic, data| {
            judge.judge(from, topic, data)
        }));
        if self.net.judge_groups(installed).await.is_err() {
            return;
        }
        let mut group_events = self.events.subscribe();
        // The upkeep runs only while a large group is ours: a node in none
        // does not wake for it.
        let mut upkeep = tokio::time::interval(UPKEEP_EVERY);
        upkeep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut refresh = true;
        loop {
            if std::mem::take(&mut refresh) {
                self.follow_topics().await;
            }
            tokio::select! {
                Some(f) = filed_rx.recv() => self.on_filed(f),
                ev = group_events.recv() => {
                    // A state taken or an invitation: the topics may change.
                    refresh = matches!(
                        ev,
                        Ok(Event::Group(GroupEvent::Change { .. } | GroupEvent::Invitation { .. }))
                            | Err(broadcast::error::RecvError::Lagged(_))
                    );
                }
                _ = self.ctx.refresh.notified() => refresh = true,
                _ = upkeep.tick(), if self.following => {
                    self.round += 1;
                    if fast::refresh_due(self.failed, self.grace_end, unix_ms()) {
                        self.follow_topics().await;
                    }
                    self.meet_members(&tasks);
                    self.catch_up().await;
                }
                _ = tasks.stopping() => break,
            }
        }
    }

    /// Subscribes to the topics we should follow and leaves the others.
    async fn follow_topics(&mut self) {
        let (cfg, ctx) = (self.ctx.fast, self.ctx.clone());
        let wanted = match self
            .store
            .run(move |s| {
                let groups = s.groups()?;
                let now = unix_ms();
                let wanted = fast::wanted_topics(&groups, &ctx.states, &cfg, now);
                let blocked = s.blocked()?.into_iter().collect();
                let speakers = fast::speakers(&groups, &ctx.states, &wanted, blocked);
                Ok((wanted, speakers, fast::grace_end(&groups, now)))
            })
            .await
        {
            Ok((w, speakers, grace_end)) => {
                // The old ones are dropped after the lock is released.
                let _old = std::mem::replace(
                    &mut *self.speakers.write().unwrap_or_else(|e| e.into_inner()),
                    speakers,
                );
                self.grace_end = grace_end;
                w
            }
            Err(e) => {
                debug!("cannot read the groups: {e}");
                // Read again at the next upkeep.
                (self.following, self.failed) = (true, true);
                return;
            }
        };
        self.failed = false;
        for t in self.topics.keys() {
            if !wanted.contains_key(t) {
                let _ = self.net.unsubscribe(t.clone()).await;
            }
        }
        let mut subscribed = HashSet::new();
        for t in wanted.keys().filter(|t| !self.topics.contains_key(*t)) {
            match self.net.subscribe(t.clone()).await {
                Ok(Ok(())) => {
                    subscribed.insert(t.clone());
                }
                failed => {
                    debug!("cannot follow a group topic: {failed:?}");
                    self.failed = true;
                }
            }
        }
        self.following = !wanted.is_empty();
        self.topics = fast::followed_after(wanted, &self.topics, &subscribed);
        self.sync
            .follow(self.topics.values().copied(), std::time::Instant::now());
    }

    /// Asks, for each followed epoch due a catch-up, one or two members
    /// of that epoch we see on any of the group's topics what they have
    /// that we lack (the previous epoch's topic empties once the others'
    /// grace is over; its members are on the current one). Only roster
    /// members are asked: anyone connected to us may follow a topic, and
    /// a question names the group. An epoch with nobody to ask stays due
    /// for the next round.
    async fn catch_up(&mut self) {
        let now = std::time::Instant::now();
        let me = self.ctx.sealer.me();
        for (group, epoch) in self.sync.due(now) {
            // Who follows the group's topics, first: with nobody there the
            // question is not worth reading the epoch's log for.
            let topics: Vec<String> = self
                .topics
                .iter()
                .filter(|(_, (g, _))| *g == group)
                .map(|(t, _)| t.clone())
                .collect();
            let mut there = Vec::new();
            for t in topics {
                for p in self.net.topic_peers(t).await.unwrap_or_default() {
                    if p != me && !there.contains(&p) {
                        there.push(p);
                    }
                }
            }
            if there.is_empty() {
                continue;
            }
            let round = self.sync.round((group, epoch));
            let ctx = self.ctx.clone();
            let ask = match self
                .store
                .run(move |s| super::sync_jobs::ask(s, &ctx, &group, epoch, round))
                .await
            {
                Ok(Some(a)) => a,
                Ok(None) => continue,
                Err(e) => {
                    debug!("cannot read what we have of a group: {e}");
                    continue;
                }
            };
            let seen: Vec<_> = there
                .into_iter()
                .filter(|p| ask.members.contains(p))
                .collect();
            let asked = sync::pick_asked(&seen, &me, self.round);
            if asked.is_empty() {
                continue;
            }
            self.sync.asked((group, epoch), now);
            for to in asked {
                let body = Body::Group(ask.bytes.clone());
                if self
                    .messages
                    .send(Request::Direct { to, body })
                    .await
                    .is_err()
                {
                    return;
                }
                // Counted once queued: a test that sees the count and then
                // asks the messaging service what is pending is answered
                // after the question is in its outbox.
                self.ctx.asks.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    /// Starts a round of dials in the background, unless the last one
    /// still runs: for each group whose newest topic has few members seen,
    /// a few roster members not waiting out a failed dial
    /// ([`DialBackoff`]), at most [`MAX_DIALS_PER_ROUND`] in all. The round
    /// runs on the node's tasks and ends with it.
    fn meet_members(&self, tasks: &Tasks) {
        if self.dialling.swap(true, Ordering::AcqRel) {
            return;
        }
        let round = Round {
            groups: fast_limits::current_topics(&self.topics),
            net: self.net.clone(),
            store: self.store.clone(),
            me: self.ctx.sealer.me(),
            round: self.round,
            backoff: self.backoff.clone(),
        };
        let (busy, stop) = (self.dialling.clone(), tasks.clone());
        tasks.spawn(async move {
            tokio::select! {
                _ = round.run() => {}
                _ = stop.stopping() => {}
            }
            busy.store(false, Ordering::Release);
        });
    }

    /// A gossip message went through its store job: listeners are told
    /// at once. Its rows reach the disk with sled's own flusher (every
    /// 10 s) or any earlier flush ([`Flush::Background`]), not before the
    /// event: nobody else relies on them (no receipt goes back to the
    /// sender for gossip), and a line lost to a crash in that window comes
    /// back from the members at the next catch-up, as any line missed
    /// does. Waiting for a flush of its own put a sync of every member's
    /// disk on the way of every large group's message, and a write-out of
    /// its own (`store::worker::LAZY`) an `fsync` per member and message
    /// after it.
    fn on_filed(&mut self, f: Filed) {
        match f.verdict {
            GossipVerdict::Took => {
                for e in f.events {
                    let _ = self.events.send(Event::Group(e));
                }
            }
            // Forwarded already: the stored rows said otherwise than the
            // speakers kept in memory (a change taken in between).
            GossipVerdict::Ignore => {}
            GossipVerdict::Reject(e) => debug!(from = %f.from, "group gossip not filed: {e}"),
        }
    }
}

/// The verdict on the large groups' gossip, given in the network task as
/// gossipsub hands each message over ([`GroupJudge`]): checked only while
/// its forwarder is within its share, judged with the speakers the actor
/// keeps ([`fast::judge`]), admitted per author and while few are being
/// filed ([`GossipGate`]), then handed to the store
/// to be filed; the actor hears of it once filed ([`Service::on_filed`]).
/// Judged in the actor instead, each hop of a message waited for two more
/// tasks to be scheduled (the router's and the actor's) and the verdict's
/// way back, behind every other node's work in a busy process.
struct Judge {
    ctx: Arc<Ctx>,
    store: Worker,
    speakers: Arc<RwLock<fast::Speakers>>,
    /// Which gossip messages are checked (per forwarder) and filed (per
    /// author and in all).
    gate: GossipGate,
    /// How many are being filed: each holds a [`FilingSlot`] until its
    /// store job has reported.
    filing: Arc<AtomicUsize>,
    filed: mpsc::UnboundedSender<Filed>,
}

impl Judge {
    fn judge(&mut self, from: PeerId, topic: String, data: Vec<u8>) -> MessageAcceptance {
        // Forwarded once judged; filed after (see `fast::Speakers`). A
        // forwarder past its share is not checked at all: a check is a
        // signature's, on the network task. The per-author gate counts
        // authors by the signature judged, so nobody spends another
        // member's share.
        let now = std::time::Instant::now();
        if !self.gate.check(from, now) {
            return MessageAcceptance::Ignore;
        }
        let speakers = self.speakers.read().unwrap_or_else(|e| e.into_inner());
        let verdict = fast::judge(&speakers, &topic, &data);
        drop(speakers);
        let checked = match verdict {
            Ok(c) => c,
            Err(GossipVerdict::Reject(e)) => {
                debug!(%from, "group gossip refused: {e}");
                return MessageAcceptance::Reject;
            }
            Err(_) => return MessageAcceptance::Ignore,
        };
        let filing = self.filing.load(Ordering::Acquire);
        if !self.gate.admit(checked.sender, filing, now) {
            return MessageAcceptance::Ignore;
        }
        let slot = FilingSlot::take(&self.filing);
        let (ctx, tx) = (self.ctx.clone(), self.filed.clone());
        // Told once filed ([`Service::on_filed`]).
        self.store.then(
            Flush::Background,
            move |s| fast::take_gossip(s, &ctx, &topic, &data, checked, unix_ms()),
            move |res| {
                let (verdict, events) = match res {
                    Ok((v, t)) => (v, t.events),
                    // Not filed: caught up later.
                    Err(e) => {
                        debug!("cannot file a gossip message: {e}");
                        (GossipVerdict::Ignore, Vec::new())
                    }
                };
                let _ = tx.send(Filed {
                    _slot: slot,
                    from,
                    verdict,
                    events,
                });
            },
        );
        MessageAcceptance::Accept
    }
}

/// One round of dials, run in the background.
struct Round {
    groups: HashMap<GroupId, String>,
    net: NetClient,
    store: Worker,
    me: PeerId,
    round: u64,
    backoff: Arc<Mutex<DialBackoff>>,
}

impl Round {
    async fn run(self) {
        let mut budget = MAX_DIALS_PER_ROUND;
        for (group, topic) in &self.groups {
            if budget == 0 {
                return;
            }
            let Some(dials) = self.pick(group, topic.clone(), budget).await else {
                continue;
            };
            budget = budget.saturating_sub(dials.len());
            let dials = dials.into_iter().map(|p| {
                let net = self.net.clone();
                crate::net::stats::count(crate::net::stats::Kind::GroupDial);
                async move {
                    let r = tokio::time::timeout(DIAL_TIMEOUT, net.dial(p)).await;
                    (p, matches!(r, Ok(Ok(()))))
                }
            });
            let results = futures::future::join_all(dials).await;
            let now = unix_ms();
            let Ok(mut b) = self.backoff.lock() else {
                return;
            };
            for (p, ok) in results {
                if ok {
                    b.succeeded(group, &p);
                } else {
                    b.failed(group, &p, now);
                }
            }
        }
    }

    /// Whom to dial for `group` (at most `budget`), if its topic has too
    /// few members seen for a mesh ([`fast_limits::dials_wanted`]).
    async fn pick(&self, group: &GroupId, topic: String, budget: usize) -> Option<Vec<PeerId>> {
        let seen = self.net.topic_peers(topic).await.ok()?;
        let want = fast_limits::dials_wanted(seen.len(), budget);
        if want == 0 {
            return None;
        }
        let g = *group;
        let roster = self
            .store
            .run(move |s| {
                Ok(s.group(&g)?
                    .and_then(|r| r.state.open().ok().map(|st| st.members())))
            })
            .await
            .ok()??;
        let connected = self.net.connected_peers().await.unwrap_or_default();
        let now = unix_ms();
        let b = self.backoff.lock().ok()?;
        let skip = |p: &PeerId| connected.contains(p) || !b.may_dial(group, p, now);
        Some(fast::pick_dials(&roster, &self.me, &skip, self.round, want))
    }
}
