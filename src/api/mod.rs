//! The local HTTP+JSON API under `/api/v1/`, served twice:
//!
//! - on a Unix socket, `<data-dir>/api.sock` (mode 0600, in the 0700 data
//!   dir). Only the data dir's owner can create or reach it, so it needs no
//!   token, and a client that checks the data dir is its own and private,
//!   and that the socket's peer runs as its own uid, knows it talks to its
//!   user's daemon. The CLI uses only this ([`client`]): nothing it sends
//!   can reach another local user, even after a crash left stale files
//!   behind or when someone else created the data dir first.
//! - over TCP, on loopback by default, behind a bearer token, for other
//!   clients, and for the web app ([`web`]) behind a session cookie, with
//!   Host and Origin checked. The daemon writes `<data-dir>/api.json` (mode 0600) with the
//!   URL and token. A TCP client cannot tell the daemon from another
//!   process that bound the same port after a crash; docs/api.md says so.

pub mod client;
mod files;
mod group_dispatch;
pub mod groups;
pub mod requests;
pub mod rooms;
mod routes;
pub mod terminal;
pub mod views;
pub mod web;

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

pub use requests::*;
pub use views::*;

use crate::node::{NodeError, NodeHandle};

/// Name of the file that tells TCP clients where the API is.
pub const API_FILE: &str = "api.json";
/// Name of the Unix socket the daemon serves the API on, in the data dir.
pub const API_SOCKET: &str = "api.sock";

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
            | NodeError::Invite(_)
            | NodeError::Identity(_) => StatusCode::BAD_REQUEST,
            NodeError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            NodeError::Room(ref r) => rooms::status_of(r),
            NodeError::Group(ref g) => groups::status_of(g),
            NodeError::File(crate::node::files::FileError::Unknown(_)) => StatusCode::NOT_FOUND,
            NodeError::File(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::BAD_GATEWAY,
        };
        ApiError(code, e.to_string())
    }
}

#[derive(Clone)]
struct AppState {
    node: NodeHandle,
    token: std::sync::Arc<str>,
    web: std::sync::Arc<web::Web>,
}

/// A running API server. [`ApiServer::stop`] removes `api.json` and the
/// socket so clients stop finding a dead daemon.
pub struct ApiServer {
    /// Where the TCP API listens.
    pub addr: SocketAddr,
    /// The Unix socket.
    pub socket: PathBuf,
    file: PathBuf,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl ApiServer {
    /// Stops serving and removes `api.json` and the socket.
    pub fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Errors starting the API.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Binding the TCP port or writing `api.json` failed.
    #[error("local API: {0}")]
    Io(#[from] std::io::Error),
    /// Binding the Unix socket failed (e.g. its path is over the ~107
    /// bytes a socket address holds: choose a shorter data dir).
    #[error("local API socket {path}: {error}")]
    Socket {
        /// The socket's path.
        path: String,
        /// What went wrong (not a `source`: the message says it once).
        error: std::io::Error,
    },
    /// Random token generation failed.
    #[error("local API: no randomness for the token")]
    Rng,
}

/// Binds the API on the Unix socket `<data_dir>/api.sock` and on TCP
/// `addr`, writes `api.json` into `data_dir` and serves in the background.
/// Call it only once the node holds the data dir (its database lock): a
/// socket file left there is then stale and is replaced.
pub async fn serve(
    node: NodeHandle,
    addr: SocketAddr,
    data_dir: &Path,
) -> Result<ApiServer, ServeError> {
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "the local API listens beyond loopback: anyone who can reach it and has the token controls this node");
    }
    let socket = data_dir.join(API_SOCKET);
    let unix = bind_private_socket(&socket).map_err(|error| ServeError::Socket {
        path: socket.display().to_string(),
        error,
    })?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|_| ServeError::Rng)?;
    let token = hex::encode(raw);
    let info = ApiInfo {
        url: format!("http://{addr}"),
        token: token.clone(),
        socket: Some(socket.display().to_string()),
    };
    let file = data_dir.join(API_FILE);
    write_private(
        &file,
        &serde_json::to_vec_pretty(&info).map_err(std::io::Error::other)?,
    )?;

    let state = AppState {
        node,
        token: token.into(),
        web: std::sync::Arc::new(web::Web::new(addr)),
    };
    let tcp_app = routes::router()
        .merge(web::api_routes())
        .merge(web::page_routes())
        .layer(middleware::from_fn_with_state(state.clone(), web::guard))
        .with_state(state.clone());
    let unix_app = routes::router()
        .merge(web::api_routes())
        .merge(web::socket_routes())
        .layer(middleware::from_fn_with_state(state.clone(), activity))
        .with_state(state);
    let tcp = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, tcp_app).await {
            tracing::warn!("local API (TCP) stopped: {e}");
        }
    });
    let local = tokio::spawn(async move {
        if let Err(e) = axum::serve(unix, unix_app).await {
            tracing::warn!("local API (socket) stopped: {e}");
        }
    });
    Ok(ApiServer {
        addr,
        socket,
        file,
        tasks: [tcp, local],
    })
}

/// Binds a Unix socket at `path` that only our user can connect to,
/// replacing a stale one.
fn bind_private_socket(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "exists and is not a socket; move it away",
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
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

/// Counts every request but the event stream as user activity (for
/// auto-away).
async fn activity(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.uri().path() != "/api/v1/events" {
        state.node.touch().await;
    }
    next.run(req).await
}
