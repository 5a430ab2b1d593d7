//! A held publication ([`Input::Publishable`]): nothing goes out while the
//! node waits for a relay circuit; what fell due goes out once it ends,
//! with the addresses of that moment.

use super::*;

fn puts(out: &[Output]) -> usize {
    out.iter()
        .filter(|o| matches!(o, Output::PutRecord { .. }))
        .count()
}

#[test]
fn a_held_publication_waits_for_the_release_then_carries_the_circuit() {
    let mut r = Rig::new(0);
    r.dht.table = vec![PeerId::random()];
    r.run(Input::Publishable(false), secs(0));
    // The listeners come up: a publication falls due, and is held.
    r.run(Input::AddressesChanged, secs(0));
    assert_eq!(r.m.poll_timeout(), None, "no wake-up while held");
    let out = r.run(Input::Tick, SETTLE);
    assert_eq!(puts(&out), 0, "{out:?}");
    // A peer joins the table, time passes: still nothing.
    r.run(Input::NewPeer(PeerId::random()), secs(1));
    assert_eq!(puts(&r.run(Input::Tick, secs(3))), 0);
    assert!(r.m.published().is_none());

    // The reservation is held: the publication goes out SETTLE later,
    // with the circuit address that came meanwhile.
    let circuit: Multiaddr = format!(
        "/ip4/198.51.100.10/tcp/7117/p2p/{}/p2p-circuit",
        PeerId::random()
    )
    .parse()
    .unwrap();
    r.run(Input::Publishable(true), secs(4));
    assert_eq!(r.m.poll_timeout(), Some(r.t0 + secs(4) + SETTLE));
    assert_eq!(puts(&r.run(Input::Tick, secs(4))), 0, "not before SETTLE");
    r.dht.addrs.push(circuit.clone());
    let (_, record, _) = the_put(r.run(Input::Tick, secs(4) + SETTLE));
    let loc = validate(&r.key_of(), &record.value, BASE, None).unwrap();
    assert!(loc.addrs.contains(&circuit), "{:?}", loc.addrs);
}

#[test]
fn leaving_is_not_held() {
    let mut r = Rig::new(0);
    r.dht.table = vec![PeerId::random()];
    r.run(Input::Publishable(false), secs(0));
    let out = r.run(Input::Shutdown, secs(1));
    assert_eq!(puts(&out), 1, "the offline record goes out: {out:?}");
}
