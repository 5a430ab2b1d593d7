//! The handlers of `/api/v1/` about bytes: a message body served as it is,
//! as a download (an image type kept, any other type as
//! `application/octet-stream`); and file transfers (docs/api.md,
//! docs/files.md).

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::requests::{GetFileRequest, SendFileRequest};
use super::views::{FileRow, SendFileView, SentFile};
use super::{ApiError, AppState};
use crate::wire::message::MessageId;

/// The routes of this module, merged into the API's router.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/log/{peer}/{id}/body", get(body))
        .route("/api/v1/files", get(list))
        .route("/api/v1/files/send", post(send))
        .route("/api/v1/files/{id}", get(one))
        .route("/api/v1/files/{id}/get", post(fetch))
        .route("/api/v1/files/{id}/cancel", post(cancel))
}

fn parse_id(id: &str, what: &str) -> Result<MessageId, ApiError> {
    id.parse()
        .map_err(|_| ApiError(StatusCode::BAD_REQUEST, format!("not a {what} id")))
}

/// The body types served as they are: images a browser shows without
/// running anything. Any other type (a peer picks it: `text/html`,
/// `text/javascript`…) would run on the web app's origin with its session.
const SHOWN_AS_IS: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// `GET /api/v1/log/{peer}/{id}/body`: the exact bytes of a message body
/// exchanged with `peer`, as an attachment in a sandbox (CSP `sandbox`),
/// with its type if an image, else `application/octet-stream`: the sender
/// chose the type, and the body must never run as a page of the web app.
async fn body(
    State(s): State<AppState>,
    Path((peer, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let peer = s.node.resolve(&peer).await?;
    let id = parse_id(&id, "message")?;
    let found = s
        .node
        .conversation(peer, usize::MAX)
        .await?
        .into_iter()
        .find(|m| m.id == id)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no message {id}")))?;
    let content_type = SHOWN_AS_IS
        .into_iter()
        .find(|t| found.content_type.eq_ignore_ascii_case(t))
        .unwrap_or("application/octet-stream");
    Ok((
        [
            (
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(content_type),
            ),
            (
                header::CONTENT_DISPOSITION,
                header::HeaderValue::from_static("attachment"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                header::HeaderValue::from_static("sandbox"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                header::HeaderValue::from_static("nosniff"),
            ),
        ],
        found.data,
    )
        .into_response())
}

async fn list(State(s): State<AppState>) -> Result<Json<Vec<FileRow>>, ApiError> {
    Ok(Json(
        s.node.files().await?.iter().map(FileRow::from).collect(),
    ))
}

async fn one(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<FileRow>, ApiError> {
    let id = parse_id(&id, "file")?;
    Ok(Json(FileRow::from(&s.node.file(id).await?)))
}

async fn send(
    State(s): State<AppState>,
    Json(req): Json<SendFileRequest>,
) -> Result<Json<SendFileView>, ApiError> {
    let to = s.node.resolve(&req.to).await?;
    let (msg, t) = s.node.send_file(to, req.path.into()).await?;
    Ok(Json(SendFileView {
        id: msg.to_string(),
        state: "queued".into(),
        file: SentFile {
            id: t.id.to_string(),
            name: t.name,
            size: t.size,
        },
    }))
}

async fn fetch(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Option<Json<GetFileRequest>>,
) -> Result<Json<FileRow>, ApiError> {
    let id = parse_id(&id, "file")?;
    let out = body.and_then(|b| b.0.out).map(Into::into);
    Ok(Json(FileRow::from(&s.node.get_file(id, out).await?)))
}

async fn cancel(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<FileRow>, ApiError> {
    let id = parse_id(&id, "file")?;
    Ok(Json(FileRow::from(&s.node.cancel_file(id).await?)))
}
