//! FILES on the wire: the offer a sender seals into an ordinary message,
//! and the frames of the `/roost/files/1` stream that moves the content.
//!
//! A fetcher opens a stream to a source and writes length-prefixed CBOR
//! [`Request`]s, one at a time. The source answers each with an [`Answer`]
//! frame; after [`Answer::Sending`] come the bytes of a BLAKE3 verified
//! stream (bao-tree's encoding of the requested chunk ranges, with the
//! parent hashes needed to check them against the offer's root), whose
//! length both sides know from the file's size and the ranges. Every limit
//! below bounds what a peer can make the other allocate or do.

use serde::{Deserialize, Serialize};

use super::WireError;
use super::message::MessageId;

/// The stream protocol of file content.
pub const PROTOCOL: &str = "/roost/files/1";
/// Content type of the message that carries an [`Offer`]: the offer rides
/// the ordinary message path (sealed, acknowledged, mailboxed).
pub const OFFER_TYPE: &str = "application/vnd.roost.file-offer";
/// Largest [`Request`] frame.
pub const MAX_REQUEST: usize = 4 * 1024;
/// Largest [`Answer`] frame (a list of up to [`MAX_RANGES`] ranges).
pub const MAX_ANSWER: usize = 8 * 1024;
/// Most ranges in one request or answer.
pub const MAX_RANGES: usize = 256;
/// Most chunks (1 KiB each) one `Get` may ask for: 8 MiB.
pub const MAX_GET_CHUNKS: u64 = 8 * 1024;
/// Longest file name in an offer, in bytes.
pub const MAX_NAME: usize = 255;
/// Longest MIME type in an offer.
pub const MAX_MIME: usize = 128;
/// Largest offer message body.
pub const MAX_OFFER: usize = 1024;
/// Bytes per BLAKE3 chunk: ranges count in these.
pub const CHUNK: u64 = 1024;
/// Content type of a message carrying a [`Part`] of a small file.
pub const PART_TYPE: &str = "application/vnd.roost.file-part";
/// Chunks per [`Part`]: 48 KiB and their hashes fit a message body.
pub const PART_CHUNKS: u64 = 48;

/// A piece of a small file riding in a message: the verified stream of one
/// chunk range, checked against the offer's root like any other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// The file (the offer's id).
    pub file: MessageId,
    /// The chunk range carried.
    pub span: Span,
    /// bao-tree's encoding of `span`.
    #[serde(with = "serde_bytes")]
    pub bao: Vec<u8>,
}

impl Part {
    /// The part as a message body.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        super::encode(self)
    }

    /// Reads a part from a message body (at most a message body's size).
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let part: Self = super::decode(body, super::message::MAX_BODY)?;
        if part.span.0 >= part.span.1 || part.span.1 - part.span.0 > PART_CHUNKS {
            return Err(WireError::Malformed("file part span".into()));
        }
        Ok(part)
    }
}

/// What a sender offers: enough for the recipient to decide, to name the
/// file and to verify every byte of it against `root`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The transfer's id on both sides.
    pub file: MessageId,
    /// The file's name, without any directory.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its MIME type (guessed from the name by the sender).
    pub mime: String,
    /// BLAKE3 root of the content (bao-tree, 16 KiB chunk groups).
    #[serde(with = "serde_bytes")]
    pub root: [u8; 32],
}

impl Offer {
    /// The offer as a message body.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        super::encode(self)
    }

    /// Reads an offer from a message body, refusing one whose fields are
    /// over their limits or whose name could leave the files directory.
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let offer: Self = super::decode(body, MAX_OFFER)?;
        if !name_is_safe(&offer.name) || offer.mime.len() > MAX_MIME {
            return Err(WireError::Malformed("file offer fields".into()));
        }
        Ok(offer)
    }
}

/// A name that is one plain path component: not empty, no separators, no
/// `.`/`..`, no control characters, at most [`MAX_NAME`] bytes.
pub fn name_is_safe(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
}

/// A half-open range of chunk numbers, `start..end`.
pub type Span = (u64, u64);

/// Fetcher to source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Which chunk ranges of the file with this root do you hold?
    Have {
        /// The file's root.
        #[serde(with = "serde_bytes")]
        root: [u8; 32],
    },
    /// Send these chunk ranges of the file with this root.
    Get {
        /// The file's root.
        #[serde(with = "serde_bytes")]
        root: [u8; 32],
        /// Sorted, disjoint, non-empty ranges.
        ranges: Vec<Span>,
    },
}

/// Source to fetcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// The ranges held, verified.
    Have(Vec<Span>),
    /// The verified stream of the requested ranges follows.
    Sending,
    /// Not served.
    Refused(Refusal),
}

/// Why a source does not serve a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// The fetcher is neither the offer's recipient nor a buddy.
    #[error("not allowed to fetch this file")]
    NotAllowed,
    /// No such file here (or not the requested ranges).
    #[error("file or ranges not held here")]
    Missing,
    /// The request breaks a limit.
    #[error("request over the limits")]
    TooLarge,
}

/// Checks a range list: at most [`MAX_RANGES`], sorted, disjoint, each
/// non-empty and within `chunks`; returns the number of chunks asked.
pub fn check_spans(spans: &[Span], chunks: u64) -> Result<u64, Refusal> {
    if spans.is_empty() || spans.len() > MAX_RANGES {
        return Err(Refusal::TooLarge);
    }
    let mut prev_end = 0;
    let mut total = 0u64;
    for (i, &(a, b)) in spans.iter().enumerate() {
        if a >= b || b > chunks || (i > 0 && a < prev_end) {
            return Err(Refusal::Missing);
        }
        prev_end = b;
        total += b - a;
    }
    if total > MAX_GET_CHUNKS {
        return Err(Refusal::TooLarge);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_round_trip_and_unsafe_names_are_refused() {
        let offer = Offer {
            file: MessageId::random(),
            name: "photo.png".into(),
            size: 200 * 1024,
            mime: "image/png".into(),
            root: [7; 32],
        };
        assert_eq!(Offer::decode(&offer.encode().unwrap()).unwrap(), offer);
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "..\\x",
            "x\ny",
            &"n".repeat(MAX_NAME + 1),
        ] {
            let o = Offer {
                name: bad.into(),
                ..offer.clone()
            };
            assert!(Offer::decode(&o.encode().unwrap()).is_err(), "{bad:?}");
        }
        assert!(Offer::decode(&[0xff; MAX_OFFER + 1]).is_err());
    }

    #[test]
    fn spans_are_checked() {
        assert_eq!(check_spans(&[(0, 16), (32, 48)], 100), Ok(32));
        assert_eq!(check_spans(&[], 100), Err(Refusal::TooLarge));
        assert_eq!(check_spans(&[(5, 5)], 100), Err(Refusal::Missing));
        assert_eq!(check_spans(&[(0, 101)], 100), Err(Refusal::Missing));
        assert_eq!(
            check_spans(&[(10, 20), (15, 30)], 100),
            Err(Refusal::Missing)
        );
        assert_eq!(
            check_spans(&[(0, MAX_GET_CHUNKS + 1)], u64::MAX),
            Err(Refusal::TooLarge)
        );
        let many: Vec<Span> = (0..MAX_RANGES as u64 + 1)
            .map(|i| (2 * i, 2 * i + 1))
            .collect();
        assert_eq!(check_spans(&many, u64::MAX), Err(Refusal::TooLarge));
    }
}
