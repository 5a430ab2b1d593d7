//! The daemon's local API in tests: served on loopback for a node, and
//! spoken to over its TCP listener the way a browser comes (through the
//! web guard) with the bearer token of `api.json`.

use std::io::{Read, Write};
use std::path::Path;

use roost::NodeHandle;
use roost::api::{ApiInfo, ApiServer, serve};

/// Serves `node`'s API on 127.0.0.1 (a free port) and its socket in
/// `dir`, writing `dir/api.json`; it stops when the server is dropped.
pub async fn serve_local(node: &NodeHandle, dir: &Path) -> ApiServer {
    serve(node.clone(), "127.0.0.1:0".parse().unwrap(), dir)
        .await
        .unwrap()
}

/// Sends `METHOD /api/v1/{path}` over the TCP listener of the daemon
/// whose data dir is `dir`, with `body` (and its `Content-Length`) when
/// given: the answer's head as sent and the bytes after it.
pub fn over_tcp(dir: &Path, method: &str, path: &str, body: Option<&[u8]>) -> (String, Vec<u8>) {
    let info: ApiInfo =
        serde_json::from_slice(&std::fs::read(dir.join("api.json")).unwrap()).unwrap();
    let host = info.url.trim_start_matches("http://");
    let mut tcp = std::net::TcpStream::connect(host).unwrap();
    let length = body.map(|b| format!("Content-Length: {}\r\n", b.len()));
    write!(
        tcp,
        "{method} /api/v1/{path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\
         {}Connection: close\r\n\r\n",
        info.token,
        length.unwrap_or_default()
    )
    .unwrap();
    tcp.write_all(body.unwrap_or_default()).unwrap();
    let mut all = Vec::new();
    tcp.read_to_end(&mut all).unwrap();
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (
        String::from_utf8_lossy(&all[..end]).to_string(),
        all[end..].to_vec(),
    )
}
