//! Length-prefixed framing (4-byte big-endian length, then the bytes) for
//! our streams, with a hard limit checked before anything is allocated; and
//! [`CborCodec`], the request-response codec of the mailbox and presence
//! protocols built on it.

use std::io;
use std::marker::PhantomData;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Writes one length-prefixed frame (not flushed), as a single write: on
/// a Yamux stream every write becomes a frame of its own, and every frame
/// is encrypted separately by Noise.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(4 + bytes.len());
    push_frame(&mut buf, bytes)?;
    w.write_all(&buf).await
}

/// Appends one length-prefixed frame to `buf`, so that many frames can go
/// out in one write (one Yamux frame, one Noise encryption, one system
/// call for all of them).
pub fn push_frame(buf: &mut Vec<u8>, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(bytes);
    Ok(())
}

/// A frame read from a stream.
#[derive(Debug)]
pub enum ReadFrame {
    /// A frame of acceptable size.
    Frame(Vec<u8>),
    /// The peer announced a frame over the limit; the stream cannot be
    /// trusted to resynchronise and should be closed after answering.
    TooLarge(usize),
    /// Clean end of stream.
    Eof,
}

/// Reads one length-prefixed frame of at most `max` bytes; never allocates
/// more than `max`.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> std::io::Result<ReadFrame> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(ReadFrame::Eof),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Ok(ReadFrame::TooLarge(len));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(ReadFrame::Frame(buf))
}

/// A request-response codec: one CBOR frame each way, each side with its
/// own size limit. Values are encoded into a buffer before the first await.
pub struct CborCodec<Req, Resp> {
    max_request: usize,
    max_response: usize,
    _types: PhantomData<fn() -> (Req, Resp)>,
}

impl<Req, Resp> CborCodec<Req, Resp> {
    /// A codec refusing requests over `max_request` and responses over
    /// `max_response` bytes.
    pub fn new(max_request: usize, max_response: usize) -> Self {
        Self {
            max_request,
            max_response,
            _types: PhantomData,
        }
    }
}

impl<Req, Resp> Clone for CborCodec<Req, Resp> {
    fn clone(&self) -> Self {
        Self::new(self.max_request, self.max_response)
    }
}

async fn read_value<T: DeserializeOwned, R: AsyncRead + Unpin>(
    io: &mut R,
    max: usize,
) -> io::Result<T> {
    match read_frame(io, max).await? {
        ReadFrame::Frame(bytes) => super::decode(&bytes, max).map_err(io::Error::other),
        ReadFrame::TooLarge(len) => Err(io::Error::other(format!(
            "frame of {len} bytes over the {max}-byte limit"
        ))),
        ReadFrame::Eof => Err(io::ErrorKind::UnexpectedEof.into()),
    }
}

/// Encodes before the first await, so the future holds bytes, not the value.
fn encode_value<T: Serialize>(value: &T, max: usize) -> io::Result<Vec<u8>> {
    let bytes = super::encode(value).map_err(io::Error::other)?;
    if bytes.len() > max {
        return Err(io::Error::other("value over the frame limit"));
    }
    Ok(bytes)
}

async fn write_bytes<W: AsyncWrite + Unpin>(
    io: &mut W,
    bytes: io::Result<Vec<u8>>,
) -> io::Result<()> {
    write_frame(io, &bytes?).await?;
    io.close().await
}

impl<Req, Resp> libp2p::request_response::Codec for CborCodec<Req, Resp>
where
    Req: Serialize + DeserializeOwned + Send + 'static,
    Resp: Serialize + DeserializeOwned + Send + 'static,
{
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Resp;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Req>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_value(io, self.max_request).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Resp>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_value(io, self.max_response).await
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Req) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let bytes = encode_value(&req, self.max_request);
        drop(req);
        write_bytes(io, bytes).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Resp,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let bytes = encode_value(&res, self.max_response);
        drop(res);
        write_bytes(io, bytes).await
    }
}
