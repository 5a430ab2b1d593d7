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
}
