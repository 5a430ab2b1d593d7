//! The outbound side of the message path: setting up a link to a peer
//! (dialling it, in turn as [`super::connects`] allows) and the *link*
//! task that holds one long-lived `/roost/msg/1` stream to it, writing
//! envelopes back to back within the send [`Window`] and reading the acks.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::AsyncWriteExt;
use futures::io::BufReader;
use libp2p::{PeerId, Stream};
use tokio::sync::{Notify, mpsc};
use tracing::debug;

use super::inbound::write_out;
use super::window::{Verdict, Window};
use super::{
    Internal, MSG_PROTOCOL, Outgoing, READ_BUFFER, STREAM_IDLE, Service, WINDOW, WRITE_BYTES,
};
use crate::net::NetClient;
use crate::wire::message::{self, Ack, Envelope, MAX_FRAME, MessageId, ReadFrame};

/// Longest a link keeps frames unanswered with no ack crediting any of
/// them before it gives up on the peer and hands its messages back to the
/// outbox. A recipient answers a batch once it is flushed, within
/// milliseconds even under load; half a minute without a single answer
/// means it has stopped answering (the messages are then retried with
/// backoff, on a new link or through the mailboxes).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// What the service hands a link: a message's id and its encoded frame.
pub(super) type LinkTx = mpsc::UnboundedSender<(MessageId, Vec<u8>)>;

impl Service {
    /// Starts setting up a link to `peer` ([`Connects`] said it may);
    /// its end comes back as [`Internal::LinkUp`] or
    /// [`Internal::LinkFailed`].
    ///
    /// [`Connects`]: super::connects::Connects
    pub(super) fn connect(&mut self, peer: PeerId) {
        let (net, control) = (self.net.clone(), self.control.clone());
        tokio::spawn(set_up(peer, net, control, self.int_tx.clone()));
    }

    /// The set-up of `peer`'s link ended, up or `failed`: its slot goes to
    /// those waiting.
    pub(super) fn connect_ended(&mut self, peer: &PeerId, failed: bool) {
        for next in self.connects.ended(peer, failed) {
            self.connect(next);
        }
    }
}

/// Longest a link's set-up may take, lookup, dial and stream together
/// (each bounded at about 20 s by the network task, all but the stream's
/// opening): a set-up holds one of [`super::MAX_CONNECTS`] slots, and one
/// that never ended would hold it for good.
pub const SET_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// Finds and dials the peer, then opens the message stream, within
/// [`SET_UP_TIMEOUT`].
async fn set_up(
    peer: PeerId,
    net: NetClient,
    mut control: libp2p_stream::Control,
    int_tx: mpsc::Sender<Internal>,
) {
    let steps = async {
        net.dial(peer).await.map_err(|e| e.to_string())?;
        control
            .open_stream(peer, MSG_PROTOCOL)
            .await
            .map_err(|e| e.to_string())
    };
    let result = tokio::time::timeout(SET_UP_TIMEOUT, steps)
        .await
        .unwrap_or_else(|_| Err(format!("no link after {SET_UP_TIMEOUT:?}")));
    match result {
        Ok(stream) => {
            crate::net::stats::count(crate::net::stats::Kind::MsgLink);
            let (tx, rx) = mpsc::unbounded_channel();
            let _ = int_tx.send(Internal::LinkUp(peer, tx)).await;
            tokio::spawn(link(peer, stream, rx, int_tx));
        }
        Err(reason) => {
            let _ = int_tx.send(Internal::LinkFailed(peer, reason)).await;
        }
    }
}

/// One outbound stream: pipelined writes, acks read back. Only an ack for
/// a message this link carries unanswered frees a slot of the window and
/// reaches the service ([`Window`]); other acks are dropped here, and one
/// without an id (a frame the peer could not read) closes the link, so
/// that its messages go back to the outbox instead of stalling it — as
/// does a peer that leaves frames unanswered for [`ACK_TIMEOUT`].
async fn link(
    peer: PeerId,
    stream: Stream,
    rx: mpsc::UnboundedReceiver<(MessageId, Vec<u8>)>,
    int_tx: mpsc::Sender<Internal>,
) {
    let (r, w) = futures::AsyncReadExt::split(stream);
    let shared = Shared {
        window: Mutex::new(Window::new(WINDOW)),
        room: Notify::new(),
    };
    let res = tokio::select! {
        r = write_frames(w, rx, &shared) => r,
        r = read_acks(peer, r, &shared, &int_tx) => r,
        r = watch_acks(&shared) => r,
    };
    if let Err(e) = res {
        debug!(%peer, "message link closed: {e}");
    }
    let _ = int_tx.send(Internal::LinkDown(peer)).await;
}

/// What a link's writer and ack reader share.
struct Shared {
    window: Mutex<Window>,
    /// Wakes the writer when an ack frees a slot (a wake-up that comes
    /// before the writer waits is kept, so none is lost).
    room: Notify,
}

impl Shared {
    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Writes the frames the service hands the link, as many per write as are
/// queued and the window allows; ends after [`STREAM_IDLE`] without one.
async fn write_frames(
    mut w: futures::io::WriteHalf<Stream>,
    mut rx: mpsc::UnboundedReceiver<(MessageId, Vec<u8>)>,
    shared: &Shared,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Ok(Some(mut next)) = tokio::time::timeout(STREAM_IDLE, rx.recv()).await {
        // Whatever else is queued goes out in the same write, as far as
        // the window allows; at a full window, what is gathered goes
        // first, so the peer can ack it.
        loop {
            let (id, frame) = next;
            if buf.len() >= WRITE_BYTES {
                write_out(&mut w, &mut buf).await?;
            }
            while !shared.window().send(id, Instant::now()) {
                write_out(&mut w, &mut buf).await?;
                shared.room.notified().await;
            }
            message::push_frame(&mut buf, &frame)?;
            match rx.try_recv() {
                Ok(n) => next = n,
                Err(_) => break,
            }
        }
        write_out(&mut w, &mut buf).await?;
    }
    w.close().await
}

/// Reads the peer's acks: one for a message in flight frees a slot and
/// goes to the service; others are dropped; one without an id breaks the
/// link.
async fn read_acks(
    peer: PeerId,
    r: futures::io::ReadHalf<Stream>,
    shared: &Shared,
    int_tx: &mpsc::Sender<Internal>,
) -> std::io::Result<()> {
    let mut r = BufReader::with_capacity(READ_BUFFER, r);
    loop {
        let bytes = match message::read_frame(&mut r, MAX_FRAME).await? {
            ReadFrame::Frame(bytes) => bytes,
            ReadFrame::TooLarge(_) | ReadFrame::Eof => return Ok(()),
        };
        let ack = crate::wire::decode::<Ack>(&bytes, MAX_FRAME).map_err(std::io::Error::other)?;
        let verdict = shared.window().ack(ack.id, Instant::now());
        match verdict {
            Verdict::Credit => {}
            Verdict::Ignore => {
                debug!(%peer, "ignoring an ack for nothing this link carries");
                continue;
            }
            Verdict::Broken => {
                return Err(std::io::Error::other(format!(
                    "the peer could not read a frame ({:?})",
                    ack.result
                )));
            }
        }
        shared.room.notify_one();
        if int_tx.send(Internal::Acked(peer, ack)).await.is_err() {
            return Ok(());
        }
    }
}

/// Ends the link when frames stay unanswered for [`ACK_TIMEOUT`].
async fn watch_acks(shared: &Shared) -> std::io::Result<()> {
    loop {
        tokio::time::sleep(ACK_TIMEOUT / 6).await;
        if shared.window().stalled(Instant::now(), ACK_TIMEOUT) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no ack for frames in flight",
            ));
        }
    }
}

/// Puts messages on an open link: each one's frame goes to the link's
/// writer and its id to what the link has in flight. (A free function, so
/// the service's link map can stay borrowed.)
pub(super) fn hand_to_link(
    envelopes: &HashMap<MessageId, Outgoing>,
    ids: Vec<MessageId>,
    tx: &LinkTx,
    in_flight: &mut HashSet<MessageId>,
) {
    for id in ids {
        if let Some(frame) = envelopes.get(&id).and_then(|o| encode_frame(&o.envelope)) {
            in_flight.insert(id);
            let _ = tx.send((id, frame));
        }
    }
}

fn encode_frame(env: &Envelope) -> Option<Vec<u8>> {
    message::encode_deliver(env).ok()
}
