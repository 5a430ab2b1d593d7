//! The CLI's side of the local API: finds the daemon through `api.json`.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use serde::de::DeserializeOwned;

use super::{API_FILE, ApiInfo, EventView};

/// Errors talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No `api.json`, or nobody answering at its URL.
    #[error("the roost daemon is not running for {0}; start it with `roost daemon`")]
    NotRunning(String),
    /// The daemon answered with an error.
    #[error("{0}")]
    Api(String),
    /// Anything else on the way.
    #[error("talking to the daemon: {0}")]
    Http(String),
}

/// A client of one daemon.
pub struct ApiClient {
    info: ApiInfo,
    http: reqwest::Client,
}

impl ApiClient {
    /// Reads `<data_dir>/api.json`.
    pub fn open(data_dir: &Path) -> Result<Self, ClientError> {
        let not_running = || ClientError::NotRunning(data_dir.display().to_string());
        let text = std::fs::read(data_dir.join(API_FILE)).map_err(|_| not_running())?;
        let info: ApiInfo = serde_json::from_slice(&text).map_err(|_| not_running())?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| ClientError::Http(e.to_string()))?;
        Ok(Self { info, http })
    }

    /// `GET /api/v1/<path>`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let req = self.http.get(format!("{}/api/v1/{path}", self.info.url));
        self.send(req).await
    }

    /// `POST /api/v1/<path>` with a JSON body.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, ClientError> {
        let req = self
            .http
            .post(format!("{}/api/v1/{path}", self.info.url))
            .json(body);
        self.send(req).await
    }

    /// Opens the event stream. Once this returns, the daemon is already
    /// collecting events for it, so a client can list what exists *after*
    /// opening and miss nothing in between.
    pub async fn events(&self) -> Result<EventStream, ClientError> {
        let resp = self
            .authed(self.http.get(format!("{}/api/v1/events", self.info.url)))
            .await?;
        if !resp.status().is_success() {
            return Err(ClientError::Api(format!("HTTP {}", resp.status())));
        }
        let body = resp.bytes_stream().map(|chunk| {
            chunk
                .map(|b| b.to_vec())
                .map_err(|e| ClientError::Http(e.to_string()))
        });
        Ok(EventStream {
            body: Box::pin(body),
            buf: Vec::new(),
        })
    }

    /// Sends with the token; a refused connection means no daemon.
    async fn authed(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        req.bearer_auth(&self.info.token).send().await.map_err(|e| {
            if e.is_connect() {
                ClientError::NotRunning(self.info.url.clone())
            } else {
                ClientError::Http(e.to_string())
            }
        })
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = self.authed(req).await?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        if !status.is_success() {
            let msg = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| format!("HTTP {status}"));
            return Err(ClientError::Api(msg));
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::Http(e.to_string()))
    }
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
