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
//! as the subscription is taken, so the first change finds it open. When
//! the subscriber does not speak the push protocol, or the stream cannot
//! be opened or written, the change goes as a NOTIFY request, as before.
//!
//! The watcher's side ([`accept`]): one reader per publisher (a newer
//! stream from the same peer replaces the older), at most
//! [`MAX_PUSH_STREAMS`] at once. A reader hands each state to the presence
//! service, which takes it only from a buddy it watches, exactly as a
//! NOTIFY request. A frame over [`MAX_PRESENCE_FRAME`], one that does not
//! decode, or states faster than presence requests may come end the
//! stream.

use std::collections::HashMap;
use std::time::Instant;

use futures::{AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream};
use libp2p_stream::{Control, IncomingStreams, OpenStreamError};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::debug;

use super::service::Request;
use crate::net::NetClient;
use crate::net::ratelimit::{PRESENCE_BURST, PRESENCE_RATE, RateLimiter};
use crate::net::stats::{self, Kind};
use crate::wire::frame::{ReadFrame, read_frame, write_frame};
use crate::wire::presence::{MAX_PRESENCE_FRAME, PUSH_PROTOCOL, PresenceInfo};

/// Most publishers pushing to us at once. A watcher reads from its
/// buddies; past this many, a new stream is refused (its publisher falls
/// back to NOTIFY requests).
pub const MAX_PUSH_STREAMS: usize = 4096;

/// Most subscribers we push to over streams at once; past this many, a
/// subscriber gets NOTIFY requests.
pub const MAX_PUSHERS: usize = 4096;

/// The publisher's side: a pusher task per subscriber.
pub(super) struct Pushers {
    control: Control,
    net: NetClient,
    to: HashMap<PeerId, watch::Sender<Option<PresenceInfo>>>,
}

impl Pushers {
    /// No subscriber yet.
    pub(super) fn new(control: Control, net: NetClient) -> Self {
        Self {
            control,
            net,
            to: HashMap::new(),
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
        self.to.retain(|peer, _| subscribed(peer));
    }

    fn sender(&mut self, peer: PeerId) -> Option<&watch::Sender<Option<PresenceInfo>>> {
        if !self.to.contains_key(&peer) {
            if self.to.len() >= MAX_PUSHERS {
                return None;
            }
            let (tx, rx) = watch::channel(None);
            tokio::spawn(pusher(peer, self.control.clone(), self.net.clone(), rx));
            self.to.insert(peer, tx);
        }
        self.to.get(&peer)
    }
}

/// Where a pusher's changes go.
enum Route {
    /// Its open stream.
    Stream(Stream),
    /// None open: the next change tries to open one.
    Closed,
    /// The subscriber does not speak the push protocol: NOTIFY requests.
    Requests,
}

/// Opens the push stream to `peer`.
async fn open(control: &mut Control, peer: PeerId) -> Route {
    match control.open_stream(peer, PUSH_PROTOCOL).await {
        Ok(s) => {
            stats::count(Kind::PushStream);
            Route::Stream(s)
        }
        Err(OpenStreamError::UnsupportedProtocol(_)) => Route::Requests,
        Err(e) => {
            debug!(%peer, "cannot open a presence push stream: {e}");
            Route::Closed
        }
    }
}

/// Pushes the latest state handed to `latest` to `peer`, until the sender
/// is dropped (the subscription ended).
async fn pusher(
    peer: PeerId,
    mut control: Control,
    net: NetClient,
    mut latest: watch::Receiver<Option<PresenceInfo>>,
) {
    let mut route = open(&mut control, peer).await;
    while latest.changed().await.is_ok() {
        let Some(info) = latest.borrow_and_update().clone() else {
            continue;
        };
        if matches!(route, Route::Closed) {
            route = open(&mut control, peer).await;
        }
        if let Route::Stream(s) = &mut route {
            match write(s, &info).await {
                Ok(()) => continue,
                Err(e) => {
                    debug!(%peer, "presence push stream failed: {e}");
                    route = Route::Closed;
                }
            }
        }
        net.notify(vec![(peer, info)]).await;
    }
}

/// Writes one state as a frame and flushes it.
async fn write(s: &mut Stream, info: &PresenceInfo) -> std::io::Result<()> {
    let bytes = crate::wire::encode(info).map_err(std::io::Error::other)?;
    write_frame(s, &bytes).await?;
    s.flush().await
}

/// The watcher's side: takes the push streams publishers open to us, one
/// reader each, and hands what they read to the presence service.
pub(super) async fn accept(mut incoming: IncomingStreams, service: mpsc::Sender<Request>) {
    let mut readers: HashMap<PeerId, JoinHandle<()>> = HashMap::new();
    while let Some((peer, stream)) = incoming.next().await {
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
        readers.insert(peer, tokio::spawn(read(peer, stream, service.clone())));
    }
}

/// Reads the states `peer` pushes, until the stream ends or breaks a rule
/// (as many as presence requests: [`PRESENCE_RATE`] a second after a
/// burst of [`PRESENCE_BURST`]).
async fn read(peer: PeerId, mut s: Stream, service: mpsc::Sender<Request>) {
    let mut limit = RateLimiter::new(PRESENCE_RATE, PRESENCE_BURST);
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
        if !limit.allow(peer, Instant::now()) {
            debug!(%peer, "presence pushed too fast; closing");
            return;
        }
        stats::count(Kind::PushReceived);
        if service.send(Request::Pushed(peer, info)).await.is_err() {
            return;
        }
    }
}
