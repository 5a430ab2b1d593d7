use super::*;

pub(super) fn settings(mode: DhtMode) -> Settings {
    Settings {
        dht_mode: mode,
        relay_server: true,
        relays: Vec::new(),
        external: Vec::new(),
    }
}

pub(super) fn addr(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

pub(super) fn conn(n: usize) -> ConnectionId {
    ConnectionId::new_unchecked(n)
}

pub(super) fn connected(n: usize, peer: PeerId, relayed: bool) -> Input {
    Input::Connected {
        conn: conn(n),
        peer,
        // As a dialled address is reported: with the peer's ID.
        addr: addr(&format!("/ip4/1.2.3.{n}/tcp/7117/p2p/{peer}")),
        relayed,
        dialer: true,
    }
}

/// A peer we dialled that identifies as a relay.
pub(super) fn hop_peer(m: &mut Reach, n: usize, now: Instant) -> (PeerId, Vec<Output>) {
    let p = PeerId::random();
    m.handle(connected(n, p, false), now);
    let out = m.handle(
        Input::Identified {
            peer: p,
            hop: true,
            listen: vec![addr("/ip4/10.0.0.1/tcp/1")],
        },
        now,
    );
    (p, out)
}

pub(super) fn reserves(out: &[Output]) -> Vec<PeerId> {
    out.iter()
        .filter_map(|o| match o {
            Output::Reserve { relay, .. } => Some(*relay),
            _ => None,
        })
        .collect()
}

#[test]
fn auto_mode_starts_client_and_becomes_server_only_on_a_direct_confirmation() {
    let t = Instant::now();
    let mut m = Reach::new(settings(DhtMode::Auto));
    assert_eq!(
        m.start(t),
        vec![
            Output::Publishable(false),
            Output::KadServer(false),
            Output::RelayServer(false)
        ]
    );
    assert_eq!(m.reachability(), Reachability::Unknown);

    // A circuit address confirmed (the relay client does this) proves
    // nothing about direct reachability.
    let circuit = addr(
        "/ip4/1.2.3.4/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit",
    );
    let out = m.handle(Input::ExternalConfirmed(circuit.clone()), t);
    assert_eq!(out, vec![Output::AddressesChanged]);
    m.handle(
        Input::AutoNat {
            addr: circuit,
            reachable: true,
        },
        t,
    );
    assert_eq!(m.reachability(), Reachability::Unknown);

    let out = m.handle(
        Input::AutoNat {
            addr: addr("/ip4/1.2.3.4/tcp/7117"),
            reachable: true,
        },
        t,
    );
    assert_eq!(m.reachability(), Reachability::Public);
    assert!(out.contains(&Output::KadServer(true)), "{out:?}");
    assert!(out.contains(&Output::RelayServer(true)), "{out:?}");
}

#[test]
fn upnp_mapping_alone_is_not_public() {
    let t = Instant::now();
    let mut m = Reach::new(settings(DhtMode::Auto));
    m.start(t);
    // UPnP reports its mapping as a confirmed external address.
    let out = m.handle(Input::ExternalConfirmed(addr("/ip4/5.6.7.8/tcp/7117")), t);
    assert!(!out.contains(&Output::KadServer(true)), "{out:?}");
    assert_eq!(m.reachability(), Reachability::Unknown);
}

#[test]
fn failed_probe_makes_private_and_client() {
    let t = Instant::now();
    let mut m = Reach::new(settings(DhtMode::Auto));
    m.start(t);
    // A circuit, or the bare ID a relayed connection is observed on, is
    // not an address of ours to fail.
    let relay = PeerId::random();
    for a in [
        format!("/ip4/1.2.3.4/tcp/1/p2p/{relay}/p2p-circuit"),
        format!("/p2p/{relay}"),
    ] {
        m.handle(
            Input::AutoNat {
                addr: addr(&a),
                reachable: false,
            },
            t,
        );
    }
    assert_eq!(m.reachability(), Reachability::Unknown);
    let out = m.handle(
        Input::AutoNat {
            addr: addr("/ip4/1.2.3.4/tcp/7117"),
            reachable: false,
        },
        t,
    );
    assert_eq!(m.reachability(), Reachability::Private);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn forced_modes_hold_whatever_autonat_says() {
    let t = Instant::now();
    let mut m = Reach::new(settings(DhtMode::Client));
    assert!(m.start(t).contains(&Output::KadServer(false)));
    let out = m.handle(
        Input::AutoNat {
            addr: addr("/ip4/1.2.3.4/tcp/7117"),
            reachable: true,
        },
        t,
    );
    assert_eq!(m.reachability(), Reachability::Public);
    assert!(!out.contains(&Output::KadServer(true)), "{out:?}");
    // Public: the relay server may still be on.
    assert!(out.contains(&Output::RelayServer(true)), "{out:?}");

    let mut m = Reach::new(settings(DhtMode::Server));
    let out = m.start(t);
    assert!(out.contains(&Output::KadServer(true)), "{out:?}");
    assert_eq!(m.reachability(), Reachability::Public);
}

#[test]
fn relay_server_stays_off_when_config_says_so() {
    let t = Instant::now();
    let mut s = settings(DhtMode::Server);
    s.relay_server = false;
    let mut m = Reach::new(s);
    assert_eq!(
        m.start(t),
        vec![Output::KadServer(true), Output::RelayServer(false)]
    );
}

#[test]
fn private_node_reserves_on_two_hop_peers_and_publishes_nothing_while_public() {
    let t = Instant::now();
    let mut m = Reach::new(settings(DhtMode::Auto));
    m.start(t);
    // A peer without HOP is no candidate.
    let plain = PeerId::random();
    m.handle(connected(1, plain, false), t);
    let out = m.handle(
        Input::Identified {
            peer: plain,
            hop: false,
            listen: vec![addr("/ip4/10.0.0.9/tcp/1")],
        },
        t,
    );
    assert!(reserves(&out).is_empty());

    let (a, out) = hop_peer(&mut m, 2, t);
    assert_eq!(reserves(&out), vec![a]);
    // The address we dialled comes first, with /p2p/R/p2p-circuit.
    let expected = addr(&format!("/ip4/1.2.3.2/tcp/7117/p2p/{a}/p2p-circuit"));
    assert!(
        out.contains(&Output::Reserve {
            relay: a,
            addr: expected.clone()
        }),
        "{out:?}"
    );
    let (b, out) = hop_peer(&mut m, 3, t);
    assert_eq!(reserves(&out), vec![b]);
    // Two are enough.
    let (_, out) = hop_peer(&mut m, 4, t);
    assert!(reserves(&out).is_empty(), "{out:?}");

    assert!(m.held_relays().is_empty());
    m.handle(Input::ReservationAccepted { relay: a }, t);
    assert_eq!(m.held_relays(), vec![expected]);

    // Public: the reservations go.
    let out = m.handle(
        Input::AutoNat {
            addr: addr("/ip4/1.2.3.4/tcp/7117"),
            reachable: true,
        },
        t,
    );
    let mut released: Vec<PeerId> = out
        .iter()
        .filter_map(|o| match o {
            Output::Release { relay } => Some(*relay),
            _ => None,
        })
        .collect();
    released.sort();
    let mut both = vec![a, b];
    both.sort();
    assert_eq!(released, both);
    assert!(m.held_relays().is_empty());
}

/// The rest the machine's next failure will get at `attempt` (0 after
/// the first failure in a row): its own jitter, read ahead on a copy.
fn next_rest(m: &Reach, attempt: u32) -> Duration {
    RELAY_RETRY.next_delay(attempt, m.jitter.clone().next_u64())
}

#[test]
fn lost_relay_is_replaced_at_once_and_retried_after_a_growing_backoff() {
    let t = Instant::now();
    let mut m = Reach::new(settings(DhtMode::Auto));
    m.jitter = crate::backoff::Jitter::seeded(7);
    m.start(t);
    let (a, _) = hop_peer(&mut m, 1, t);
    let (b, _) = hop_peer(&mut m, 2, t);
    let (c, out) = hop_peer(&mut m, 3, t);
    assert!(reserves(&out).is_empty());
    m.handle(Input::ReservationAccepted { relay: a }, t);
    m.handle(Input::ReservationAccepted { relay: b }, t);

    let t1 = t + Duration::from_secs(100);
    let a_first = next_rest(&m, 0);
    let out = m.handle(Input::RelayClosed { relay: a }, t1);
    assert_eq!(reserves(&out), vec![c], "replacement at once");
    assert!(a_first <= FIRST_BACKOFF * 6 / 5 && a_first >= FIRST_BACKOFF * 4 / 5);

    // c never answers: given up after the timeout; a, which rested its
    // first short back-off meanwhile, is tried again.
    assert_eq!(m.next_deadline(), Some(t1 + RESERVE_TIMEOUT));
    let t2 = t1 + RESERVE_TIMEOUT;
    let c_first = next_rest(&m, 0);
    let out = m.handle(Input::Tick, t2);
    assert!(out.contains(&Output::Release { relay: c }), "{out:?}");
    assert_eq!(reserves(&out), vec![a]);

    // a fails again at once: its rest doubles (jittered, still longer than
    // any first rest), so c, resting its first, comes back first.
    let a_second = next_rest(&m, 1);
    assert!(a_second >= FIRST_BACKOFF * 2 * 4 / 5, "{a_second:?}");
    let out = m.handle(Input::RelayClosed { relay: a }, t2);
    assert!(reserves(&out).is_empty(), "{out:?}");
    assert_eq!(m.next_deadline(), Some(t2 + c_first));
    let out = m.handle(Input::Tick, t2 + c_first);
    assert_eq!(reserves(&out), vec![c]);
    let c_second = next_rest(&m, 1);
    let out = m.handle(Input::RelayClosed { relay: c }, t2 + c_first);
    assert!(reserves(&out).is_empty(), "{out:?}");
    let due = (t2 + a_second).min(t2 + c_first + c_second);
    assert_eq!(m.next_deadline(), Some(due));
    let out = m.handle(Input::Tick, t2 + a_second);
    assert_eq!(reserves(&out), vec![a]);
}

#[test]
fn configured_relays_are_used_first_without_waiting_for_identify() {
    let t = Instant::now();
    let r = PeerId::random();
    let mut s = settings(DhtMode::Auto);
    s.relays = vec![addr(&format!("/ip4/9.9.9.9/tcp/7117/p2p/{r}"))];
    let mut m = Reach::new(s);
    // Not connected yet: dialled first (the relay client's own dial gives
    // up if another dial to it is under way).
    let out = m.start(t);
    assert!(
        out.contains(&Output::Dial {
            relay: r,
            addr: addr("/ip4/9.9.9.9/tcp/7117"),
        }),
        "{out:?}"
    );
    assert!(reserves(&out).is_empty());
    let out = m.handle(
        Input::Connected {
            conn: conn(1),
            peer: r,
            addr: addr("/ip4/9.9.9.9/tcp/7117"),
            relayed: false,
            dialer: true,
        },
        t,
    );
    assert!(
        out.contains(&Output::Reserve {
            relay: r,
            addr: addr(&format!("/ip4/9.9.9.9/tcp/7117/p2p/{r}/p2p-circuit")),
        }),
        "{out:?}"
    );
}

#[test]
fn relayed_connection_closed_once_a_direct_one_is_up() {
    let t = Instant::now();
    let mut m = Reach::new(settings(DhtMode::Auto));
    m.start(t);
    let p = PeerId::random();
    let out = m.handle(connected(1, p, true), t);
    assert!(!out.iter().any(|o| matches!(o, Output::Close(_))));
    // A direct connection to another peer changes nothing.
    let out = m.handle(connected(2, PeerId::random(), false), t);
    assert!(!out.iter().any(|o| matches!(o, Output::Close(_))));
    // Hole punch (or any dial) gives a direct one to p.
    let out = m.handle(connected(3, p, false), t);
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, Output::Close(_)))
            .collect::<Vec<_>>(),
        vec![&Output::Close(conn(1))]
    );
    // And a relayed one arriving while a direct one is up goes at once.
    let out = m.handle(connected(4, p, true), t);
    assert!(out.contains(&Output::Close(conn(4))), "{out:?}");
    m.handle(Input::Disconnected { conn: conn(1) }, t);
    m.handle(Input::Disconnected { conn: conn(4) }, t);
    let rows = m.connections();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|c| !c.relayed));
}

#[test]
fn tables_are_capped() {
    let t = Instant::now();
    let mut m = Reach::new(settings(DhtMode::Server));
    m.start(t);
    for n in 0..MAX_CANDIDATES + 10 {
        hop_peer(&mut m, n, t);
    }
    assert_eq!(m.candidates.len(), MAX_CANDIDATES);
    for n in 0..MAX_ADDRS + 5 {
        m.handle(
            Input::AutoNat {
                addr: addr(&format!("/ip4/1.1.1.1/tcp/{n}")),
                reachable: true,
            },
            t,
        );
        m.handle(Input::ListenAddr(addr(&format!("/ip4/2.2.2.2/tcp/{n}"))), t);
    }
    assert_eq!(m.confirmed.len(), MAX_ADDRS);
    assert_eq!(m.declared.len(), MAX_ADDRS);
}

#[test]
fn no_confirmation_long_after_a_candidate_means_private() {
    let t0 = Instant::now();
    let mut m = Reach::new(settings(DhtMode::Auto));
    m.start(t0);
    // Once the publication hold is over, nothing else is due.
    let t = t0 + PUBLISH_HOLD;
    m.handle(Input::Tick, t);
    assert_eq!(m.next_deadline(), None);
    // A circuit is no candidate of ours.
    m.handle(
        Input::Candidate(addr("/ip4/1.2.3.4/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit")),
        t,
    );
    assert_eq!(m.next_deadline(), None);
    m.handle(Input::Candidate(addr("/ip4/5.6.7.8/tcp/7117")), t);
    assert_eq!(m.next_deadline(), Some(t + PRIVATE_AFTER));
    m.handle(Input::Tick, t + PRIVATE_AFTER - Duration::from_millis(1));
    assert_eq!(m.reachability(), Reachability::Unknown);
    m.handle(Input::Tick, t + PRIVATE_AFTER);
    assert_eq!(m.reachability(), Reachability::Private);
    assert_eq!(m.next_deadline(), None);
    // A later confirmation still makes us public.
    let out = m.handle(
        Input::AutoNat {
            addr: addr("/ip4/5.6.7.8/tcp/7117"),
            reachable: true,
        },
        t + PRIVATE_AFTER,
    );
    assert_eq!(m.reachability(), Reachability::Public);
    assert!(out.contains(&Output::KadServer(true)), "{out:?}");
}

#[test]
fn a_confirmed_lan_or_carrier_nat_address_does_not_make_us_public() {
    let t = Instant::now();
    let mut m = Reach::new(settings(DhtMode::Auto));
    m.start(t);
    for a in [
        "/ip4/192.168.1.5/tcp/7117",
        "/ip4/10.0.0.2/udp/7117/quic-v1",
        "/ip4/172.16.3.4/tcp/7117",
        "/ip4/100.64.1.2/tcp/7117",
        "/ip4/169.254.1.1/tcp/7117",
        "/ip4/127.0.0.1/tcp/7117",
        "/ip6/fd00::1/tcp/7117",
        "/ip6/fe80::1/tcp/7117",
    ] {
        let out = m.handle(
            Input::AutoNat {
                addr: addr(a),
                reachable: true,
            },
            t,
        );
        assert_eq!(m.reachability(), Reachability::Unknown, "{a}");
        assert!(!out.contains(&Output::KadServer(true)), "{a}: {out:?}");
    }
    // A global one does (the sentinel: the machine takes confirmations).
    m.handle(
        Input::AutoNat {
            addr: addr("/ip4/198.51.100.10/tcp/7117"),
            reachable: true,
        },
        t,
    );
    assert_eq!(m.reachability(), Reachability::Public);
}

#[test]
fn failure_counts_are_capped_too() {
    let t = Instant::now();
    let mut m = Reach::new(settings(DhtMode::Auto));
    m.start(t);
    // Many relays each fail once and rest; their rests end, their counts
    // stay remembered — at most MAX_BACKOFF of them.
    let mut now = t;
    for round in 0..3u64 {
        for _ in 0..MAX_BACKOFF {
            let relay = PeerId::random();
            m.back_off(relay, now);
        }
        now += RELAY_BACKOFF * 2 + Duration::from_secs(round);
        m.handle(Input::Tick, now);
    }
    assert!(m.failed.values().all(|f| f.rest_until.is_none()));
    assert_eq!(m.failed.len(), MAX_BACKOFF);
}

#[test]
fn only_a_directly_connected_hop_peer_becomes_a_relay_candidate() {
    let t = Instant::now();
    let mut m = Reach::new(settings(DhtMode::Auto));
    m.start(t);
    // Met over a relay: its identify says HOP, at addresses of its choice.
    let p = PeerId::random();
    m.handle(connected(1, p, true), t);
    let out = m.handle(
        Input::Identified {
            peer: p,
            hop: true,
            listen: vec![addr("/ip4/10.0.0.1/tcp/1")],
        },
        t,
    );
    assert!(reserves(&out).is_empty(), "{out:?}");
    assert!(m.candidates.is_empty());
    // The sentinel: a peer connected directly is taken.
    let (q, out) = hop_peer(&mut m, 2, t);
    assert_eq!(reserves(&out), vec![q]);
}

#[test]
fn relays_are_drawn_at_random_not_by_smallest_id() {
    let t = Instant::now();
    let peers: Vec<PeerId> = (0..8).map(|_| PeerId::random()).collect();
    let mut first_picks = std::collections::HashSet::new();
    for seed in 0..16 {
        let mut m = Reach::new(settings(DhtMode::Auto));
        m.jitter = crate::backoff::Jitter::seeded(seed);
        m.start(t);
        // All identify before any is picked: they connect and identify
        // while a configured-less node is already at its two relays.
        m.relays.insert(
            PeerId::random(),
            Relay::Held {
                addr: addr("/ip4/1.1.1.1/tcp/1"),
            },
        );
        m.relays.insert(
            PeerId::random(),
            Relay::Held {
                addr: addr("/ip4/1.1.1.2/tcp/1"),
            },
        );
        for (n, p) in peers.iter().enumerate() {
            m.handle(connected(n + 10, *p, false), t);
            m.handle(
                Input::Identified {
                    peer: *p,
                    hop: true,
                    listen: vec![],
                },
                t,
            );
        }
        m.relays.clear();
        let out = m.handle(Input::Tick, t);
        first_picks.extend(reserves(&out).into_iter().take(1));
    }
    assert!(first_picks.len() > 1, "always {first_picks:?}");
}
