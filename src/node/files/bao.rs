//! The verified-streaming side of files, over bao-tree: outboards made by
//! streaming a file once, encoding requested chunk ranges from a (possibly
//! partial) file, decoding them into a partial file while checking every
//! chunk against the root, and finding which ranges on disk verify. All
//! blocking: callers run these on blocking threads. Memory is bounded by
//! buffers, never by the file's size.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use std::time::Duration;

use bao_tree::io::outboard::PreOrderOutboard;
use bao_tree::io::sync::{CreateOutboard, decode_ranges, encode_ranges_validated, valid_ranges};
use bao_tree::io::{DecodeError, EncodeError};
use bao_tree::{BaoTree, BlockSize, ChunkNum, ChunkRanges};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::wire::files::{CHUNK, Span};

/// Chunk groups of 16 KiB: the outboard holds one hash pair per group
/// (0.4 % of the file), and a range is verified per group.
pub const BLOCK: BlockSize = BlockSize::from_chunk_log(4);
/// Chunks per group.
pub const GROUP_CHUNKS: u64 = 16;
/// Longest a blocking read or write on a stream may wait.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The number of chunks of a file of `size` bytes.
pub fn chunks(size: u64) -> u64 {
    size.div_ceil(CHUNK)
}

/// Creates the pre-order outboard of `data` at `obao` by reading `data`
/// once, in order. Returns the root and the size.
pub fn create_outboard(data: &Path, obao: &Path) -> io::Result<([u8; 32], u64)> {
    let file = File::open(data)?;
    let size = file.metadata()?.len();
    let out = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(obao)?;
    let mut ob = PreOrderOutboard {
        root: blake3::Hash::from([0; 32]),
        tree: BaoTree::new(size, BLOCK),
        data: out,
    };
    ob.init_from(BufReader::with_capacity(256 * 1024, file).take(size))?;
    ob.data.sync_all()?;
    Ok((*ob.root.as_bytes(), size))
}

/// Opens the outboard of a file of `size` with `root`, creating an empty
/// one (a download's) if `create`.
fn outboard(
    obao: &Path,
    size: u64,
    root: [u8; 32],
    create: bool,
) -> io::Result<PreOrderOutboard<File>> {
    let data = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(obao)?;
    Ok(PreOrderOutboard {
        root: blake3::Hash::from(root),
        tree: BaoTree::new(size, BLOCK),
        data,
    })
}

/// Chunk ranges from spans.
pub fn to_ranges(spans: &[Span]) -> ChunkRanges {
    let mut r = ChunkRanges::empty();
    for &(a, b) in spans {
        r |= ChunkRanges::from(ChunkNum(a)..ChunkNum(b));
    }
    r
}

/// Spans from chunk ranges, an open end closed at `chunks`.
pub fn to_spans(ranges: &ChunkRanges, chunks: u64) -> Vec<Span> {
    let b = ranges.boundaries();
    let mut out = Vec::with_capacity(b.len().div_ceil(2));
    for pair in b.chunks(2) {
        let start = pair[0].0.min(chunks);
        let end = pair.get(1).map_or(chunks, |e| e.0.min(chunks));
        if start < end {
            out.push((start, end));
        }
    }
    out
}

/// The ranges of the (partial) file at `data` that verify against its
/// outboard: what survived a crash, what a partial source can serve.
pub fn verified(data: &Path, obao: &Path, size: u64, root: [u8; 32]) -> io::Result<Vec<Span>> {
    verified_in(data, obao, size, root, &ChunkRanges::all())
}

/// The ranges within `span` of the partial file at `data` that verify:
/// what a piece given back already brought.
pub fn verified_span(
    data: &Path,
    obao: &Path,
    size: u64,
    root: [u8; 32],
    span: Span,
) -> io::Result<Vec<Span>> {
    verified_in(data, obao, size, root, &to_ranges(&[span]))
}

fn verified_in(
    data: &Path,
    obao: &Path,
    size: u64,
    root: [u8; 32],
    within: &ChunkRanges,
) -> io::Result<Vec<Span>> {
    if size == 0 {
        return Ok(Vec::new());
    }
    let ob = match outboard(obao, size, root, false) {
        Ok(ob) => ob,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let file = match File::open(data) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut have = ChunkRanges::empty();
    for r in valid_ranges(&ob, &file, within) {
        have |= ChunkRanges::from(r?);
    }
    Ok(to_spans(&have, chunks(size)))
}

/// Writes the verified stream of `spans` of the file at `data` to `out`;
/// fails, having written part of it, if a range does not verify here.
pub fn encode(
    data: &Path,
    obao: &Path,
    size: u64,
    root: [u8; 32],
    spans: &[Span],
    out: impl Write,
) -> Result<(), EncodeError> {
    let ob = outboard(obao, size, root, false)?;
    let file = File::open(data)?;
    let mut out = io::BufWriter::with_capacity(128 * 1024, out);
    encode_ranges_validated(&file, &ob, &to_ranges(spans), &mut out)?;
    out.flush()?;
    Ok(())
}

/// How a decode ended badly.
#[derive(Debug)]
pub enum DecodeFault {
    /// A chunk or a parent hash did not verify: the source lied.
    Lied(String),
    /// The stream ended or broke, or our disk failed.
    Lost(String),
    /// The piece's deadline passed before it all arrived.
    Slow(String),
}

/// Creates the partial file `part` of a download at its full `size` if it
/// is not there at that size yet; what it holds stays.
pub fn make_partial(part: &Path, size: u64) -> io::Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(part)?;
    if f.metadata()?.len() != size {
        f.set_len(size)?;
    }
    Ok(())
}

/// Reads the verified stream of `spans` from `input` into the partial file
/// `part` and its outboard; every chunk is checked against `root` before
/// it is written. The partial file must exist ([`make_partial`]):
/// a decode that outlives its download, whose file was moved into place
/// meanwhile, fails instead of leaving a new partial file behind.
pub fn decode(
    input: impl Read,
    part: &Path,
    obao: &Path,
    size: u64,
    root: [u8; 32],
    spans: &[Span],
) -> Result<(), DecodeFault> {
    let lost = |e: io::Error| DecodeFault::Lost(e.to_string());
    let mut ob = outboard(obao, size, root, true).map_err(lost)?;
    let mut file = OpenOptions::new().write(true).open(part).map_err(lost)?;
    let input = BufReader::with_capacity(128 * 1024, input);
    decode_ranges(input, &to_ranges(spans), &mut file, &mut ob).map_err(|e| match e {
        DecodeError::ParentHashMismatch(_) | DecodeError::LeafHashMismatch(_) => {
            DecodeFault::Lied(e.to_string())
        }
        e => DecodeFault::Lost(e.to_string()),
    })
}

/// A libp2p stream used from a blocking thread: each read or write waits
/// on the runtime, at most [`IO_TIMEOUT`], and none past the deadline if
/// one is set.
pub struct Blocking<S> {
    /// The stream.
    pub inner: S,
    rt: tokio::runtime::Handle,
    deadline: Option<tokio::time::Instant>,
    /// Whether a read or write failed because the deadline passed.
    pub overdue: bool,
}

impl<S> Blocking<S> {
    /// Wraps `inner`; call from a thread of the runtime or one it spawned.
    pub fn new(inner: S, rt: tokio::runtime::Handle) -> Self {
        Self {
            inner,
            rt,
            deadline: None,
            overdue: false,
        }
    }

    /// Fails every read and write once `at` has passed (a piece that
    /// takes too long), setting [`Blocking::overdue`].
    pub fn until(mut self, at: tokio::time::Instant) -> Self {
        self.deadline = Some(at);
        self
    }
}

/// Runs `f` on the runtime for at most [`IO_TIMEOUT`] and not past
/// `deadline`; says whether it failed for the deadline.
fn timed<T>(
    rt: &tokio::runtime::Handle,
    deadline: Option<tokio::time::Instant>,
    f: impl Future<Output = io::Result<T>>,
) -> (io::Result<T>, bool) {
    let limit = tokio::time::Instant::now() + IO_TIMEOUT;
    let at = deadline.map_or(limit, |d| d.min(limit));
    let r = rt.block_on(async {
        tokio::time::timeout_at(at, f)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "peer stalled"))?
    });
    let overdue = r.is_err() && deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
    (r, overdue)
}

impl<S: AsyncRead + Unpin> Read for Blocking<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (r, overdue) = timed(&self.rt, self.deadline, self.inner.read(buf));
        self.overdue |= overdue;
        r
    }
}

impl<S: AsyncWrite + Unpin> Write for Blocking<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (r, overdue) = timed(&self.rt, self.deadline, self.inner.write(buf));
        self.overdue |= overdue;
        r
    }
    fn flush(&mut self) -> io::Result<()> {
        let (r, overdue) = timed(&self.rt, self.deadline, self.inner.flush());
        self.overdue |= overdue;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_moves_in_two_halves_and_a_flipped_bit_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&src, &data).unwrap();
        let obao = dir.path().join("src.obao");
        let (root, size) = create_outboard(&src, &obao).unwrap();
        assert_eq!(root, *blake3::hash(&data).as_bytes(), "bao root is BLAKE3");
        let n = chunks(size);
        let (part, pob) = (dir.path().join("part"), dir.path().join("part.obao"));
        assert_eq!(verified(&part, &pob, size, root).unwrap(), vec![]);
        let mut wire = Vec::new();
        encode(&src, &obao, size, root, &[(0, 16)], &mut wire).unwrap();
        assert!(
            matches!(
                decode(&wire[..], &part, &pob, size, root, &[(0, 16)]),
                Err(DecodeFault::Lost(_))
            ),
            "a decode made the partial file"
        );
        assert!(!part.exists());
        make_partial(&part, size).unwrap();
        let halves = [(0, 144), (144, n)];
        for h in halves {
            let mut wire = Vec::new();
            encode(&src, &obao, size, root, &[h], &mut wire).unwrap();
            decode(&wire[..], &part, &pob, size, root, &[h]).unwrap();
            assert_eq!(
                verified(&part, &pob, size, root)
                    .unwrap()
                    .last()
                    .map(|s| s.1),
                Some(h.1)
            );
        }
        assert_eq!(verified(&part, &pob, size, root).unwrap(), vec![(0, n)]);
        assert_eq!(std::fs::read(&part).unwrap(), data);

        let mut wire = Vec::new();
        encode(&src, &obao, size, root, &[(16, 32)], &mut wire).unwrap();
        let at = wire.len() - 100;
        wire[at] ^= 1;
        let (p2, o2) = (dir.path().join("p2"), dir.path().join("p2.obao"));
        make_partial(&p2, size).unwrap();
        assert!(matches!(
            decode(&wire[..], &p2, &o2, size, root, &[(16, 32)]),
            Err(DecodeFault::Lied(_))
        ));
        assert!(matches!(
            decode(&wire[..10], &p2, &o2, size, root, &[(16, 32)]),
            Err(DecodeFault::Lost(_))
        ));
    }
}
