//! The fetching side: one task per file being downloaded. It finds what
//! already verifies on disk (what a crash left), plans the rest
//! ([`super::plan::Plan`]) and runs one worker per source, each asking its
//! source for pieces it holds and decoding them, verified, into the
//! partial file. A source whose bytes do not verify is dropped; when no
//! source answers, the file waits and tries again.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::AsyncWriteExt;
use libp2p::{PeerId, StreamProtocol};

use super::bao::{self, Blocking, DecodeFault};
use super::plan::{Fault, Plan};
use super::{Live, Shared};
use crate::store::TransferState;
use crate::wire::files::{Answer, CHUNK, MAX_ANSWER, PROTOCOL, Request, Span};
use crate::wire::frame::{ReadFrame, read_frame, write_frame};
use crate::wire::message::MessageId;

/// Chunks per piece asked of one source at a time: 1 MiB.
pub const PIECE: u64 = 1024;
/// How long a source has for one piece while another source is connected
/// and could take it (doubled for each deadline it missed, see
/// [`Plan::deadline_factor`]): a source slower than 100 KiB/s gives its
/// pieces to faster ones. A lone reachable source has no deadline but the
/// 30 s per read of every stream.
const PIECE_DEADLINE: Duration = Duration::from_secs(10);
/// How often a source with nothing open looks again for a piece another
/// source gives back.
const TAIL_POLL: Duration = Duration::from_millis(200);
/// Longest wait between two rounds when no source answers.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

fn bytes_of(span: Span, size: u64) -> u64 {
    (span.1 * CHUNK).min(size).saturating_sub(span.0 * CHUNK)
}

/// The complement of `have` within `0..chunks`.
fn missing(have: &[Span], chunks: u64) -> Vec<Span> {
    let mut out = Vec::new();
    let mut at = 0;
    for &(a, b) in have {
        if a > at {
            out.push((at, a));
        }
        at = at.max(b);
    }
    if at < chunks {
        out.push((at, chunks));
    }
    out
}

/// Downloads file `id` until it is complete, failed, or `cancel`led.
pub(super) async fn download(shared: Arc<Shared>, id: MessageId, live: Arc<Live>) {
    let cancel = live.cancel.clone();
    tokio::select! {
        _ = run(&shared, id, &live) => {}
        _ = cancel.cancelled() => {}
        _ = shared.tasks.stopping() => {}
    }
    // What it verified is found again (once) when next asked for.
    shared.forget_held(&id);
    // Only this task's own entry: a newer one (a `get` after a cancel)
    // may have taken the id's place and must stay tracked.
    shared
        .live
        .lock()
        .map(|mut l| {
            if l.get(&id).is_some_and(|now| Arc::ptr_eq(now, &live)) {
                l.remove(&id);
            }
        })
        .ok();
}

async fn run(shared: &Arc<Shared>, id: MessageId, live: &Arc<Live>) {
    let Some(row) = shared.row(id).await else {
        return;
    };
    if shared.landed(&row).await {
        return;
    }
    let (size, root) = (row.size, row.root);
    let (part, obao) = (shared.part_path(&id), shared.obao_path(&id));
    let n = bao::chunks(size);
    let have = match on_disk(shared, id, part.clone(), obao.clone()).await {
        Ok(Some(h)) => h,
        Ok(None) => return,
        Err(e) => return shared.fail(id, e).await,
    };
    shared.forget_held(&id);
    if let Ok(mut v) = live.verified.lock() {
        v.clone_from(&have);
    }
    let todo = missing(&have, n);
    let held: u64 = have.iter().map(|&s| bytes_of(s, size)).sum();
    live.done.store(held, Ordering::Relaxed);
    let plan = Arc::new(Mutex::new(Plan::<PeerId>::new(&todo, PIECE)));
    let mut backoff = Duration::from_millis(500);
    loop {
        if plan.lock().map(|p| p.is_complete()).unwrap_or(false) {
            shared.finish(id).await;
            return;
        }
        // The file's mailbox parts may have completed it meanwhile.
        let Some(row) = shared
            .row(id)
            .await
            .filter(|r| r.state != TransferState::Complete)
        else {
            return;
        };
        let sources = live_sources(&row, &plan);
        if sources.is_empty() {
            shared
                .fail(id, "every source sent bytes that do not verify".into())
                .await;
            return;
        }
        shared.set_state(id, TransferState::Downloading).await;
        let before = live.done.load(Ordering::Relaxed);
        let job = Job {
            id,
            shared: shared.clone(),
            root,
            size,
            part: part.clone(),
            obao: obao.clone(),
            plan: plan.clone(),
            live: live.clone(),
        };
        let workers = sources.into_iter().map(|s| job.clone().work(s));
        futures::future::join_all(workers).await;
        if plan.lock().map(|p| p.is_complete()).unwrap_or(false) {
            continue;
        }
        if live.done.load(Ordering::Relaxed) > before {
            backoff = Duration::from_millis(500);
        } else {
            shared.set_state(id, TransferState::Waiting).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        tokio::time::sleep(backoff).await;
    }
}

/// Creates the partial file at its full size if need be, and finds the
/// chunk ranges of it that already verify (what a crash left); `None` if
/// the file is complete (its mailbox parts finished it). The file is
/// created under the file's lock, so never again after a finish moved it
/// away.
async fn on_disk(
    shared: &Shared,
    id: MessageId,
    part: std::path::PathBuf,
    obao: std::path::PathBuf,
) -> Result<Option<Vec<Span>>, String> {
    let locked = shared.file_lock(id).await;
    let Some(row) = shared.row(id).await else {
        return Ok(None);
    };
    if row.state == TransferState::Complete {
        return Ok(None);
    }
    let (size, root) = (row.size, row.root);
    let at = part.clone();
    let made = tokio::task::spawn_blocking(move || bao::make_partial(&at, size)).await;
    drop(locked);
    let unusable = |e: std::io::Error| format!("cannot use the partial file: {e}");
    made.map_err(|e| e.to_string())?.map_err(unusable)?;
    tokio::task::spawn_blocking(move || bao::verified(&part, &obao, size, root))
        .await
        .map_err(|e| e.to_string())?
        .map(Some)
        .map_err(unusable)
}

/// The sources of `row` neither recorded nor caught in `plan` lying.
fn live_sources(row: &crate::store::Transfer, plan: &Mutex<Plan<PeerId>>) -> Vec<PeerId> {
    row.sources
        .iter()
        .filter(|s| !row.dropped.contains(s))
        .filter_map(|s| PeerId::from_bytes(s).ok())
        .filter(|s| !plan.lock().map(|p| p.is_dropped(s)).unwrap_or(true))
        .collect()
}

/// What a worker needs: shared by the workers of one download.
#[derive(Clone)]
struct Job {
    id: MessageId,
    shared: Arc<Shared>,
    root: [u8; 32],
    size: u64,
    part: std::path::PathBuf,
    obao: std::path::PathBuf,
    plan: Arc<Mutex<Plan<PeerId>>>,
    live: Arc<Live>,
}

impl Job {
    /// Fetches pieces from `source` until it has nothing more we need,
    /// fails, is too slow, or is caught lying. While another source's
    /// worker runs (dialing or fetching), it can take a piece this one is
    /// slow to deliver, so each piece has a deadline; a source found
    /// offline leaves at once, and a lone reachable one has none.
    async fn work(self, source: PeerId) {
        // Working from the start of its dial: a piece asked of another
        // source meanwhile has a deadline, as this one may take it over.
        if let Ok(mut p) = self.plan.lock() {
            p.join(source);
        }
        if let Err(e) = self.pieces(source).await {
            tracing::debug!(%source, "file source: {e}");
        }
        if let Ok(mut p) = self.plan.lock() {
            p.leave(source);
        }
    }

    /// A stream to `source` and the chunk ranges it holds.
    async fn open(&self, source: PeerId) -> Result<(libp2p::Stream, Vec<Span>), String> {
        self.shared
            .net
            .dial(source)
            .await
            .map_err(|e| e.to_string())?;
        let mut stream = self
            .shared
            .control
            .clone()
            .open_stream(source, StreamProtocol::new(PROTOCOL))
            .await
            .map_err(|e| e.to_string())?;
        match ask(&mut stream, &Request::Have { root: self.root }).await? {
            // Spans that are empty, inverted or past the end are dropped.
            Answer::Have(h) => {
                let n = bao::chunks(self.size);
                let has = h.into_iter().filter(|&(a, b)| a < b && b <= n).collect();
                Ok((stream, has))
            }
            other => Err(format!("answered {other:?}")),
        }
    }

    async fn pieces(&self, source: PeerId) -> Result<(), String> {
        let (mut stream, has) = self.open(source).await?;
        loop {
            let next = self.plan.lock().ok().map(|mut p| {
                let factor = p.deadline_factor(&source);
                let timed = p.has_deadline(&source);
                match p.next(source, &has) {
                    Some(piece) => Ok((piece, factor, timed)),
                    None => Err(p.should_wait(&source, &has)),
                }
            });
            let (piece, factor, timed) = match next {
                Some(Ok(next)) => next,
                // Another source holds the tail: wait for it to come back.
                Some(Err(true)) => {
                    tokio::time::sleep(TAIL_POLL).await;
                    continue;
                }
                _ => return Ok(()),
            };
            let req = Request::Get {
                root: self.root,
                ranges: vec![piece],
            };
            match ask(&mut stream, &req).await {
                Ok(Answer::Sending) => {}
                other => {
                    self.give_back(source, Fault::Lost);
                    return Err(format!("answered {other:?}"));
                }
            }
            let deadline =
                timed.then(|| tokio::time::Instant::now() + self.piece_deadline() * factor);
            let res;
            (stream, res) = self.decode(stream, piece, deadline).await?;
            self.settle(source, piece, res).await?;
        }
    }

    /// The base deadline of a piece.
    fn piece_deadline(&self) -> Duration {
        #[cfg(feature = "test-util")]
        if let Some(ms) = super::test_hooks::piece_deadline_ms(&self.shared.dir) {
            return Duration::from_millis(ms);
        }
        PIECE_DEADLINE
    }

    /// Reads `piece` from `stream` into the partial file, verified, on a
    /// blocking thread; gives the stream back. A piece past its `deadline`
    /// is [`DecodeFault::Slow`].
    async fn decode(
        &self,
        stream: libp2p::Stream,
        piece: Span,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(libp2p::Stream, Result<(), DecodeFault>), String> {
        let rt = tokio::runtime::Handle::current();
        let (part, obao, size, root) = (self.part.clone(), self.obao.clone(), self.size, self.root);
        tokio::task::spawn_blocking(move || {
            let mut r = Blocking::new(stream, rt);
            if let Some(at) = deadline {
                r = r.until(at);
            }
            let res = bao::decode(&mut r, &part, &obao, size, root, &[piece]);
            let res = match res {
                Err(DecodeFault::Lost(why)) if r.overdue => Err(DecodeFault::Slow(why)),
                other => other,
            };
            (r.inner, res)
        })
        .await
        .map_err(|e| e.to_string())
    }

    /// Records how `piece` from `source` ended; an error ends the worker.
    async fn settle(
        &self,
        source: PeerId,
        piece: Span,
        res: Result<(), DecodeFault>,
    ) -> Result<(), String> {
        match res {
            Ok(()) => {
                self.live
                    .done
                    .fetch_add(bytes_of(piece, self.size), Ordering::Relaxed);
                if self.live.throttle.due(std::time::Instant::now())
                    && let Some(t) = self.shared.row(self.id).await
                {
                    self.shared.progress(t);
                }
                if let Ok(mut v) = self.live.verified.lock() {
                    super::held::add_span(&mut v, piece);
                }
                if let Ok(mut p) = self.plan.lock() {
                    p.done(source);
                }
                Ok(())
            }
            Err(DecodeFault::Lied(why)) => {
                tracing::warn!(%source, "a file source sent bytes that do not verify ({why}); dropped");
                self.give_back(source, Fault::Lied);
                let liar = source.to_bytes();
                self.shared
                    .update(self.id, move |t| {
                        if !t.dropped.contains(&liar) {
                            t.dropped.push(liar);
                        }
                    })
                    .await;
                Err(why)
            }
            Err(DecodeFault::Slow(why)) => {
                tracing::debug!(%source, "a file source missed a piece's deadline; the piece goes back");
                self.give_back_keeping(source, piece, Fault::Slow).await;
                Err(why)
            }
            Err(DecodeFault::Lost(why)) => {
                self.give_back_keeping(source, piece, Fault::Lost).await;
                Err(why)
            }
        }
    }

    /// Gives `piece` back but for the chunks of it already verified on
    /// disk, which count as done.
    async fn give_back_keeping(&self, source: PeerId, piece: Span, fault: Fault) {
        let (part, obao, size, root) = (self.part.clone(), self.obao.clone(), self.size, self.root);
        let kept = tokio::task::spawn_blocking(move || {
            bao::verified_span(&part, &obao, size, root, piece).unwrap_or_default()
        })
        .await
        .unwrap_or_default();
        let got: u64 = kept.iter().map(|&s| bytes_of(s, self.size)).sum();
        self.live.done.fetch_add(got, Ordering::Relaxed);
        if let Ok(mut p) = self.plan.lock() {
            p.failed_keeping(source, fault, &kept);
        }
    }

    fn give_back(&self, source: PeerId, fault: Fault) {
        if let Ok(mut p) = self.plan.lock() {
            p.failed(source, fault);
        }
    }
}

/// Sends one request and reads its answer frame.
async fn ask(stream: &mut libp2p::Stream, req: &Request) -> Result<Answer, String> {
    let bytes = crate::wire::encode(req).map_err(|e| e.to_string())?;
    write_frame(stream, &bytes)
        .await
        .map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;
    match read_frame(stream, MAX_ANSWER)
        .await
        .map_err(|e| e.to_string())?
    {
        ReadFrame::Frame(f) => crate::wire::decode(&f, MAX_ANSWER).map_err(|e| e.to_string()),
        ReadFrame::TooLarge(n) => Err(format!("answer of {n} bytes")),
        ReadFrame::Eof => Err("stream closed".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_is_the_complement() {
        assert_eq!(missing(&[], 10), vec![(0, 10)]);
        assert_eq!(missing(&[(0, 10)], 10), vec![]);
        assert_eq!(
            missing(&[(2, 4), (6, 8)], 10),
            vec![(0, 2), (4, 6), (8, 10)]
        );
        assert_eq!(bytes_of((0, 2), 1500), 1500);
        assert_eq!(bytes_of((1, 2), 5000), 1024);
    }
}
