//! The CLI's side of the local API: talks to the daemon over the Unix
//! socket in the data dir, and only once the socket's peer has proved to
//! be a process of the data dir's owner (`SO_PEERCRED`). It never reads
//! `api.json` nor uses TCP: a port can be bound by any local user once a
//! crashed daemon let go of it, a socket in a 0700 directory cannot.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;

use super::{API_SOCKET, EventView};

/// Errors talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No socket, or nobody answering on it.
    #[error("the roost daemon is not running for {0}; start it with `roost daemon`")]
    NotRunning(String),
    /// The process behind the socket runs as another user than the one
    /// owning the data dir: it is not this user's daemon.
    #[error(
        "refusing to talk to {path}: it is served by uid {peer}, not by the data dir's owner (uid {owner})"
    )]
    Untrusted {
        /// The socket.
        path: String,
        /// The uid of the process serving it.
        peer: u32,
        /// The uid owning the data dir.
        owner: u32,
    },
    /// The daemon answered with an error.
    #[error("{0}")]
    Api(String),
    /// Anything else on the way.
    #[error("talking to the daemon: {0}")]
    Http(String),
}

/// A client of one daemon.
pub struct ApiClient {
    socket: PathBuf,
    owner: u32,
}

impl ApiClient {
    /// Finds the daemon's socket in `data_dir`. Fails with
    /// [`ClientError::NotRunning`] if there is none.
    pub fn open(data_dir: &Path) -> Result<Self, ClientError> {
        let not_running = || ClientError::NotRunning(data_dir.display().to_string());
        let socket = data_dir.join(API_SOCKET);
        let meta = std::fs::symlink_metadata(&socket).map_err(|_| not_running())?;
        if !meta.file_type().is_socket() {
            return Err(not_running());
        }
        let owner = std::fs::metadata(data_dir)
            .map_err(|_| not_running())?
            .uid();
        Ok(Self { socket, owner })
    }

    /// `GET /api/v1/<path>`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None).await
    }

    /// `POST /api/v1/<path>` with a JSON body.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Http(e.to_string()))?;
        self.call(Method::POST, path, Some(bytes)).await
    }

    /// Opens the event stream. Once this returns, the daemon is already
    /// collecting events for it, so a client can list what exists *after*
    /// opening and miss nothing in between.
    pub async fn events(&self) -> Result<EventStream, ClientError> {
        let resp = self.request(Method::GET, "events", None).await?;
        if !resp.status().is_success() {
            return Err(ClientError::Api(format!("HTTP {}", resp.status())));
        }
        let body = resp.into_body().into_data_stream().map(|chunk| {
            chunk
                .map(|b| b.to_vec())
                .map_err(|e| ClientError::Http(e.to_string()))
        });
        Ok(EventStream {
            body: Box::pin(body),
            buf: Vec::new(),
        })
    }

    /// Connects and checks who serves the socket before anything is sent.
    async fn connect(&self) -> Result<tokio::net::UnixStream, ClientError> {
        let path = self.socket.display().to_string();
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|_| ClientError::NotRunning(path.clone()))?;
        let peer = stream
            .peer_cred()
            .map_err(|e| ClientError::Http(e.to_string()))?
            .uid();
        check_peer(&path, peer, self.owner)?;
        Ok(stream)
    }

    /// Sends one request on a fresh connection to the proved daemon.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let http = |e: &dyn std::fmt::Display| ClientError::Http(e.to_string());
        let stream = self.connect().await?;
        let (mut sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| http(&e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("API connection: {e}");
            }
        });
        let mut req = Request::builder()
            .method(method)
            .uri(format!("/api/v1/{path}"))
            .header(header::HOST, "localhost");
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| http(&e))?;
        sender.send_request(req).await.map_err(|e| http(&e))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let resp = self.request(method, path, body).await?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(ClientError::Api(error_message(status, &body)));
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::Http(e.to_string()))
    }
}

/// Accepts the socket's peer only if it runs as the data dir's owner.
fn check_peer(path: &str, peer: u32, owner: u32) -> Result<(), ClientError> {
    if peer == owner {
        Ok(())
    } else {
        Err(ClientError::Untrusted {
            path: path.to_string(),
            peer,
            owner,
        })
    }
}

/// The `{"error": …}` of an answer, else its status.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| format!("HTTP {status}"))
}

/// Server-sent events from the daemon, one [`EventView`] at a time.
pub struct EventStream {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = Result<Vec<u8>, ClientError>> + Send>>,
    buf: Vec<u8>,
}

impl EventStream {
    /// The next event; `None` when the daemon closed the stream.
    pub async fn next(&mut self) -> Result<Option<EventView>, ClientError> {
        loop {
            while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                if let Some(data) = line.strip_prefix(b"data:")
                    && let Ok(ev) = serde_json::from_slice::<EventView>(data.trim_ascii())
                {
                    return Ok(Some(ev));
                }
            }
            match self.body.next().await {
                Some(chunk) => self.buf.extend_from_slice(&chunk?),
                None => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_data_dirs_owner_is_trusted() {
        assert!(check_peer("s", 1000, 1000).is_ok());
        let e = check_peer("s", 1001, 1000).unwrap_err();
        assert!(
            matches!(
                e,
                ClientError::Untrusted {
                    peer: 1001,
                    owner: 1000,
                    ..
                }
            ),
            "{e}"
        );
        // Not even root is taken for the user.
        assert!(check_peer("s", 0, 1000).is_err());
    }

    #[test]
    fn api_errors_read_the_error_field() {
        assert_eq!(
            error_message(StatusCode::BAD_REQUEST, br#"{"error":"no buddy"}"#),
            "no buddy"
        );
        assert_eq!(
            error_message(StatusCode::BAD_GATEWAY, b"junk"),
            "HTTP 502 Bad Gateway"
        );
    }
}
