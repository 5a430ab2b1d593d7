//! Presence changes pushed over one standing stream per subscriber
//! (`/roost/presence-push/1`), and the streams other publishers push to us.
//!
//! Why: a NOTIFY as a request costs a new stream, its protocol
//! negotiation, an answer, and two trips through each side's network task
//! (the one task that owns the swarm). A publisher with hundreds of
//! watchers paid that per watcher and change, one after another on its
//! network task. On a standing stream a change is one frame written by a
//! task of the subscriber's own, straight to the connection.
//!
//! The publisher's side: one [`pusher`] task per subscriber, fed the
//! latest state through a `watch` channel (presence is a state: when two
//! changes queue up, only the newer matters). It opens its stream as soon
//! as the subscription is taken, so the first change finds it open, and
//! counts it open only once the watcher has said it reads it (one byte,
//! [`READING`]): libp2p-stream drops an inbound stream that arrives while
//! the one before it is still being handed over, and a frame written into
//! such a stream would be lost without an error. Where no stream can be
//! had — the subscriber does not speak the push protocol, refuses the
//! stream, or a write fails or stalls — the change goes as a NOTIFY
//! request, answered before the pusher goes on, so changes arrive in the
//! order they were made.
//!
//! The watcher's side ([`accept`]): a stream only from a buddy it watches,
//! one reader per publisher (a newer stream from the same peer replaces
//! the older), at most [`MAX_PUSH_STREAMS`] at once. A reader hands each
//! state to the presence service on a channel of its own (a flood cannot
//! fill the queue the network's events take), which takes it exactly as a
//! NOTIFY request. A frame over [`MAX_PRESENCE_FRAME`], one that does not
//! decode, or states from one peer faster than its presence requests may
//! come (one bucket per peer, whichever stream they take) end the stream.
//!
//! Push streams do not keep a connection open: the connections to buddies
//! are kept by `net::keep`, and a silent stream must not hold one for ever.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream};
use libp2p_stream::{Control, IncomingStreams, OpenStreamError};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tracing::debug;

use crate::net::NetClient;
use crate::net::ratelimit::{PRESENCE_BURST, PRESENCE_RATE, RateLimiter};
use crate::net::stats::{self, Kind};
use crate::wire::frame::{ReadFrame, read_frame, write_frame};
use crate::wire::presence::{MAX_PRESENCE_FRAME, PUSH_PROTOCOL, PresenceInfo, PresenceRequest};

/// Most publishers pushing to us at once. A watcher reads from its
/// buddies; past this many, a new stream is refused (its publisher falls
/// back to NOTIFY requests).
pub const MAX_PUSH_STREAMS: usize = 4096;

/// Most pusher tasks at once (subscribers, and pushers still sending a
/// last state); past this many, a subscriber gets NOTIFY requests.
pub const MAX_PUSHERS: usize = 4096;

/// The byte a watcher writes first on a push stream: it has taken the
/// stream and reads it.
pub const READING: u8 = 1;

/// Longest a pusher waits for a stream to open and be taken, or for a
/// frame to be written: past it, the subscriber gets the change as a
/// request.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// A state on its way to the presence service: who pushed it, and what.
pub(super) type Pushed = (PeerId, PresenceInfo);

/// The publisher's side: a pusher task per subscriber.
pub(super) struct Pushers {
    control: Control,
    net: NetClient,
    to: HashMap<PeerId, (watch::Sender<Option<PresenceInfo>>, JoinHandle<()>)>,
    /// Pushers of former subscribers, sending their last state.
    finishing: HashMap<PeerId, JoinHandle<()>>,
}

impl Pushers {
    /// No subscriber yet.
    pub(super) fn new(control: Control, net: NetClient) -> Self {
        Self {
            control,
            net,
            to: HashMap::new(),
            finishing: HashMap::new(),
        }
    }

    /// `peer` subscribed: its stream opens now, before the first change.
    pub(super) fn open(&mut self, peer: PeerId) {
        self.sender(peer);
    }

    /// Sends each subscriber its state: on its stream, or (no room for a
    /// pusher) as NOTIFY requests.
    pub(super) fn push(&mut self, to: Vec<(PeerId, PresenceInfo)>) {
        let mut requests = Vec::new();
        for (peer, info) in to {
            match self.sender(peer) {
                Some(tx) => {
                    tx.send_replace(Some(info));
                }
                None => requests.push((peer, info)),
            }
        }
        if !requests.is_empty() {
            let net = self.net.clone();
            tokio::spawn(async move { net.notify(requests).await });
        }
    }

    /// Ends the pushers of peers that are no longer subscribed. A state
    /// handed over before still goes out: a pusher sends what it was given
    /// last before it sees its channel closed.
    pub(super) fn retain(&mut self, mut subscribed: impl FnMut(&PeerId) -> bool) {
        let gone = self.to.extract_if(|peer, _| !subscribed(peer));
        self.finishing
            .extend(gone.map(|(peer, (_sender, task))| (peer, task)));
    }

    /// Stops every pusher where it is (the node is leaving; its watchers
    /// are told `offline` by request).
    pub(super) fn stop(&mut self) {
        let running = self.to.drain().map(|(_, (_, task))| task);
        for task in running.chain(self.finishing.drain().map(|(_, task)| task)) {
            task.abort();
        }
    }

    fn sender(&mut self, peer: PeerId) -> Option<&watch::Sender<Option<PresenceInfo>>> {
        if !self.to.contains_key(&peer) {
            // A former pusher of this peer has nothing left to say that
            // the new one will not say.
            if let Some(old) = self.finishing.remove(&peer) {
                old.abort();
            }
            self.finishing.retain(|_, t| !t.is_finished());
            if self.to.len() + self.finishing.len() >= MAX_PUSHERS {
                return None;
            }
            let (tx, rx) = watch::channel(None);
            let (control, net) = (self.control.clone(), self.net.clone());
            let task = tokio::spawn(pusher(peer, control, net, rx));
            self.to.insert(peer, (tx, task));
        }
        self.to.get(&peer).map(|(tx, _)| tx)
    }
}

/// Where a pusher's changes go.
enum Route {
    /// Its open stream, which the watcher reads.
    Stream(Stream),
    /// None open: the next change tries to open one.
    Closed,
    /// The subscriber does not speak the push protocol: NOTIFY requests.
    Requests,
}

/// Opens the push stream to `peer` and waits until the watcher reads it.
async fn open(control: &mut Control, peer: PeerId) -> Route {
    let opened = timeout(PUSH_TIMEOUT, async {
        let mut s = control.open_stream(peer, PUSH_PROTOCOL).await?;
        s.ignore_for_keep_alive();
        let mut first = [0u8; 1];
        s.read_exact(&mut first).await?;
        if first[0] != READING {
            return Err(std::io::Error::other("unexpected first byte").into());
        }
        Ok::<_, OpenStreamError>(s)
    });
    match opened.await {
        Ok(Ok(s)) => {
            stats::count(Kind::PushStream);
            Route::Stream(s)
        }
        Ok(Err(OpenStreamError::UnsupportedProtocol(_))) => Route::Requests,
        Ok(Err(e)) => {
            debug!(%peer, "no presence push stream: {e}");
            Route::Closed
        }
        Err(_) => {
            debug!(%peer, "no presence push stream: timed out");
            Route::Closed
        }
    }
}

/// Pushes the latest state handed to `latest` to `peer`, until the sender
/// is dropped (the subscription ended) and the last state is out.
async fn pusher(
    peer: PeerId,
    mut control: Control,
    net: NetClient,
    mut latest: watch::Receiver<Option<PresenceInfo>>,
) {
    // A pusher started only to carry a last state opens no stream.
    let mut route = if latest.has_changed().is_err() {
        Route::Closed
    } else {
        open(&mut control, peer).await
    };
    while latest.changed().await.is_ok() {
        let Some(info) = latest.borrow_and_update().clone() else {
            continue;
        };
        // A last state (the subscription has ended) opens no stream.
        let last = latest.has_changed().is_err();
        if matches!(route, Route::Closed) && !last {
            route = open(&mut control, peer).await;
        }
        if let Route::Stream(s) = &mut route {
            match timeout(PUSH_TIMEOUT, write(s, &info)).await {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => debug!(%peer, "presence push stream failed: {e}"),
                Err(_) => debug!(%peer, "presence push stream stalled"),
            }
            route = Route::Closed;
        }
        // Answered before the next change goes, so none overtakes it.
        let _ = net.presence(peer, PresenceRequest::Notify(info)).await;
    }
}

/// Writes one state as a frame and flushes it.
async fn write(s: &mut Stream, info: &PresenceInfo) -> std::io::Result<()> {
    let bytes = crate::wire::encode(info).map_err(std::io::Error::other)?;
    write_frame(s, &bytes).await?;
    s.flush().await
}

/// The watcher's side: takes the push streams publishers open to us — only
/// from peers in `watched`, one reader each — and hands what they read to
/// the presence service on `service`.
pub(super) async fn accept(
    mut incoming: IncomingStreams,
    watched: watch::Receiver<HashSet<PeerId>>,
    service: mpsc::Sender<Pushed>,
) {
    let limit = Arc::new(Mutex::new(RateLimiter::new(PRESENCE_RATE, PRESENCE_BURST)));
    let mut readers: HashMap<PeerId, JoinHandle<()>> = HashMap::new();
    while let Some((peer, stream)) = incoming.next().await {
        if !watched.borrow().contains(&peer) {
            debug!(%peer, "presence push stream from a peer we do not watch; refused");
            continue;
        }
        if let Some(old) = readers.remove(&peer) {
            old.abort();
        }
        if readers.len() >= MAX_PUSH_STREAMS {
            readers.retain(|_, r| !r.is_finished());
            if readers.len() >= MAX_PUSH_STREAMS {
                debug!(%peer, "too many presence push streams; refusing one");
                continue;
            }
        }
        let reader = read(peer, stream, limit.clone(), service.clone());
        readers.insert(peer, tokio::spawn(reader));
    }
}

/// Says we read `s`, then reads the states `peer` pushes on it until the
/// stream ends or breaks a rule.
async fn read(
    peer: PeerId,
    mut s: Stream,
    limit: Arc<Mutex<RateLimiter>>,
    service: mpsc::Sender<Pushed>,
) {
    s.ignore_for_keep_alive();
    let said = async {
        s.write_all(&[READING]).await?;
        s.flush().await
    };
    if !matches!(timeout(PUSH_TIMEOUT, said).await, Ok(Ok(()))) {
        return;
    }
    loop {
        let bytes = match read_frame(&mut s, MAX_PRESENCE_FRAME).await {
            Ok(ReadFrame::Frame(bytes)) => bytes,
            Ok(ReadFrame::TooLarge(len)) => {
                debug!(%peer, len, "presence push frame too large; closing");
                return;
            }
            Ok(ReadFrame::Eof) | Err(_) => return,
        };
        let info = match crate::wire::decode::<PresenceInfo>(&bytes, MAX_PRESENCE_FRAME) {
            Ok(info) => info,
            Err(e) => {
                debug!(%peer, "bad presence push frame; closing: {e}");
                return;
            }
        };
        let allowed = limit
            .lock()
            .map(|mut l| l.allow(peer, Instant::now()))
            .unwrap_or(false);
        if !allowed {
            debug!(%peer, "presence pushed too fast; closing");
            return;
        }
        stats::count(Kind::PushReceived);
        if service.send((peer, info)).await.is_err() {
            return;
        }
    }
}
