//! Bytes each in-process node writes on its memory-transport connections
//! (`/memory/N`, the benchmarks' transport): what a node really puts on
//! the wire — Noise, Yamux and every protocol included — counted, not
//! estimated. TCP and QUIC connections are not counted.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncWrite};
use libp2p::PeerId;

/// One counter per local peer id that ever built a swarm in this process
/// (a benchmark's nodes; a node restarted keeps its counter).
fn counters() -> &'static Mutex<HashMap<PeerId, Arc<AtomicU64>>> {
    static COUNTERS: OnceLock<Mutex<HashMap<PeerId, Arc<AtomicU64>>>> = OnceLock::new();
    COUNTERS.get_or_init(Default::default)
}

/// The counter of the node `peer`.
pub(crate) fn counter(peer: PeerId) -> Arc<AtomicU64> {
    let mut map = counters().lock().unwrap_or_else(|e| e.into_inner());
    map.entry(peer).or_default().clone()
}

/// Bytes the node `peer` has written on memory-transport connections so
/// far (0 for a node that never had one).
pub fn memory_bytes_written(peer: &PeerId) -> u64 {
    let map = counters().lock().unwrap_or_else(|e| e.into_inner());
    map.get(peer).map_or(0, |c| c.load(Ordering::Relaxed))
}

/// A connection whose written bytes are added to a counter.
pub(crate) struct Counted<S> {
    inner: S,
    written: Arc<AtomicU64>,
}

impl<S> Counted<S> {
    /// Wraps `inner`, counting into `written`.
    pub(crate) fn new(inner: S, written: Arc<AtomicU64>) -> Self {
        Self { inner, written }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &res {
            self.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
