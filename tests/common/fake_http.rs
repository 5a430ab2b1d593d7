//! The HTTP side of a fake daemon: tests that check what the `roost`
//! command sends (or must not send) serve it from a socket of their own
//! and record each request whole.

use std::io::{Read, Write};

/// Reads one request: the head, then as much body as its
/// `content-length` announces (less if the peer stops sending).
pub fn read_request(conn: &mut impl Read) -> Vec<u8> {
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    let mut want = None;
    while want.is_none_or(|n| req.len() < n) {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
        if want.is_none()
            && let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let head = String::from_utf8_lossy(&req[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            want = Some(end + 4 + len);
        }
    }
    req
}

/// Answers `200 OK` with the JSON `body` and closes, as the daemon's API
/// does; a peer that already left is not an error.
pub fn respond_json(conn: &mut impl Write, body: &str) {
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}
