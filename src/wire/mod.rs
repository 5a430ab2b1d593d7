//! Everything that crosses the network, as CBOR (ciborium) with hard size
//! limits. Decoding is the first thing done with hostile bytes, so every
//! decoder here checks the length before parsing and returns a typed error;
//! ciborium then allocates at most in proportion to the input.

pub(crate) mod addr;
pub mod files;
pub mod frame;
#[cfg(feature = "test-util")]
pub mod fuzz;
pub mod group;
pub mod invite;
pub mod locator;
pub mod mailbox;
pub mod message;
pub mod presence;
#[cfg(test)]
mod proptests;
pub mod room;
pub(crate) mod signed;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Nesting deeper than this is refused (our types nest at most 4 deep).
const MAX_DEPTH: usize = 16;

/// Why bytes from the network were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Longer than the type's limit; not parsed at all.
    #[error("{len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Bytes received.
        len: usize,
        /// Bytes allowed.
        max: usize,
    },
    /// Not valid CBOR for the expected type.
    #[error("malformed CBOR: {0}")]
    Malformed(String),
    /// Bytes left over after the value: refused, so one value has one
    /// encoding and anything keyed by a hash of the bytes (a room
    /// message's id) cannot be varied by padding.
    #[error("{0} bytes after the value")]
    Trailing(usize),
}

/// Encodes a value we built ourselves. Our types always serialise, so a
/// failure here is a bug, reported rather than panicking.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(128);
    ciborium::ser::into_writer(value, &mut out).map_err(|e| WireError::Malformed(e.to_string()))?;
    Ok(out)
}

/// Decodes untrusted bytes, refusing anything longer than `max` before
/// looking inside, and anything left over after the one value.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, WireError> {
    if bytes.len() > max {
        return Err(WireError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    let mut rest = bytes;
    let value = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_DEPTH)
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Trailing(rest.len()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_after_the_value_are_refused() {
        let mut bytes = encode(&(7u8, "x")).unwrap();
        assert_eq!(decode::<(u8, String)>(&bytes, 100), Ok((7, "x".into())));
        bytes.push(0);
        assert_eq!(
            decode::<(u8, String)>(&bytes, 100),
            Err(WireError::Trailing(1))
        );
    }

    #[test]
    fn oversize_input_is_refused_before_parsing() {
        let big = vec![0u8; 100];
        assert_eq!(
            decode::<u8>(&big, 10),
            Err(WireError::TooLarge { len: 100, max: 10 })
        );
    }

    #[test]
    fn a_lying_length_header_does_not_allocate_or_panic() {
        // Byte string header claiming 2^63 bytes, followed by nothing.
        let lie = [0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            decode::<serde_bytes::ByteBuf>(&lie, 64),
            Err(WireError::Malformed(_))
        ));
        // Array header claiming 2^32 elements.
        let lie = [0x9b, 0, 0, 0, 1, 0, 0, 0, 0];
        assert!(decode::<Vec<u64>>(&lie, 64).is_err());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = vec![0x81u8; 1000]; // [[[[...
        assert!(decode::<ciborium::Value>(&deep, 2048).is_err());
    }
}
