//! [files] A message body is never mangled: a binary body sent through the
//! local API arrives at the recipient's API byte-exact, raw with its type
//! and as base64 in the JSON. Real nodes on 127.0.0.1, the real API.

mod common;

use common::api::{over_tcp, serve_local};
use common::presence::befriend;
use common::{TestNode, arrives, init_tracing};
use roost::api::client::ApiClient;
use roost::api::{MessageView, SendRequest, SendView};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_body_survives_the_api_round_trip() {
    init_tracing();
    let alice = TestNode::start(&[]).await;
    let bob = TestNode::start(&[alice.addr().await]).await;
    befriend(&alice.handle, "alice", &bob.handle, "bob").await;
    let _a_api = serve_local(&alice.handle, alice.dir.path()).await;
    let _b_api = serve_local(&bob.handle, bob.dir.path()).await;
    let a_client = ApiClient::open(alice.dir.path()).unwrap();
    let b_client = ApiClient::open(bob.dir.path()).unwrap();

    // Every byte value, and sequences that are not UTF-8.
    let mut bytes: Vec<u8> = (0..=255u8).collect();
    bytes.extend_from_slice(&[0xff, 0xfe, 0x80, 0xc3, 0x28, 0x00, 0xed, 0xa0, 0x80]);
    let id = send_body(&a_client, &alice, &bob, &bytes, "image/png").await;
    a_typed_body_arrives_exact(&b_client, &bob, &id, &bytes).await;

    // A body the sender typed as a page is served as bytes to download,
    // in a sandbox, never as a page on the web app's origin.
    let page = b"<script>fetch('/api/v1/buddies')</script>".to_vec();
    let id = send_body(&a_client, &alice, &bob, &page, "text/html").await;
    a_page_arrives_as_a_sandboxed_download(&b_client, &bob, &id, &page).await;
}

/// Alice sends Bob `bytes` typed `content_type` through her API, as
/// base64, and waits until Bob holds it: the message's id.
async fn send_body(
    a_client: &ApiClient,
    alice: &TestNode,
    bob: &TestNode,
    bytes: &[u8],
    content_type: &str,
) -> String {
    let sent: SendView = a_client
        .post(
            "send",
            &SendRequest {
                to: "bob".into(),
                text: None,
                hex: None,
                base64: Some(data_encoding::BASE64.encode(bytes)),
                content_type: Some(content_type.into()),
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
    sent.id
}

/// Bob's API gives message `id` from Alice back byte-exact with its
/// type: raw, as base64 in the log's JSON, and over TCP as an attachment.
async fn a_typed_body_arrives_exact(b_client: &ApiClient, bob: &TestNode, id: &str, bytes: &[u8]) {
    let (content_type, raw) = b_client
        .get_raw(&format!("log/alice/{id}/body"))
        .await
        .unwrap();
    assert_eq!(content_type, "image/png", "the body keeps its type");
    assert_eq!(raw, bytes, "the raw body is byte-exact");

    let log: Vec<MessageView> = b_client.get("log/alice").await.unwrap();
    let m = log.iter().find(|m| m.id == id).expect("in the log");
    let decoded = data_encoding::BASE64.decode(m.base64.as_bytes()).unwrap();
    assert_eq!(decoded, bytes, "the JSON's base64 is byte-exact");
    assert_eq!(m.size, bytes.len());
    assert_eq!(m.content_type, "image/png");
    let (head, _) = get_over_tcp(bob.dir.path(), &format!("log/alice/{id}/body"));
    assert!(head.contains("content-type: image/png\r\n"), "{head}");
    assert!(
        head.contains("content-disposition: attachment\r\n"),
        "{head}"
    );
}

/// Bob's API serves message `id` from Alice, a page, as its bytes to
/// download, in a sandbox that survives the web app's CSP.
async fn a_page_arrives_as_a_sandboxed_download(
    b_client: &ApiClient,
    bob: &TestNode,
    id: &str,
    page: &[u8],
) {
    let (content_type, raw) = b_client
        .get_raw(&format!("log/alice/{id}/body"))
        .await
        .unwrap();
    assert_eq!(content_type, "application/octet-stream");
    assert_eq!(raw, page, "the bytes are kept");
    let (head, raw) = get_over_tcp(bob.dir.path(), &format!("log/alice/{id}/body"));
    assert!(raw.ends_with(page), "{head}");
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
/// browser comes, through the web guard): the answer's head, lower-cased,
/// and its bytes.
fn get_over_tcp(dir: &std::path::Path, path: &str) -> (String, Vec<u8>) {
    let (head, body) = over_tcp(dir, "GET", path, None);
    (head.to_lowercase(), body)
}
