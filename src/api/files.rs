//! The handlers of `/api/v1/` about bytes: a message body and a received
//! file served as they are, as downloads (an image type kept, any other
//! type as `application/octet-stream`); and file transfers (docs/api.md,
//! docs/files.md).

use axum::extract::{Path, Query, State};
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
        .route("/api/v1/files/{id}/content", get(content))
        .route("/api/v1/files/upload", post(upload))
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
    Ok((
        attachment(
            &found.content_type,
            header::HeaderValue::from_static("attachment"),
        ),
        found.data,
    )
        .into_response())
}

/// The headers of bytes a peer chose, served to the web app's origin: an
/// attachment in a sandbox, with the type kept only for the images of
/// [`SHOWN_AS_IS`], else `application/octet-stream`.
fn attachment(
    mime: &str,
    disposition: header::HeaderValue,
) -> [(header::HeaderName, header::HeaderValue); 4] {
    let content_type = SHOWN_AS_IS
        .into_iter()
        .find(|t| mime.eq_ignore_ascii_case(t))
        .unwrap_or("application/octet-stream");
    [
        (
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(content_type),
        ),
        (header::CONTENT_DISPOSITION, disposition),
        (
            header::CONTENT_SECURITY_POLICY,
            header::HeaderValue::from_static("sandbox"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            header::HeaderValue::from_static("nosniff"),
        ),
    ]
}

/// `attachment` with the file's name for the browser to save it under
/// (RFC 6266: an ASCII fallback, and the exact name percent-encoded in
/// `filename*`). The name comes from a peer: only unreserved characters
/// pass unencoded, so nothing in it can end or extend the header.
fn disposition(name: &str) -> header::HeaderValue {
    let plain: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._- ()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    header::HeaderValue::from_str(&format!(
        "attachment; filename=\"{plain}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| header::HeaderValue::from_static("attachment"))
}

/// Bytes read from disk per piece of a served file: memory stays flat
/// whatever the file's size.
const PIECE: usize = 64 * 1024;

/// `GET /api/v1/files/{id}/content`: a received file that completed, as
/// a download under its name, with the same sandbox as message bodies
/// (the sender chose the name and the type). Streamed from disk in
/// [`PIECE`]s. A file not received, not complete, gone from its place,
/// or whose size no longer matches the offer is refused.
async fn content(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&id, "file")?;
    let t = s.node.file(id).await?.transfer;
    let refuse = |code, why: &str| ApiError(code, why.to_string());
    if t.direction != crate::store::FileDirection::In
        || t.state != crate::store::TransferState::Complete
    {
        return Err(refuse(
            StatusCode::CONFLICT,
            "only a received file that completed is served",
        ));
    }
    let path = t
        .path
        .ok_or_else(|| refuse(StatusCode::NOT_FOUND, "the file has no place on disk"))?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| refuse(StatusCode::NOT_FOUND, &format!("cannot open {path}: {e}")))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| refuse(StatusCode::NOT_FOUND, &e.to_string()))?
        .len();
    if len != t.size {
        return Err(refuse(
            StatusCode::CONFLICT,
            &format!("{path} changed on disk since it completed"),
        ));
    }
    let stream = futures::stream::try_unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; PIECE];
        let n = f.read(&mut buf).await?;
        if n == 0 {
            return Ok::<_, std::io::Error>(None);
        }
        buf.truncate(n);
        Ok(Some((axum::body::Bytes::from(buf), f)))
    });
    let mut resp = (
        attachment(&t.mime, disposition(&t.name)),
        axum::body::Body::from_stream(stream),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    Ok(resp)
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
    Ok(Json(sent_view(msg, t)))
}

/// The answer to a file offered: its offer message and its transfer.
fn sent_view(msg: MessageId, t: crate::store::Transfer) -> SendFileView {
    SendFileView {
        id: msg.to_string(),
        state: "queued".into(),
        file: SentFile {
            id: t.id.to_string(),
            name: t.name,
            size: t.size,
        },
    }
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

/// Largest file `POST /api/v1/files/upload` takes: the browser's file is
/// written to the data dir before it is offered.
pub const MAX_UPLOAD: u64 = 2 << 30;

#[derive(serde::Deserialize)]
struct UploadQuery {
    to: String,
    name: String,
}

/// `POST /api/v1/files/upload?to=PEER&name=NAME`: the request's body is a
/// file to send (a browser cannot name a path on disk). It streams to
/// `<data-dir>/uploads/<random>/NAME` (at most [`MAX_UPLOAD`] bytes, and
/// leaving `[files] free_margin_mib` free on the disk; never whole in
/// memory), then is offered like `files/send`. A refused or broken upload
/// leaves nothing behind; a file to ourselves is refused before a byte is
/// read.
async fn upload(
    State(s): State<AppState>,
    Query(q): Query<UploadQuery>,
    headers: header::HeaderMap,
    body: axum::body::Body,
) -> Result<Json<SendFileView>, ApiError> {
    let to = s.node.resolve(&q.to).await?;
    if to == s.node.peer_id() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "a file cannot be sent to ourselves".into(),
        ));
    }
    if !crate::wire::files::name_is_safe(&q.name) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "not a file name (one path component, no control characters)".into(),
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_UPLOAD) {
        return Err(too_large());
    }
    let room = s.node.upload_room().await;
    if let (Some(n), Some(room)) = (declared, room)
        && n > room
    {
        return Err(no_room(room));
    }
    let dir = s.node.upload_dir().join(MessageId::random().to_string());
    let made = dir.clone();
    tokio::task::spawn_blocking(move || crate::config::ensure_private_dir(&made))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let path = dir.join(&q.name);
    let sent = match write_capped(body, &path, room).await {
        Ok(()) => s.node.send_file(to, path).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    if sent.is_err() {
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&dir)).await;
    }
    let (msg, t) = sent?;
    Ok(Json(sent_view(msg, t)))
}

fn too_large() -> ApiError {
    ApiError(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("a file to send through the API is at most {MAX_UPLOAD} bytes"),
    )
}

fn no_room(room: u64) -> ApiError {
    ApiError(
        StatusCode::INSUFFICIENT_STORAGE,
        format!(
            "the file would leave less than free_margin_mib free on the data directory's \
             disk ({room} bytes may be written)"
        ),
    )
}

/// Writes `body` to a new file at `path`, piece by piece, refusing more
/// than [`MAX_UPLOAD`] bytes or more than `room` (what the free-space
/// margin leaves); synced before it returns.
async fn write_capped(
    body: axum::body::Body,
    path: &std::path::Path,
    room: Option<u64>,
) -> Result<(), ApiError> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let io = |e: std::io::Error| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await
        .map_err(io)?;
    let mut stream = body.into_data_stream();
    let mut n: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
        n = n.saturating_add(chunk.len() as u64);
        if n > MAX_UPLOAD {
            return Err(too_large());
        }
        if let Some(room) = room.filter(|&r| n > r) {
            return Err(no_room(room));
        }
        f.write_all(&chunk).await.map_err(io)?;
    }
    f.sync_all().await.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_file_name_cannot_end_or_extend_the_disposition_header() {
        let v = disposition("a\"; filename=evil.html; x=\"é .pdf");
        let s = v.to_str().expect("ASCII only");
        assert_eq!(
            s,
            "attachment; filename=\"a__ filename_evil.html_ x___ .pdf\"; \
             filename*=UTF-8''a%22%3B%20filename%3Devil.html%3B%20x%3D%22%C3%A9%20.pdf"
        );
        assert_eq!(s.matches('"').count(), 2, "{s}");
    }

    #[test]
    fn only_plain_images_keep_their_type() {
        let kept = |mime: &str| {
            attachment(mime, header::HeaderValue::from_static("attachment"))[0]
                .1
                .to_str()
                .map(str::to_string)
                .unwrap_or_default()
        };
        assert_eq!(kept("image/PNG"), "image/png");
        for risky in ["text/html", "image/svg+xml", "application/javascript", ""] {
            assert_eq!(kept(risky), "application/octet-stream", "{risky}");
        }
    }
}
