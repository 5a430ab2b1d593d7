//! The local HTTP+JSON API under `/api/v1/`, on loopback only, behind a
//! bearer token. The daemon writes `<data-dir>/api.json` (mode 0600) with
//! the URL and token; the CLI reads it to find the daemon. Anyone who can
//! read that file already owns the data dir, so that is the whole
//! authentication story for a single-user machine.

pub mod client;

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::node::{Content, NodeError, NodeHandle};
use crate::store::{Direction, StoredMessage};

/// Name of the file that tells clients where the API is.
pub const API_FILE: &str = "api.json";

/// Contents of `api.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiInfo {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// Bearer token for every request.
    pub token: String,
}

/// `GET /api/v1/id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdView {
    /// The node's ID.
    pub id: String,
    /// Its listen addresses, each ending in `/p2p/<ID>`.
    pub addrs: Vec<String>,
}

/// `GET /api/v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusView {
    /// The node's ID.
    pub id: String,
    /// Number of connected peers.
    pub peers: usize,
    /// Its listen addresses.
    pub addrs: Vec<String>,
    /// Messages waiting in the outbox.
    pub outbox: usize,
    /// Mailbox items held for others.
    pub held: usize,
}

/// `POST /api/v1/send` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendRequest {
    /// Recipient ID.
    pub to: String,
    /// The body as text.
    pub text: String,
    /// MIME type (default `text/plain`).
    #[serde(default)]
    pub content_type: Option<String>,
    /// Optional subject.
    #[serde(default)]
    pub subject: Option<String>,
}

/// `POST /api/v1/send` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendView {
    /// The new message's id.
    pub id: String,
    /// Its state (`queued` right after sending).
    pub state: String,
}

/// A message as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageView {
    /// Message id.
    pub id: String,
    /// The other party.
    pub peer: String,
    /// `in` or `out`.
    pub direction: String,
    /// queued | stored | delivered | read | failed (out); unread | read (in).
    pub state: String,
    /// Sender's clock, Unix ms.
    pub sent_at: u64,
    /// MIME type.
    pub content_type: String,
    /// Subject, if any.
    pub subject: Option<String>,
    /// The body as text (lossy for non-UTF-8 bodies).
    pub text: String,
    /// From a key that is not a buddy.
    pub request: bool,
}

impl From<&StoredMessage> for MessageView {
    fn from(m: &StoredMessage) -> Self {
        Self {
            id: m.id.to_string(),
            peer: m.peer_id().map(|p| p.to_string()).unwrap_or_default(),
            direction: match m.direction {
                Direction::In => "in",
                Direction::Out => "out",
            }
            .into(),
            state: m.state.as_str().into(),
            sent_at: m.sent_at,
            content_type: m.content_type.clone(),
            subject: m.subject.clone(),
            text: String::from_utf8_lossy(&m.data).into_owned(),
            request: m.request,
        }
    }
}

/// An error as the API reports it: `{"error": "..."}` with a status code.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        let code = match e {
            NodeError::NotFound(_) => StatusCode::NOT_FOUND,
            NodeError::Content(_) | NodeError::SelfSend | NodeError::Seal(_) => {
                StatusCode::BAD_REQUEST
            }
            NodeError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        };
        ApiError(code, e.to_string())
    }
}

#[derive(Clone)]
struct AppState {
    node: NodeHandle,
    token: std::sync::Arc<str>,
}

/// A running API server; dropping it does not stop it, [`ApiServer::stop`]
/// removes `api.json` so clients stop finding a dead daemon.
pub struct ApiServer {
    /// Where it listens.
    pub addr: SocketAddr,
    file: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl ApiServer {
    /// Stops serving and removes `api.json`.
    pub fn stop(self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Errors starting the API.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Binding the socket or writing `api.json` failed.
    #[error("local API: {0}")]
    Io(#[from] std::io::Error),
    /// Random token generation failed.
    #[error("local API: no randomness for the token")]
    Rng,
}

/// Binds the API on `addr`, writes `api.json` into `data_dir` and serves
/// in the background.
pub async fn serve(
    node: NodeHandle,
    addr: SocketAddr,
    data_dir: &Path,
) -> Result<ApiServer, ServeError> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|_| ServeError::Rng)?;
    let token = hex::encode(raw);
    let info = ApiInfo {
        url: format!("http://{addr}"),
        token: token.clone(),
    };
    let file = data_dir.join(API_FILE);
    write_private(
        &file,
        &serde_json::to_vec_pretty(&info).map_err(std::io::Error::other)?,
    )?;

    let state = AppState {
        node,
        token: token.into(),
    };
    let app = Router::new()
        .route("/api/v1/id", get(id))
        .route("/api/v1/status", get(status))
        .route("/api/v1/send", post(send))
        .route("/api/v1/log/{peer}", get(log))
        .route("/api/v1/inbox", get(inbox))
        .route("/api/v1/read/{peer}", post(mark_read))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("local API stopped: {e}");
        }
    });
    Ok(ApiServer { addr, file, task })
}

/// Writes `bytes` to `path` readable by the owner only (replacing it).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

async fn auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(state.token.as_bytes())) {
        next.run(req).await
    } else {
        ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API token".into(),
        )
        .into_response()
    }
}

async fn id(State(s): State<AppState>) -> Result<Json<IdView>, ApiError> {
    let addrs = s.node.dial_addrs().await?;
    Ok(Json(IdView {
        id: s.node.peer_id().to_string(),
        addrs: addrs.iter().map(|a| a.to_string()).collect(),
    }))
}

async fn status(State(s): State<AppState>) -> Result<Json<StatusView>, ApiError> {
    let peers = s.node.connected_peers().await?.len();
    let addrs = s.node.dial_addrs().await?;
    Ok(Json(StatusView {
        id: s.node.peer_id().to_string(),
        peers,
        addrs: addrs.iter().map(|a| a.to_string()).collect(),
        outbox: s.node.outbox_len().await?,
        held: s.node.held_len().await?,
    }))
}

fn parse_peer(text: &str) -> Result<libp2p::PeerId, ApiError> {
    crate::identity::parse_id(text).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))
}

async fn send(
    State(s): State<AppState>,
    Json(req): Json<SendRequest>,
) -> Result<Json<SendView>, ApiError> {
    let to = parse_peer(&req.to)?;
    let content = Content {
        content_type: req.content_type.unwrap_or_else(|| "text/plain".into()),
        subject: req.subject,
        data: req.text.into_bytes(),
    };
    let id = s.node.send(to, content).await?;
    Ok(Json(SendView {
        id: id.to_string(),
        state: "queued".into(),
    }))
}

#[derive(Deserialize)]
struct LogQuery {
    limit: Option<usize>,
}

async fn log(
    State(s): State<AppState>,
    UrlPath(peer): UrlPath<String>,
    Query(q): Query<LogQuery>,
) -> Result<Json<Vec<MessageView>>, ApiError> {
    let peer = parse_peer(&peer)?;
    let msgs = s.node.conversation(peer, q.limit.unwrap_or(100)).await?;
    Ok(Json(msgs.iter().map(MessageView::from).collect()))
}

async fn inbox(State(s): State<AppState>) -> Result<Json<Vec<MessageView>>, ApiError> {
    let mut msgs = s.node.inbox().await?;
    msgs.extend(s.node.requests().await?);
    msgs.sort_by_key(|m| (m.sent_at, m.id));
    Ok(Json(msgs.iter().map(MessageView::from).collect()))
}

async fn mark_read(
    State(s): State<AppState>,
    UrlPath(peer): UrlPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let peer = parse_peer(&peer)?;
    let n = s.node.mark_read(peer).await?;
    Ok(Json(serde_json::json!({ "read": n })))
}
