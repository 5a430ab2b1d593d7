//! [files] A message body is never mangled: a binary body sent through the
//! local API arrives at the recipient's API byte-exact, raw with its type
//! and as base64 in the JSON. Real nodes on 127.0.0.1, the real API.

mod common;

use common::presence::sees;
use common::{TestNode, arrives, init_tracing};
use roost::NodeHandle;
use roost::api::client::ApiClient;
use roost::api::{MessageView, SendRequest, SendView, serve};
use roost::wire::presence::Status;

async fn befriend(a: &NodeHandle, a_name: &str, b: &NodeHandle, b_name: &str) {
    a.add_buddy(b.peer_id(), b_name.into()).await.unwrap();
    b.add_buddy(a.peer_id(), a_name.into()).await.unwrap();
    sees(a, b.peer_id(), Status::Online, "a sees b online").await;
    sees(b, a.peer_id(), Status::Online, "b sees a online").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_body_survives_the_api_round_trip() {
    init_tracing();
    let alice = TestNode::start(&[]).await;
    let bob = TestNode::start(&[alice.addr().await]).await;
    befriend(&alice.handle, "alice", &bob.handle, "bob").await;
    let _a_api = serve(
        alice.handle.clone(),
        "127.0.0.1:0".parse().unwrap(),
        alice.dir.path(),
    )
    .await
    .unwrap();
    let _b_api = serve(
        bob.handle.clone(),
        "127.0.0.1:0".parse().unwrap(),
        bob.dir.path(),
    )
    .await
    .unwrap();
    let a_client = ApiClient::open(alice.dir.path()).unwrap();
    let b_client = ApiClient::open(bob.dir.path()).unwrap();

    // Every byte value, and sequences that are not UTF-8.
    let mut bytes: Vec<u8> = (0..=255u8).collect();
    bytes.extend_from_slice(&[0xff, 0xfe, 0x80, 0xc3, 0x28, 0x00, 0xed, 0xa0, 0x80]);
    let sent: SendView = a_client
        .post(
            "send",
            &SendRequest {
                to: "bob".into(),
                text: None,
                hex: None,
                base64: Some(data_encoding::BASE64.encode(&bytes)),
                content_type: Some("image/png".into()),
                subject: None,
            },
        )
        .await
        .unwrap();
    let id = sent.id.parse().unwrap();
    arrives(&bob.handle, alice.handle.peer_id(), id).await;

    let (content_type, raw) = b_client
        .get_raw(&format!("log/alice/{}/body", sent.id))
        .await
        .unwrap();
    assert_eq!(content_type, "image/png", "the body keeps its type");
    assert_eq!(raw, bytes, "the raw body is byte-exact");

    let log: Vec<MessageView> = b_client.get("log/alice").await.unwrap();
    let m = log.iter().find(|m| m.id == sent.id).expect("in the log");
    let decoded = data_encoding::BASE64.decode(m.base64.as_bytes()).unwrap();
    assert_eq!(decoded, bytes, "the JSON's base64 is byte-exact");
    assert_eq!(m.size, bytes.len());
    assert_eq!(m.content_type, "image/png");
    let (head, _) = over_tcp(bob.dir.path(), &format!("log/alice/{}/body", sent.id));
    assert!(head.contains("content-type: image/png\r\n"), "{head}");
    assert!(
        head.contains("content-disposition: attachment\r\n"),
        "{head}"
    );

    // A body the sender typed as a page is served as bytes to download,
    // in a sandbox, never as a page on the web app's origin.
    let page = b"<script>fetch('/api/v1/buddies')</script>".to_vec();
    let sent: SendView = a_client
        .post(
            "send",
            &SendRequest {
                to: "bob".into(),
                text: None,
                hex: None,
                base64: Some(data_encoding::BASE64.encode(&page)),
                content_type: Some("text/html".into()),
                subject: None,
            },
        )
        .await
        .unwrap();
    arrives(
        &bob.handle,
        alice.handle.peer_id(),
        sent.id.parse().unwrap(),
    )
    .await;
    let (content_type, raw) = b_client
        .get_raw(&format!("log/alice/{}/body", sent.id))
        .await
        .unwrap();
    assert_eq!(content_type, "application/octet-stream");
    assert_eq!(raw, page, "the bytes are kept");
    let (head, raw) = over_tcp(bob.dir.path(), &format!("log/alice/{}/body", sent.id));
    assert!(raw.ends_with(&page), "{head}");
    assert!(
        head.contains("content-type: application/octet-stream\r\n"),
        "{head}"
    );
    assert!(
        head.contains("content-disposition: attachment\r\n"),
        "{head}"
    );
    assert!(
        head.contains("content-security-policy: sandbox\r\n"),
        "the route's sandbox survives the app's CSP: {head}"
    );
    assert!(
        head.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
}

/// GETs `/api/v1/{path}` over the daemon's TCP listener (the way a
/// browser comes, through the web guard) with the bearer token of
/// `api.json`: the answer's head, lower-cased, and its bytes.
fn over_tcp(dir: &std::path::Path, path: &str) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let info: roost::api::ApiInfo =
        serde_json::from_slice(&std::fs::read(dir.join("api.json")).unwrap()).unwrap();
    let host = info.url.trim_start_matches("http://");
    let mut tcp = std::net::TcpStream::connect(host).unwrap();
    write!(
        tcp,
        "GET /api/v1/{path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        info.token
    )
    .unwrap();
    let mut all = Vec::new();
    tcp.read_to_end(&mut all).unwrap();
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (
        String::from_utf8_lossy(&all[..end]).to_lowercase(),
        all[end..].to_vec(),
    )
}
