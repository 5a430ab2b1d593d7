//! The CLI's side of the local API: talks to the daemon over the Unix
//! socket in the data dir, and only if the data dir is private to the user
//! running the CLI (owned by our effective uid, no group or other bits) and
//! the socket's peer has proved to run as that same uid (`SO_PEERCRED`). It
//! never reads `api.json` nor uses TCP: a port can be bound by any local
//! user once a crashed daemon let go of it, a socket in a 0700 directory of
//! ours cannot. The uid compared is ours, not the data dir's owner: whoever
//! creates a data dir in a shared place first (`--data-dir /tmp/x`) owns it,
//! and could serve its socket.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{API_SOCKET, EventView};

/// Errors talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No socket, or nobody answering on it.
    #[error("the roost daemon is not running for {0}; start it with `roost daemon`")]
    NotRunning(String),
    /// The data dir or the process behind the socket is not provably
    /// ours: nothing is sent, as it could reach another user.
    #[error("refusing to talk to the daemon at {path}: {why}")]
    Untrusted {
        /// The data dir or the socket.
        path: String,
        /// What failed.
        why: Distrust,
    },
    /// The daemon answered with an error.
    #[error("{0}")]
    Api(String),
    /// Anything else on the way.
    #[error("talking to the daemon: {0}")]
    Http(String),
}

/// Why the CLI does not trust a data dir or the process serving its socket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Distrust {
    /// Someone else made (or owns) the data dir, so may have made the socket.
    #[error("the data dir is owned by uid {owner}, not by you (uid {me})")]
    DirOwner {
        /// The uid owning the data dir.
        owner: u32,
        /// Our effective uid.
        me: u32,
    },
    /// Group or others may enter or change the data dir: they could replace
    /// the socket (and read the key).
    #[error("the data dir has mode {mode:o}, open to group or others; `chmod 700` it")]
    DirMode {
        /// The data dir's permission bits.
        mode: u32,
    },
    /// The process behind the socket runs as another user.
    #[error("it is served by uid {peer}, not by you (uid {me})")]
    Peer {
        /// The uid of the process serving the socket.
        peer: u32,
        /// Our effective uid.
        me: u32,
    },
    /// Our own uid could not be learnt, so nothing can be proved ours.
    #[error("cannot tell which user runs this command: {0}")]
    NoUid(String),
}

/// A client of one daemon.
pub struct ApiClient {
    socket: PathBuf,
    /// Our effective uid: the only uid the daemon may run as.
    me: u32,
}

impl ApiClient {
    /// Finds the daemon's socket in `data_dir`. Fails with
    /// [`ClientError::NotRunning`] if there is no socket, with
    /// [`ClientError::Untrusted`] if there is one but the data dir is not
    /// private to us (then someone else may have put it there).
    pub fn open(data_dir: &Path) -> Result<Self, ClientError> {
        let shown = data_dir.display().to_string();
        let untrusted = |why| ClientError::Untrusted {
            path: shown.clone(),
            why,
        };
        let not_running = || ClientError::NotRunning(shown.clone());
        let dir = std::fs::metadata(data_dir).map_err(|_| not_running())?;
        let socket = data_dir.join(API_SOCKET);
        let meta = std::fs::symlink_metadata(&socket).map_err(|_| not_running())?;
        if !meta.file_type().is_socket() {
            return Err(not_running());
        }
        let me = effective_uid().map_err(untrusted)?;
        // A data dir reached through a symlink is trusted only if the link
        // is ours too: whoever owns it can point it elsewhere at any time.
        let link = std::fs::symlink_metadata(data_dir).map_err(|_| not_running())?;
        if link.file_type().is_symlink() {
            check_dir(link.uid(), dir.mode(), me).map_err(untrusted)?;
        }
        check_dir(dir.uid(), dir.mode(), me).map_err(untrusted)?;
        Ok(Self { socket, me })
    }

    /// `GET /api/v1/<path>`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None).await
    }

    /// `POST /api/v1/<path>` with a JSON body: one of the types in
    /// [`super::requests`], so the body is the shape the server extracts.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Http(e.to_string()))?;
        self.call(Method::POST, path, Some(bytes)).await
    }

    /// `GET /api/v1/<path>` for bytes served as they are (a message body):
    /// its content type and its exact bytes.
    pub async fn get_raw(&self, path: &str) -> Result<(String, Vec<u8>), ClientError> {
        let resp = self.request(Method::GET, path, None).await?;
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(ClientError::Api(error_message(status, &body)));
        }
        Ok((content_type, body.to_vec()))
    }

    /// Opens the event stream. Once this returns, the daemon is already
    /// collecting events for it, so a client can list what exists *after*
    /// opening and miss nothing in between. With `from` (a name or an ID,
    /// resolved by the daemon), only the events about that peer.
    pub async fn events(&self, from: Option<&str>) -> Result<EventStream, ClientError> {
        let path = match from {
            Some(f) => format!("events?from={}", escape(f)),
            None => "events".to_string(),
        };
        let resp = self.request(Method::GET, &path, None).await?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(ClientError::Api(error_message(status, &body)));
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
        check_peer(peer, self.me).map_err(|why| ClientError::Untrusted { path, why })?;
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

/// `s` percent-encoded for one path segment or query value: a buddy's
/// name may hold spaces, `/`, `?`, `&` or `#`, which would otherwise break
/// the request or change its meaning. Everything but RFC 3986's unreserved
/// characters is encoded; the server's extractors decode it.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Our effective uid ([`crate::os::effective_uid`]); a process that
/// cannot tell trusts nothing.
fn effective_uid() -> Result<u32, Distrust> {
    crate::os::effective_uid().map_err(|e| Distrust::NoUid(format!("/proc/self: {e}")))
}

/// Accepts a data dir only if it is ours (`me`) and closed to group and
/// others: then no one else can have put the socket in it, nor swap it.
fn check_dir(owner: u32, mode: u32, me: u32) -> Result<(), Distrust> {
    if owner != me {
        return Err(Distrust::DirOwner { owner, me });
    }
    if mode & 0o077 != 0 {
        return Err(Distrust::DirMode {
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// Accepts the socket's peer only if it runs as us (`me`): not as the data
/// dir's owner, who may be someone else, and not even as root.
fn check_peer(peer: u32, me: u32) -> Result<(), Distrust> {
    if peer == me {
        Ok(())
    } else {
        Err(Distrust::Peer { peer, me })
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
    fn escape_keeps_unreserved_and_encodes_the_rest() {
        assert_eq!(escape("bob-1.x_y~"), "bob-1.x_y~");
        assert_eq!(
            escape("my friend/a?b&c#d%"),
            "my%20friend%2Fa%3Fb%26c%23d%25"
        );
        assert_eq!(escape("é"), "%C3%A9");
    }

    #[test]
    fn only_a_peer_running_as_us_is_trusted() {
        assert_eq!(check_peer(1000, 1000), Ok(()));
        assert_eq!(
            check_peer(1001, 1000),
            Err(Distrust::Peer {
                peer: 1001,
                me: 1000
            })
        );
        // Not even root is taken for the user, nor the user for root.
        assert!(check_peer(0, 1000).is_err());
        assert!(check_peer(1000, 0).is_err());
    }

    #[test]
    fn only_a_private_data_dir_of_ours_is_trusted() {
        const DIR: u32 = 0o040000;
        assert_eq!(check_dir(1000, DIR | 0o700, 1000), Ok(()));
        assert_eq!(check_dir(1000, DIR | 0o500, 1000), Ok(()));
        // Someone else's data dir, however private: whoever made it first
        // in a shared place may have made the socket too.
        assert_eq!(
            check_dir(1001, DIR | 0o700, 1000),
            Err(Distrust::DirOwner {
                owner: 1001,
                me: 1000
            })
        );
        assert!(check_dir(0, DIR | 0o700, 1000).is_err());
        // Ours, but open to group or others in any way.
        for mode in [0o755, 0o750, 0o705, 0o701, 0o710, 0o720, 0o702, 0o777] {
            assert_eq!(
                check_dir(1000, DIR | mode, 1000),
                Err(Distrust::DirMode { mode }),
                "{mode:o}"
            );
        }
    }

    #[test]
    fn our_uid_is_the_effective_one() {
        // The test runs as its own user; a file it creates is owned by its
        // effective uid.
        let f = tempfile::NamedTempFile::new().unwrap();
        let made = std::fs::metadata(f.path()).unwrap().uid();
        assert_eq!(effective_uid(), Ok(made));
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
