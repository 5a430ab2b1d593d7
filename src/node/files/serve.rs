//! The serving side of `/roost/files/1`: answers `Have` and `Get` for the
//! files this node holds, whole or in part, to the peers allowed to fetch
//! them (the recipient of our offer, or a buddy). Streams at once are
//! capped; every frame read is bounded; a request that breaks a limit is
//! refused with a typed answer.

use std::sync::Arc;

use futures::{AsyncWriteExt, StreamExt};
use libp2p::PeerId;

use super::bao::{self, Blocking};
use super::{LocalCopy, Shared};
use crate::wire::files::{Answer, MAX_REQUEST, Refusal, Request, Span, check_spans};
use crate::wire::frame::{ReadFrame, read_frame, write_frame};

/// Most streams served at once; a further one is closed unanswered.
const MAX_SERVING: usize = 64;

/// Accepts file streams until the node stops.
pub(super) async fn accept(shared: Arc<Shared>, mut incoming: libp2p_stream::IncomingStreams) {
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_SERVING));
    loop {
        let next = tokio::select! {
            n = incoming.next() => n,
            _ = shared.tasks.stopping() => None,
        };
        let Some((peer, stream)) = next else { break };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many file streams; one refused");
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = serve(&shared, peer, stream).await {
                tracing::debug!(%peer, "file stream ended: {e}");
            }
        });
    }
}

async fn answer(stream: &mut libp2p::Stream, a: &Answer) -> std::io::Result<()> {
    let bytes = crate::wire::encode(a).map_err(std::io::Error::other)?;
    write_frame(stream, &bytes).await?;
    stream.flush().await
}

/// Serves one stream: requests one at a time until the fetcher closes it.
async fn serve(
    shared: &Arc<Shared>,
    peer: PeerId,
    mut stream: libp2p::Stream,
) -> std::io::Result<()> {
    loop {
        let frame = match read_frame(&mut stream, MAX_REQUEST).await? {
            ReadFrame::Frame(f) => f,
            ReadFrame::Eof => return Ok(()),
            ReadFrame::TooLarge(_) => {
                return answer(&mut stream, &Answer::Refused(Refusal::TooLarge)).await;
            }
        };
        let Ok(req) = crate::wire::decode::<Request>(&frame, MAX_REQUEST) else {
            return answer(&mut stream, &Answer::Refused(Refusal::TooLarge)).await;
        };
        match req {
            Request::Have { root } => {
                let a = match shared.local_copy(root, peer).await {
                    Ok(copy) => Answer::Have(shared.held(&copy).await),
                    Err(r) => Answer::Refused(r),
                };
                answer(&mut stream, &a).await?;
            }
            Request::Get { root, ranges } => {
                let copy = match shared.local_copy(root, peer).await {
                    Ok(c) => c,
                    Err(r) => {
                        answer(&mut stream, &Answer::Refused(r)).await?;
                        continue;
                    }
                };
                if let Err(r) = check_spans(&ranges, bao::chunks(copy.size)) {
                    answer(&mut stream, &Answer::Refused(r)).await?;
                    continue;
                }
                if !copy.complete {
                    let held = shared.held(&copy).await;
                    let inside = ranges
                        .iter()
                        .all(|&(a, b)| held.iter().any(|&(ha, hb)| ha <= a && b <= hb));
                    if !inside {
                        answer(&mut stream, &Answer::Refused(Refusal::Missing)).await?;
                        continue;
                    }
                }
                answer(&mut stream, &Answer::Sending).await?;
                stream = send(shared, stream, copy, ranges).await?;
            }
        }
    }
}

/// Writes the verified stream of `spans` of `copy`, on a blocking thread;
/// gives the stream back. The bytes are counted as served as they go out,
/// whether the piece completes or not.
async fn send(
    shared: &Arc<Shared>,
    stream: libp2p::Stream,
    copy: LocalCopy,
    spans: Vec<Span>,
) -> std::io::Result<libp2p::Stream> {
    #[cfg(feature = "test-util")]
    if let Some(ms) = super::test_hooks::serve_delay_ms(&shared.dir) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    #[cfg(feature = "test-util")]
    if super::test_hooks::held(&shared.dir, "serve") {
        super::test_hooks::lifted(&shared.dir, "serve").await;
    }
    let rt = tokio::runtime::Handle::current();
    let c = copy;
    #[cfg(feature = "test-util")]
    let lie = super::test_hooks::corrupt(&shared.dir);
    #[cfg(feature = "test-util")]
    let trickle = super::test_hooks::trickle_ms(&shared.dir);
    let shared = shared.clone();
    let (back, result) = tokio::task::spawn_blocking(move || {
        let mut w = Counting {
            inner: Blocking::new(stream, rt),
            shared,
            root: c.root,
        };
        #[cfg(feature = "test-util")]
        let r = if lie {
            let mut liar = super::test_hooks::Corrupting::new(&mut w);
            bao::encode(&c.data, &c.obao, c.size, c.root, &spans, &mut liar)
        } else if let Some(ms) = trickle {
            let mut slow = super::test_hooks::Trickling::new(&mut w, ms);
            bao::encode(&c.data, &c.obao, c.size, c.root, &spans, &mut slow)
        } else {
            bao::encode(&c.data, &c.obao, c.size, c.root, &spans, &mut w)
        };
        #[cfg(not(feature = "test-util"))]
        let r = bao::encode(&c.data, &c.obao, c.size, c.root, &spans, &mut w);
        (w.inner.inner, r)
    })
    .await
    .map_err(std::io::Error::other)?;
    result.map_err(std::io::Error::other)?;
    Ok(back)
}

/// Counts the bytes that went out on the stream as served, as they go.
struct Counting<W> {
    inner: W,
    shared: Arc<Shared>,
    root: [u8; 32],
}

impl<W: std::io::Write> std::io::Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.shared.count_served(self.root, n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
