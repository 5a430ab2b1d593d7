//! The handlers of `/api/v1/` that serve bytes as they are: a message body
//! raw, with its own content type, whatever that type is (docs/api.md).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{ApiError, AppState};
use crate::wire::message::MessageId;

/// The routes of this module, merged into the API's router.
pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/log/{peer}/{id}/body", get(body))
}

/// `GET /api/v1/log/{peer}/{id}/body`: the exact bytes of a message body
/// exchanged with `peer`, served with the message's content type, so an
/// image stays an image and a binary body is never read as text.
async fn body(
    State(s): State<AppState>,
    Path((peer, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let peer = s.node.resolve(&peer).await?;
    let id: MessageId = id
        .parse()
        .map_err(|_| ApiError(StatusCode::BAD_REQUEST, "not a message id".into()))?;
    let found = s
        .node
        .conversation(peer, usize::MAX)
        .await?
        .into_iter()
        .find(|m| m.id == id)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no message {id}")))?;
    let content_type = header::HeaderValue::from_str(&found.content_type)
        .unwrap_or(header::HeaderValue::from_static("application/octet-stream"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                header::HeaderValue::from_static("nosniff"),
            ),
        ],
        found.data,
    )
        .into_response())
}
