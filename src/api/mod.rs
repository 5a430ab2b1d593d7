//! The local HTTP+JSON API under `/api/v1/`, on loopback only by default,
//! behind a bearer token. The daemon writes `<data-dir>/api.json` (mode
//! 0600) with the URL and token; the CLI reads it to find the daemon.
//! Anyone who can read that file already owns the data dir, so that is the
//! whole authentication story for a single-user machine.

pub mod client;
mod routes;
pub mod views;

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

pub use views::*;

use crate::node::{NodeError, NodeHandle};

/// Name of the file that tells clients where the API is.
pub const API_FILE: &str = "api.json";

/// An error as the API reports it: `{"error": "..."}` with a status code.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        let code = match e {
            NodeError::NotFound(_) | NodeError::UnknownName(_) => StatusCode::NOT_FOUND,
            NodeError::Content(_)
            | NodeError::SelfSend
            | NodeError::Seal(_)
            | NodeError::AmbiguousName(_)
            | NodeError::Identity(_) => StatusCode::BAD_REQUEST,
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

/// A running API server. [`ApiServer::stop`] removes `api.json` so clients
/// stop finding a dead daemon.
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
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "the local API listens beyond loopback: anyone who can reach it and has the token controls this node");
    }
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
    let app = routes::router()
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

/// Checks the bearer token (in constant time), and counts every request
/// but the event stream as user activity (for auto-away).
async fn auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !bool::from(given.as_bytes().ct_eq(state.token.as_bytes())) {
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API token".into(),
        )
        .into_response();
    }
    if req.uri().path() != "/api/v1/events" {
        state.node.touch().await;
    }
    next.run(req).await
}
