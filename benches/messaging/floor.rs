//! The floors roost is measured against: one bare libp2p stream with an
//! answer per frame (and its durable variant, each side journalling with
//! an `fdatasync` before answering), and the price of a durable commit.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::io::{ReadHalf, WriteHalf};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{Stream, StreamProtocol};
use libp2p_stream::IncomingStreams;
use roost::Identity;
use roost::store::{Direction, MessageState, StoredMessage};
use roost::wire::frame::{ReadFrame, read_frame, write_frame};
use roost::wire::message::MessageId;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::common::bare;
use crate::{Counts, WARMUP, line, payload, percentile};

const FLOOR: StreamProtocol = StreamProtocol::new("/roost-bench/floor/1");

/// Appends frames to a file and syncs once for everything pending.
struct Journal(std::fs::File);

impl Journal {
    fn new(dir: &std::path::Path, name: &str) -> Self {
        Self(std::fs::File::create(dir.join(name)).unwrap())
    }
    fn commit(&mut self, frames: &[Vec<u8>]) {
        use std::io::Write;
        for f in frames {
            self.0.write_all(f).unwrap();
        }
        self.0.sync_data().unwrap();
    }
}

/// The price of durability alone, with no messaging around it: one stored
/// message made power-safe by roost's store (a sled write appended to the
/// store's journal first, then the journal `fdatasync`ed — what a
/// recipient does before it acknowledges) against one frame appended to a
/// file and `fdatasync`ed
/// (what the durable floor does), alternating on the same disk — which of
/// the two goes first alternates too, so neither always finds the disk
/// just flushed. A round trip pays two commits, so twice the difference is
/// what roost's RTT carries over the durable floor's before any messaging
/// work.
pub fn commit(c: &Counts) {
    let dir = tempfile::tempdir().unwrap();
    let store = roost::store::Store::open(&dir.path().join("db"), 4 << 20).unwrap();
    let mut journal = Journal::new(dir.path(), "journal.log");
    let peer = Identity::generate().unwrap().peer_id().to_bytes();
    let (mut stored, mut appended) = (Vec::new(), Vec::new());
    for i in 0..WARMUP + c.latency {
        let text = payload(i).into_bytes();
        let message = StoredMessage {
            id: MessageId::random(),
            peer: peer.clone(),
            direction: Direction::In,
            sent_at: i as u64,
            stored_at: i as u64,
            content_type: "text/plain".into(),
            subject: None,
            data: text.clone(),
            state: MessageState::Unread,
            request: false,
        };
        let store_commit = || {
            let t = Instant::now();
            store.insert_incoming(&[message]).unwrap();
            store.flush().unwrap();
            t.elapsed()
        };
        let append_commit = || {
            let t = Instant::now();
            journal.commit(&[text]);
            t.elapsed()
        };
        let (store_took, append_took) = if i % 2 == 0 {
            let s = store_commit();
            (s, append_commit())
        } else {
            let a = append_commit();
            (store_commit(), a)
        };
        if i >= WARMUP {
            stored.push(store_took);
            appended.push(append_took);
        }
    }
    stored.sort();
    appended.sort();
    println!(
        "{}",
        json!({
            "part": "commit",
            "store_commit_p50_us": percentile(&stored, 0.50).round(),
            "store_commit_p99_us": percentile(&stored, 0.99).round(),
            "append_commit_p50_us": percentile(&appended, 0.50).round(),
            "append_commit_p99_us": percentile(&appended, 0.99).round(),
            "n": stored.len(),
        })
    );
}

/// One bare long-lived libp2p stream (TCP + Noise + Yamux) with
/// length-prefixed frames and an answer per frame; `durable` makes each side
/// journal and fdatasync what it received before answering.
pub async fn floor(c: &Counts, durable: bool) {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let (mut control, incoming, pb) = bare::connected(FLOOR).await;
    answer(incoming, dir.path().to_path_buf(), durable);
    let stream = bare::open(&mut control, pb, FLOOR).await;
    let (mut r, mut w) = stream.split();
    let mut journal = durable.then(|| Journal::new(dir.path(), "a.log"));
    let msg = payload(1).into_bytes();
    let mut rtts = Vec::new();
    let mut connect = Duration::ZERO;
    for i in 0..WARMUP + c.latency + 1 {
        let t = Instant::now();
        write_frame(&mut w, &msg).await.unwrap();
        w.flush().await.unwrap();
        let ReadFrame::Frame(ans) = read_frame(&mut r, 1 << 20).await.unwrap() else {
            panic!("closed")
        };
        if let Some(j) = journal.as_mut() {
            tokio::task::block_in_place(|| j.commit(&[ans]));
        }
        if i == 0 {
            connect = t0.elapsed();
        } else if i > WARMUP {
            rtts.push(t.elapsed());
        }
    }
    let tp = throughput(r, w, msg, (c.throughput, c.window)).await;
    let system = if durable {
        "durable-floor"
    } else {
        "stream-floor"
    };
    line(system, connect, rtts, tp, c);
}

/// B: reads what is available, journals it in `dir` (`durable`), answers
/// each frame.
fn answer(mut incoming: IncomingStreams, dir: PathBuf, durable: bool) {
    tokio::spawn(async move {
        let (_, stream) = incoming.next().await.unwrap();
        let (mut r, mut w) = stream.split();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4096);
        tokio::spawn(async move {
            while let Ok(ReadFrame::Frame(f)) = read_frame(&mut r, 1 << 20).await {
                if tx.send(f).await.is_err() {
                    break;
                }
            }
        });
        let mut journal = durable.then(|| Journal::new(&dir, "b.log"));
        let answer = payload(7).into_bytes();
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while let Ok(f) = rx.try_recv() {
                batch.push(f);
            }
            if let Some(j) = journal.as_mut() {
                tokio::task::block_in_place(|| j.commit(&batch));
            }
            for _ in &batch {
                write_frame(&mut w, &answer).await.unwrap();
            }
            w.flush().await.unwrap();
        }
    });
}

/// Frames per second over the stream, at most `window` unanswered.
async fn throughput(
    mut r: ReadHalf<Stream>,
    mut w: WriteHalf<Stream>,
    msg: Vec<u8>,
    (n, window): (usize, usize),
) -> f64 {
    let window = Arc::new(Semaphore::new(window));
    let t = Instant::now();
    let writer = {
        let window = window.clone();
        tokio::spawn(async move {
            for _ in 0..n {
                window.acquire().await.unwrap().forget();
                write_frame(&mut w, &msg).await.unwrap();
                if window.available_permits() == 0 {
                    w.flush().await.unwrap();
                }
            }
            w.flush().await.unwrap();
        })
    };
    for _ in 0..n {
        let ReadFrame::Frame(_) = read_frame(&mut r, 1 << 20).await.unwrap() else {
            panic!("closed")
        };
        window.add_permits(1);
    }
    writer.await.unwrap();
    n as f64 / t.elapsed().as_secs_f64()
}
