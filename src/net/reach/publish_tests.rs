//! What the machine says of publishing: the hold on a NATed node's first
//! locator record, and the addresses a server declares.

use super::tests::{addr, hop_peer, reserves, settings};
use super::*;

fn publishable(out: &[Output]) -> Vec<bool> {
    out.iter()
        .filter_map(|o| match o {
            Output::Publishable(p) => Some(*p),
            _ => None,
        })
        .collect()
}

#[test]
fn a_node_not_public_holds_its_publication_until_a_reservation_is_held() {
    let t = Instant::now();
    let mut m = Reach::new(settings(DhtMode::Auto));
    assert_eq!(publishable(&m.start(t)), vec![false]);
    assert_eq!(m.next_deadline(), Some(t + PUBLISH_HOLD));
    let (a, out) = hop_peer(&mut m, 1, t);
    let (b, _) = hop_peer(&mut m, 2, t);
    assert_eq!(reserves(&out), vec![a]);
    assert!(publishable(&out).is_empty(), "asked, not held: {out:?}");
    let t1 = t + Duration::from_millis(30);
    let out = m.handle(Input::ReservationAccepted { relay: a }, t1);
    assert_eq!(publishable(&out), vec![true]);
    // Once: neither the second reservation nor a renewal says it again.
    let out = m.handle(Input::ReservationAccepted { relay: b }, t1);
    assert!(publishable(&out).is_empty(), "{out:?}");
    let out = m.handle(Input::ReservationAccepted { relay: a }, t1);
    assert!(publishable(&out).is_empty(), "{out:?}");
    // The hold's deadline no longer wakes the machine.
    assert_eq!(m.next_deadline(), None);
}

#[test]
fn a_node_with_no_relay_publishes_after_the_hold_or_once_every_reservation_failed() {
    let t = Instant::now();
    // No relay at all: held for PUBLISH_HOLD, not longer.
    let mut m = Reach::new(settings(DhtMode::Auto));
    m.start(t);
    let early = m.handle(Input::Tick, t + PUBLISH_HOLD - Duration::from_millis(1));
    assert!(publishable(&early).is_empty(), "{early:?}");
    let out = m.handle(Input::Tick, t + PUBLISH_HOLD);
    assert_eq!(publishable(&out), vec![true]);

    // The only relay refuses: nothing left to wait for.
    let mut m = Reach::new(settings(DhtMode::Auto));
    m.start(t);
    let (a, _) = hop_peer(&mut m, 1, t);
    let out = m.handle(Input::RelayClosed { relay: a }, t + Duration::from_secs(1));
    assert_eq!(publishable(&out), vec![true]);

    // One of two fails: the other is still under way, so we hold on.
    let mut m = Reach::new(settings(DhtMode::Auto));
    m.start(t);
    let (a, _) = hop_peer(&mut m, 1, t);
    let (b, _) = hop_peer(&mut m, 2, t);
    let out = m.handle(Input::RelayClosed { relay: a }, t + Duration::from_secs(1));
    assert!(publishable(&out).is_empty(), "{out:?}");
    let out = m.handle(
        Input::ReservationAccepted { relay: b },
        t + Duration::from_secs(2),
    );
    assert_eq!(publishable(&out), vec![true]);
}

#[test]
fn a_public_node_never_holds_its_publication() {
    let t = Instant::now();
    let mut s = settings(DhtMode::Auto);
    s.external = vec![addr("/ip4/198.51.100.10/tcp/7117")];
    assert!(publishable(&Reach::new(s).start(t)).is_empty());
    let mut m = Reach::new(settings(DhtMode::Server));
    assert!(publishable(&m.start(t)).is_empty());

    // Confirmed public while held: the hold ends with it.
    let mut m = Reach::new(settings(DhtMode::Auto));
    m.start(t);
    let out = m.handle(
        Input::AutoNat {
            addr: addr("/ip4/198.51.100.20/tcp/7117"),
            reachable: true,
        },
        t + Duration::from_secs(6),
    );
    assert_eq!(publishable(&out), vec![true]);
}

#[test]
fn server_mode_declares_only_the_widest_scope_of_its_listen_addresses() {
    let t = Instant::now();
    let declared = |out: &[Output]| -> Vec<String> {
        out.iter()
            .filter_map(|o| match o {
                Output::Declare(a) => Some(format!("+{a}")),
                Output::Retract(a) => Some(format!("-{a}")),
                _ => None,
            })
            .collect()
    };
    let mut m = Reach::new(settings(DhtMode::Server));
    m.start(t);
    let mut listen = |a: &str| declared(&m.handle(Input::ListenAddr(addr(a)), t));
    // Loopback only so far (as in every loopback test): declared.
    assert_eq!(
        listen("/ip4/127.0.0.1/tcp/7117"),
        ["+/ip4/127.0.0.1/tcp/7117"]
    );
    // A LAN address retracts it; docker0's is as wide as the LAN.
    assert_eq!(
        listen("/ip4/10.0.0.2/tcp/7117"),
        ["-/ip4/127.0.0.1/tcp/7117", "+/ip4/10.0.0.2/tcp/7117"]
    );
    assert_eq!(
        listen("/ip4/172.17.0.1/tcp/7117"),
        ["+/ip4/172.17.0.1/tcp/7117"]
    );
    // A global one retracts both; narrower ones no longer get in.
    let out = listen("/ip4/198.51.100.10/tcp/7117");
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(out[2], "+/ip4/198.51.100.10/tcp/7117");
    assert!(out.contains(&"-/ip4/10.0.0.2/tcp/7117".to_string()));
    assert!(out.contains(&"-/ip4/172.17.0.1/tcp/7117".to_string()));
    assert!(listen("/ip4/127.0.0.1/udp/7117/quic-v1").is_empty());
    assert!(listen("/ip4/192.168.1.5/tcp/7117").is_empty());
    assert_eq!(
        listen("/ip4/198.51.100.10/udp/7117/quic-v1"),
        ["+/ip4/198.51.100.10/udp/7117/quic-v1"]
    );
    let mut now: Vec<_> = m.declared.iter().map(|a| a.to_string()).collect();
    now.sort();
    assert_eq!(
        now,
        [
            "/ip4/198.51.100.10/tcp/7117",
            "/ip4/198.51.100.10/udp/7117/quic-v1"
        ]
    );
    assert_eq!(m.reachability(), Reachability::Public);

    // A user's declaration is never retracted.
    let mut s = settings(DhtMode::Server);
    s.external = vec![addr("/ip4/10.9.9.9/tcp/1")];
    let mut m = Reach::new(s);
    m.start(t);
    m.handle(Input::ListenAddr(addr("/ip4/10.9.9.9/tcp/1")), t);
    let out = m.handle(Input::ListenAddr(addr("/ip4/198.51.100.1/tcp/1")), t);
    assert_eq!(declared(&out), ["+/ip4/198.51.100.1/tcp/1"]);
    assert!(m.declared.contains(&addr("/ip4/10.9.9.9/tcp/1")));
}

/// The locator hears of every change to what it publishes from this
/// machine alone: a listen address up or gone (a circuit one included),
/// a relay listener closed, an external address confirmed or expired.
#[test]
fn every_change_of_our_addresses_reaches_the_locator_as_one_output() {
    let t = Instant::now();
    let mut m = Reach::new(settings(DhtMode::Auto));
    m.start(t);
    let changed = |out: Vec<Output>| out.contains(&Output::AddressesChanged);
    let circuit = addr(
        "/ip4/1.2.3.4/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit",
    );
    assert!(changed(
        m.handle(Input::ListenAddr(addr("/ip4/10.0.0.2/tcp/1")), t)
    ));
    assert!(changed(m.handle(Input::ListenAddr(circuit.clone()), t)));
    assert!(changed(m.handle(Input::ListenAddrExpired, t)));
    let (relay, _) = hop_peer(&mut m, 1, t);
    assert!(changed(m.handle(Input::RelayClosed { relay }, t)));
    assert!(changed(
        m.handle(Input::ExternalConfirmed(circuit.clone()), t)
    ));
    assert!(changed(m.handle(Input::ExternalExpired(circuit), t)));
    // Time passing alone changes nothing we publish.
    assert!(!changed(m.handle(Input::Tick, t)));
}
