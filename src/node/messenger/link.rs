//! The outbound side of the message path: dialling a peer and the *link*
//! task that holds one long-lived `/roost/msg/1` stream to it, writing
//! envelopes back to back within the send [`Window`] and reading the acks.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::AsyncWriteExt;
use futures::io::BufReader;
use libp2p::{PeerId, Stream};
use tokio::sync::{Notify, mpsc};
use tracing::debug;

use super::inbound::write_out;
use super::window::{Verdict, Window};
use super::{Internal, MSG_PROTOCOL, READ_BUFFER, STREAM_IDLE, WINDOW, WRITE_BYTES};
use crate::net::NetClient;
use crate::wire::message::{self, Ack, MAX_FRAME, MessageId, ReadFrame};

/// Longest a link keeps frames unanswered with no ack crediting any of
/// them before it gives up on the peer and hands its messages back to the
/// outbox. A recipient answers a batch once it is flushed, within
/// milliseconds even under load; half a minute without a single answer
/// means it has stopped answering (the messages are then retried with
/// backoff, on a new link or through the mailboxes).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// What the service hands a link: a message's id and its encoded frame.
pub(super) type LinkTx = mpsc::UnboundedSender<(MessageId, Vec<u8>)>;

/// Finds and dials the peer, then opens the message stream.
pub(super) async fn connect(
    peer: PeerId,
    net: NetClient,
    mut control: libp2p_stream::Control,
    int_tx: mpsc::Sender<Internal>,
) {
    let result = async {
        net.dial(peer).await.map_err(|e| e.to_string())?;
        control
            .open_stream(peer, MSG_PROTOCOL)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    match result {
        Ok(stream) => {
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
    mut rx: mpsc::UnboundedReceiver<(MessageId, Vec<u8>)>,
    int_tx: mpsc::Sender<Internal>,
) {
    let (r, mut w) = futures::AsyncReadExt::split(stream);
    let mut r = BufReader::with_capacity(READ_BUFFER, r);
    let window = Mutex::new(Window::new(WINDOW));
    let lock = || {
        window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    // Wakes the writer when an ack frees a slot (a wake-up that comes
    // before the writer waits is kept, so none is lost).
    let room = Notify::new();
    let writer = async {
        let mut buf = Vec::new();
        while let Ok(Some(mut next)) = tokio::time::timeout(STREAM_IDLE, rx.recv()).await {
            // Whatever else is queued goes out in the same write, as far
            // as the window allows; at a full window, what is gathered
            // goes first, so the peer can ack it.
            loop {
                let (id, frame) = next;
                if buf.len() >= WRITE_BYTES {
                    write_out(&mut w, &mut buf).await?;
                }
                while !lock().send(id, Instant::now()) {
                    write_out(&mut w, &mut buf).await?;
                    room.notified().await;
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
    };
    let reader = async {
        loop {
            match message::read_frame(&mut r, MAX_FRAME).await? {
                ReadFrame::Frame(bytes) => {
                    let ack = crate::wire::decode::<Ack>(&bytes, MAX_FRAME)
                        .map_err(std::io::Error::other)?;
                    match lock().ack(ack.id, Instant::now()) {
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
                    room.notify_one();
                    if int_tx.send(Internal::Acked(peer, ack)).await.is_err() {
                        return Ok(());
                    }
                }
                ReadFrame::TooLarge(_) | ReadFrame::Eof => return Ok::<_, std::io::Error>(()),
            }
        }
    };
    let watchdog = async {
        loop {
            tokio::time::sleep(ACK_TIMEOUT / 6).await;
            if lock().stalled(Instant::now(), ACK_TIMEOUT) {
                return Err::<(), _>(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no ack for frames in flight",
                ));
            }
        }
    };
    let res = tokio::select! {
        r = writer => r,
        r = reader => r,
        r = watchdog => r,
    };
    if let Err(e) = res {
        debug!(%peer, "message link closed: {e}");
    }
    let _ = int_tx.send(Internal::LinkDown(peer)).await;
}
