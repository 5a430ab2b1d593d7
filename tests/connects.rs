//! [msg] Link set-ups are capped, and a connected peer does not wait for
//! one: real nodes on 127.0.0.1. Alice sends to more strangers than
//! [`MAX_CONNECTS`] at once; each stranger's locator names a TCP port of
//! its own that takes the connection and never answers, so every set-up
//! that starts hangs there (until the transport's 10 s handshake timeout),
//! and the ports tell which strangers' set-ups started. A peer connected
//! to Alice gets her message while those set-ups still hang.

mod common;

use std::io::{ErrorKind, Read};
use std::net::{TcpListener, TcpStream};

use common::raw::Speaker;
use common::{DEADLINE, TestNode, eventually, init_tracing};
use futures::StreamExt;
use libp2p::Multiaddr;
use roost::clock::unix_ms;
use roost::node::messenger::MAX_CONNECTS;
use roost::wire::locator;
use roost::wire::message::{self, MAX_FRAME, ReadFrame};
use roost::{Content, Identity};

/// Strangers past the cap: their set-ups must wait.
const PAST_THE_CAP: usize = 4;

/// A TCP port that accepts every connection and never writes a byte: a
/// libp2p dial to it hangs in its handshake.
struct Silent {
    listener: TcpListener,
    held: Vec<TcpStream>,
}

impl Silent {
    fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Self {
            listener,
            held: Vec::new(),
        }
    }

    fn addr(&self) -> Multiaddr {
        let port = self.listener.local_addr().unwrap().port();
        format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
    }

    /// Takes the connections waiting; returns how many arrived in all.
    fn arrived(&mut self) -> usize {
        loop {
            match self.listener.accept() {
                Ok((conn, _)) => {
                    conn.set_nonblocking(true).unwrap();
                    self.held.push(conn);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return self.held.len(),
                Err(e) => panic!("accept: {e}"),
            }
        }
    }

    /// How many of the connections taken the dialler has closed.
    fn closed(&mut self) -> usize {
        let mut buf = [0u8; 1024];
        let mut closed = 0;
        for conn in &mut self.held {
            loop {
                match conn.read(&mut buf) {
                    Ok(0) => {
                        closed += 1;
                        break;
                    }
                    Ok(_) => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        closed += 1;
                        break;
                    }
                }
            }
        }
        closed
    }
}

/// How many of `ports` had a connection (a set-up reached them).
fn dialled(ports: &mut [Silent]) -> usize {
    ports
        .iter_mut()
        .filter_map(|p| (p.arrived() > 0).then_some(()))
        .count()
}

/// How many connections to `ports` the dialler closed (set-ups ended).
fn ended(ports: &mut [Silent]) -> usize {
    ports.iter_mut().map(Silent::closed).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_ups_past_the_cap_wait_and_a_connected_peer_does_not() {
    init_tracing();
    let server = TestNode::start(&[]).await;
    let alice = TestNode::start(&[server.addr().await]).await;

    // Each stranger's record, at the server, names its own silent port.
    // All are stored before the first send: the sends go out back to back,
    // well within the 10 s the first set-ups hang.
    let expires_at = unix_ms() + 30 * 60 * 1000;
    let (mut ports, mut strangers) = (Vec::new(), Vec::new());
    for _ in 0..MAX_CONNECTS + PAST_THE_CAP {
        let stranger = Identity::generate().unwrap();
        let port = Silent::bind();
        let record = locator::sign(&stranger, 1, &[port.addr()], expires_at, true).unwrap();
        alice
            .handle
            .net()
            .put_record_to(
                locator::record_key(&stranger.peer_id()),
                record,
                server.handle.peer_id(),
            )
            .await
            .expect("the server takes a stranger's record");
        ports.push(port);
        strangers.push(stranger.peer_id());
    }
    for (i, stranger) in strangers.iter().enumerate() {
        let text = Content::text(format!("to stranger {i}"));
        alice.handle.send(*stranger, text).await.unwrap();
    }
    eventually("the set-ups allowed reach their silent ports", || {
        let n = dialled(&mut ports);
        async move { (n >= MAX_CONNECTS).then_some(()) }
    })
    .await;

    // A peer connected to Alice: her message to it goes out at once,
    // though every slot is held by a hanging set-up.
    let mut speaker = Speaker::connect(&alice).await;
    alice
        .handle
        .send(speaker.id, Content::text("to a connected peer"))
        .await
        .unwrap();
    let (from, mut link) = tokio::time::timeout(DEADLINE, speaker.incoming.next())
        .await
        .expect("alice opens a link to the connected peer")
        .unwrap();
    assert_eq!(from, alice.handle.peer_id());
    let read = tokio::time::timeout(DEADLINE, message::read_frame(&mut link, MAX_FRAME)).await;
    assert!(
        matches!(read, Ok(Ok(ReadFrame::Frame(_)))),
        "the message reaches the connected peer: {read:?}"
    );
    // It went out while no set-up had ended (none let go of its port), and
    // the strangers past the cap, sent to last, were not dialled.
    assert_eq!(
        ended(&mut ports),
        0,
        "a set-up ended before the message left"
    );
    assert_eq!(
        dialled(&mut ports[..MAX_CONNECTS]),
        MAX_CONNECTS,
        "the first strangers' set-ups started"
    );
    assert_eq!(
        dialled(&mut ports[MAX_CONNECTS..]),
        0,
        "more set-ups than the cap ran at once"
    );

    // As the hanging set-ups time out, the waiting ones take their slots.
    eventually("the set-ups past the cap start in turn", || {
        let n = dialled(&mut ports[MAX_CONNECTS..]);
        async move { (n == PAST_THE_CAP).then_some(()) }
    })
    .await;
    speaker.driver.abort();
    alice.handle.shutdown().await.unwrap();
    server.handle.shutdown().await.unwrap();
}
