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

#[cfg(test)]
mod tests {
    use super::*;

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
