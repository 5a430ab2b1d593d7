//! The JSON bodies clients send to the local API: one type per body, which
//! the server's handlers extract and the CLI's client serializes, so both
//! sides speak the same shape (docs/api.md is the contract). `POST
//! /api/v1/presence` takes [`super::OwnPresence`], the shape it answers with.
//! The rules (which names resolve, which states exist, the limits) are the
//! server's; these types only carry what the user typed.

use serde::{Deserialize, Serialize};

/// `POST /api/v1/send` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendRequest {
    /// Recipient: a buddy's name or an ID.
    pub to: String,
    /// The body as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The body as hex, for binary content types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
    /// The body as standard base64 (with padding), for binary content
    /// types: a third of the size of hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    /// MIME type (default `text/plain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Optional subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// `POST /api/v1/buddies` body: exactly one of `id` and `invite`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddBuddy {
    /// The ID to add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// My name for it (default: the start of the ID).
    #[serde(default)]
    pub name: Option<String>,
    /// An invite (`roost:…`): its owner is added, and its addresses are
    /// used to reach the owner and to join the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<String>,
}

/// `POST /api/v1/buddies/{peer}/{action}` body: only `rename` reads it;
/// the other actions take `{}` or no body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BuddyAction {
    /// The new name, for `rename`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `POST /api/v1/files/send` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendFileRequest {
    /// Recipient: a buddy's name or an ID.
    pub to: String,
    /// The file to offer, as the daemon sees the file system (absolute,
    /// or relative to the daemon's working directory).
    pub path: String,
}

/// `POST /api/v1/files/{id}/get` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GetFileRequest {
    /// Where the file lands (default: under `<data-dir>/files/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out: Option<String>,
}

/// `{}`: the body of a `POST` that takes none (`/api/v1/read/{peer}`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BuddyActionView, ReadView};

    fn json(v: &impl Serialize) -> String {
        serde_json::to_string(v).unwrap()
    }

    #[test]
    fn bodies_are_the_documented_json() {
        let send = SendRequest {
            to: "bob".into(),
            text: Some("hi".into()),
            hex: None,
            base64: None,
            content_type: Some("text/plain".into()),
            subject: None,
        };
        assert_eq!(
            json(&send),
            r#"{"to":"bob","text":"hi","content_type":"text/plain"}"#
        );
        let add = AddBuddy {
            id: Some("12D3KooW".into()),
            name: None,
            invite: None,
        };
        assert_eq!(json(&add), r#"{"id":"12D3KooW","name":null}"#);
        let by_invite = AddBuddy {
            id: None,
            name: Some("alice".into()),
            invite: Some("roost:AAAA".into()),
        };
        assert_eq!(
            json(&by_invite),
            r#"{"name":"alice","invite":"roost:AAAA"}"#
        );
        assert_eq!(json(&BuddyAction::default()), "{}");
        let rename = BuddyAction {
            name: Some("robert".into()),
        };
        assert_eq!(json(&rename), r#"{"name":"robert"}"#);
        assert_eq!(json(&Empty {}), "{}");
    }

    #[test]
    fn answers_keep_their_bytes() {
        let done = BuddyActionView {
            done: "hide".into(),
            id: "12D3KooW".into(),
        };
        assert_eq!(json(&done), r#"{"done":"hide","id":"12D3KooW"}"#);
        assert_eq!(json(&ReadView { read: 3 }), r#"{"read":3}"#);
    }

    #[test]
    fn the_server_reads_what_other_clients_send() {
        let send: SendRequest = serde_json::from_str(r#"{"to":"bob","hex":"00ff"}"#).unwrap();
        assert_eq!((send.text, send.hex.as_deref()), (None, Some("00ff")));
        let none: BuddyAction = serde_json::from_str("{}").unwrap();
        assert_eq!(none.name, None);
    }
}
