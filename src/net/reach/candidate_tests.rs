//! Relay candidates whose connection closed: kept for a while and dialled
//! when a relay is needed, forgotten after [`CANDIDATE_KEPT`], making room
//! in a full table.

use super::tests::{conn, hop_peer, reserves, settings};
use super::*;

/// Whether `out` dials `relay` to reserve on it.
fn dials(out: &[Output], relay: PeerId) -> bool {
    out.iter()
        .any(|o| matches!(o, Output::Dial { relay: r, .. } if *r == relay))
}

/// A private node holding reservations on `a` and `b` (connections 1 and
/// 2), and `c`, a candidate whose connection (3) nothing used: it reached
/// the idle timeout at `t`.
fn two_relays_and_one_gone(t: Instant) -> (Reach, PeerId, PeerId) {
    let mut m = Reach::new(settings(DhtMode::Auto));
    m.start(t);
    let (a, _) = hop_peer(&mut m, 1, t);
    let (b, _) = hop_peer(&mut m, 2, t);
    let (c, _) = hop_peer(&mut m, 3, t);
    m.handle(Input::ReservationAccepted { relay: a }, t);
    m.handle(Input::ReservationAccepted { relay: b }, t);
    m.handle(Input::Disconnected { conn: conn(3) }, t);
    (m, a, c)
}

#[test]
fn a_candidate_whose_connection_idled_out_is_dialled_when_a_relay_is_lost() {
    let t = Instant::now();
    let (mut m, a, c) = two_relays_and_one_gone(t);
    let out = m.handle(Input::RelayClosed { relay: a }, t + CANDIDATE_KEPT / 2);
    assert!(dials(&out, c), "{out:?}");
    assert!(reserves(&out).is_empty(), "c is not connected: {out:?}");
}

#[test]
fn a_candidate_gone_longer_than_it_is_kept_is_forgotten() {
    let t = Instant::now();
    let (mut m, a, c) = two_relays_and_one_gone(t);
    let out = m.handle(Input::RelayClosed { relay: a }, t + CANDIDATE_KEPT);
    assert!(!dials(&out, c), "{out:?}");
    assert!(!m.candidates.contains_key(&c));
}

#[test]
fn a_connected_candidate_is_picked_before_one_that_is_gone() {
    let t = Instant::now();
    for seed in 0..16 {
        let mut m = Reach::new(settings(DhtMode::Auto));
        m.jitter = crate::backoff::Jitter::seeded(seed);
        m.start(t);
        let (a, _) = hop_peer(&mut m, 1, t);
        let (b, _) = hop_peer(&mut m, 2, t);
        let (gone, _) = hop_peer(&mut m, 3, t);
        let (here, _) = hop_peer(&mut m, 4, t);
        m.handle(Input::ReservationAccepted { relay: a }, t);
        m.handle(Input::ReservationAccepted { relay: b }, t);
        m.handle(Input::Disconnected { conn: conn(3) }, t);
        let out = m.handle(Input::RelayClosed { relay: a }, t);
        assert_eq!(reserves(&out), vec![here], "seed {seed}");
        assert!(!dials(&out, gone), "seed {seed}");
    }
}

#[test]
fn a_full_candidate_table_makes_room_by_the_one_gone_longest() {
    let t = Instant::now();
    let mut m = Reach::new(settings(DhtMode::Server));
    m.start(t);
    let mut peers = Vec::new();
    for n in 0..MAX_CANDIDATES {
        peers.push(hop_peer(&mut m, n, t).0);
    }
    m.handle(Input::Disconnected { conn: conn(5) }, t);
    m.handle(
        Input::Disconnected { conn: conn(7) },
        t + Duration::from_secs(1),
    );
    let (new, _) = hop_peer(&mut m, MAX_CANDIDATES, t + Duration::from_secs(2));
    assert_eq!(m.candidates.len(), MAX_CANDIDATES);
    assert!(m.candidates.contains_key(&new));
    assert!(!m.candidates.contains_key(&peers[5]), "gone longest");
    assert!(m.candidates.contains_key(&peers[7]));
    // The next takes the place of the other one gone; then, with none
    // gone, a newcomer finds no room.
    let (next, _) = hop_peer(&mut m, MAX_CANDIDATES + 1, t);
    assert!(m.candidates.contains_key(&next));
    assert!(!m.candidates.contains_key(&peers[7]));
    let (late, _) = hop_peer(&mut m, MAX_CANDIDATES + 2, t);
    assert!(!m.candidates.contains_key(&late));
}
