//! What a user may send, checked before anything is stored or sealed, so an
//! oversize or ill-typed message fails at `send` with a clear error.

use crate::wire::message::{MAX_BODY, MAX_CONTENT_TYPE, MAX_SUBJECT};

/// The body of a message as the user gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// MIME type; `text/plain` always works.
    pub content_type: String,
    /// Optional subject (CPIM-like header).
    pub subject: Option<String>,
    /// The bytes.
    pub data: Vec<u8>,
}

/// Why content was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// Body over the limit.
    #[error("message body is {len} bytes; the limit is {max} bytes (64 KiB)")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a `type/subtype` MIME type.
    #[error("invalid content type {0:?}: expected type/subtype, e.g. text/plain")]
    BadType(String),
    /// A text type whose body is not UTF-8.
    #[error("a text/* body must be UTF-8")]
    NotUtf8,
    /// Subject over the limit.
    #[error("subject is longer than {MAX_SUBJECT} bytes")]
    SubjectTooLong,
}

impl Content {
    /// Plain text, the type every client understands.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            content_type: "text/plain".into(),
            subject: None,
            data: text.into().into_bytes(),
        }
    }

    /// Checks the limits and the type.
    pub fn validate(&self) -> Result<(), ContentError> {
        if self.data.len() > MAX_BODY {
            return Err(ContentError::TooLarge {
                len: self.data.len(),
                max: MAX_BODY,
            });
        }
        let t = &self.content_type;
        let valid = t.len() <= MAX_CONTENT_TYPE
            && t.is_ascii()
            && t.split_once('/').is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && !t
                        .chars()
                        .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
            });
        if !valid {
            return Err(ContentError::BadType(t.clone()));
        }
        if t.to_ascii_lowercase().starts_with("text/") && std::str::from_utf8(&self.data).is_err() {
            return Err(ContentError::NotUtf8);
        }
        if self.subject.as_ref().is_some_and(|s| s.len() > MAX_SUBJECT) {
            return Err(ContentError::SubjectTooLong);
        }
        Ok(())
    }
}

/// How far ahead of our clock a sender's `sent_at` may be: clocks of
/// honest machines disagree by seconds; five minutes is the tolerance
/// Kerberos settled on for the same problem.
pub const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

/// Whether an incoming message claims to be written further ahead of our
/// clock `now` than [`MAX_CLOCK_SKEW_MS`]. Histories sort by `sent_at`, so
/// such a message would stay above everything that follows for as long as
/// it claims. On a direct link it is refused for now
/// (`Rejected{Unavailable}`): the sender offers it again later and it is
/// taken once its time is near. From a mailbox it is refused for good, so
/// the holder lets go of it (kept, it would head every fetch), and the
/// sender's next deposit brings it again. Either way an honest sender with
/// a fast clock is delayed, not lost. Buddy requests are held to it too. The message is not filed under our own clock instead: an incoming
/// message's key holds its `sent_at`, which is what deduplicates copies of
/// it, so that must be the sender's value. The past is not bounded: a
/// message fetched from a mailbox days later was written days ago.
pub fn from_the_future(claimed: u64, now: u64) -> bool {
    claimed > now.saturating_add(MAX_CLOCK_SKEW_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_small_skew_into_the_future_is_taken() {
        let now = 1_800_000_000_000;
        assert!(!from_the_future(0, now));
        assert!(!from_the_future(now - 86_400_000, now), "a day old");
        assert!(!from_the_future(now, now));
        assert!(!from_the_future(now + 5_000, now), "a fast clock");
        assert!(!from_the_future(now + MAX_CLOCK_SKEW_MS, now));
        assert!(from_the_future(now + MAX_CLOCK_SKEW_MS + 1, now));
        assert!(from_the_future(u64::MAX, now), "far future");
        assert!(!from_the_future(u64::MAX, u64::MAX), "no overflow");
    }

    #[test]
    fn limits_and_types() {
        assert!(Content::text("hi").validate().is_ok());
        assert!(Content::text("x".repeat(MAX_BODY)).validate().is_ok());
        assert!(matches!(
            Content::text("x".repeat(MAX_BODY + 1)).validate(),
            Err(ContentError::TooLarge { .. })
        ));
        let mut c = Content::text("hi");
        c.content_type = "image/png".into();
        c.data = vec![0xff, 0xd8];
        assert!(c.validate().is_ok());
        c.content_type = "nonsense".into();
        assert!(matches!(c.validate(), Err(ContentError::BadType(_))));
        c.content_type = "text/plain".into();
        assert_eq!(c.validate(), Err(ContentError::NotUtf8));
    }
}
