use proptest::prelude::*;

use super::*;

const NOW: u64 = 1_800_000_000_000;
const DAY: u64 = 86_400_000;

fn addr(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

fn tcp() -> Multiaddr {
    addr("/ip4/192.0.2.7/tcp/7117")
}

/// A relay circuit address through relay `relay`.
fn circuit(relay: &Identity) -> Multiaddr {
    addr(&format!(
        "/ip4/198.51.100.1/udp/7117/quic-v1/p2p/{}/p2p-circuit",
        relay.peer_id()
    ))
}

fn payload(uri: &str) -> Vec<u8> {
    BASE32_NOPAD
        .decode(uri.strip_prefix(URI_PREFIX).unwrap().as_bytes())
        .unwrap()
}

fn uri_of(bytes: &[u8]) -> String {
    format!("{URI_PREFIX}{}", BASE32_NOPAD.encode(bytes))
}

#[test]
fn an_invite_round_trips_and_is_short() {
    let id = Identity::generate().unwrap();
    let relay = Identity::generate().unwrap();
    let me = id.peer_id();
    let with_me = tcp().with(Protocol::P2p(me));
    let uri = create(&id, &[with_me, circuit(&relay)], NOW + DAY).unwrap();
    let inv = parse(&uri, NOW).unwrap();
    assert_eq!(inv.peer, me);
    assert_eq!(inv.addrs, vec![tcp(), circuit(&relay)]);
    assert_eq!(inv.expires_at, NOW + DAY);
    // QR alphanumeric mode takes the payload whole.
    let body = uri.strip_prefix(URI_PREFIX).unwrap();
    assert!(body.chars().all(|c| matches!(c, 'A'..='Z' | '2'..='7')));
    assert!(uri.len() < 400, "{} characters: {uri}", uri.len());
    // A pasted line with its newline reads the same.
    assert_eq!(parse(&format!("  {uri}\n"), NOW), Ok(inv.clone()));
    // The relay is a contact of its own, for joining the network.
    let relay_at = addr("/ip4/198.51.100.1/udp/7117/quic-v1");
    assert_eq!(
        inv.contacts(),
        vec![
            (me, tcp()),
            (me, circuit(&relay)),
            (relay.peer_id(), relay_at.clone())
        ]
    );
    assert_eq!(
        inv.bootstrap_addrs()[2],
        relay_at.with(Protocol::P2p(relay.peer_id()))
    );
}

#[test]
fn addresses_are_picked_within_the_limits() {
    let id = Identity::generate().unwrap();
    let other = Identity::generate().unwrap();
    let mut addrs: Vec<Multiaddr> = (0..20)
        .map(|p| addr(&format!("/ip4/10.0.0.1/tcp/{}", 1000 + p)))
        .collect();
    addrs.insert(0, tcp()); // and once more below: kept once
    addrs.push(tcp());
    addrs.push(tcp().with(Protocol::P2p(other.peer_id()))); // someone else's
    let relays: Vec<Identity> = (0..6).map(|_| Identity::generate().unwrap()).collect();
    addrs.extend(relays.iter().map(circuit));
    let inv = parse(&create(&id, &addrs, NOW + DAY).unwrap(), NOW).unwrap();
    assert_eq!(inv.addrs.len(), MAX_ADDRS);
    assert_eq!(inv.addrs[0], tcp());
    assert_eq!(inv.addrs.iter().filter(|a| **a == tcp()).count(), 1);
    let circuits = inv
        .addrs
        .iter()
        .filter(|a| a.iter().any(|p| p == Protocol::P2pCircuit))
        .count();
    assert_eq!(circuits, MAX_CIRCUIT_ADDRS);

    // Addresses at the length limit: the invite still fits its own limit.
    let long = |i: u8| {
        let mut a = addr("/dns4/x/tcp/1");
        let host = format!("{i}{}", "h".repeat(MAX_ADDR_BYTES - 8));
        a = a.replace(0, |_| Some(Protocol::Dns4(host.into()))).unwrap();
        assert!(a.len() <= MAX_ADDR_BYTES, "{}", a.len());
        a
    };
    let longs: Vec<Multiaddr> = (0..MAX_ADDRS as u8).map(long).collect();
    let uri = create(&id, &longs, NOW + DAY).unwrap();
    assert!(payload(&uri).len() <= MAX_INVITE_BYTES);
    let inv = parse(&uri, NOW).unwrap();
    assert!(!inv.addrs.is_empty() && inv.addrs.len() < MAX_ADDRS);
}

#[test]
fn an_expired_invite_says_when_it_expired() {
    let id = Identity::generate().unwrap();
    let uri = create(&id, &[tcp()], NOW).unwrap();
    assert!(parse(&uri, NOW - 1).is_ok());
    let err = parse(&uri, NOW).unwrap_err();
    assert_eq!(err, InviteError::Expired(NOW));
    assert_eq!(
        err.to_string(),
        "this invite expired on 2027-01-15 08:00 UTC; ask its owner for a new one"
    );
}

#[test]
fn a_forged_invite_is_refused() {
    let owner = Identity::generate().unwrap();
    let forger = Identity::generate().unwrap();
    let body = InviteBody {
        pubkey: owner.verifying_key().to_bytes().to_vec(),
        addrs: vec![ByteBuf::from(tcp().to_vec())],
        expires_at: NOW + DAY,
    };
    let body_bytes = crate::wire::encode(&body).unwrap();
    // Signed by another key than the one it names.
    let sig = forger.sign(&signed::signed_bytes(SIG_DOMAIN, &body_bytes));
    let forged = assemble(&body, sig.to_bytes().to_vec()).unwrap();
    let err = parse(&forged, NOW).unwrap_err();
    assert_eq!(err, InviteError::BadSignature);
    assert!(
        err.to_string().contains("signature does not match the ID"),
        "{err}"
    );
    // The owner's signature, but for another purpose (a locator record).
    let sig = owner.sign(&signed::signed_bytes(b"roost/locator/v1\0", &body_bytes));
    let replayed = assemble(&body, sig.to_bytes().to_vec()).unwrap();
    assert_eq!(parse(&replayed, NOW), Err(InviteError::BadSignature));
    // The owner's own signature checks.
    let sig = owner.sign(&signed::signed_bytes(SIG_DOMAIN, &body_bytes));
    assert!(parse(&assemble(&body, sig.to_bytes().to_vec()).unwrap(), NOW).is_ok());
}

#[test]
fn garbage_and_other_schemes_are_refused_with_their_reason() {
    let id = Identity::generate().unwrap();
    let good = create(&id, &[tcp()], NOW + DAY).unwrap();
    for text in [
        "",
        "hello",
        "12D3KooWxxxx",
        "https://example.com/roost:AAAA",
        "ROOST:AAAA",
    ] {
        assert_eq!(parse(text, NOW), Err(InviteError::WrongPrefix), "{text:?}");
    }
    assert!(matches!(
        parse("roost:not base32!", NOW),
        Err(InviteError::Malformed(_))
    ));
    assert!(matches!(
        parse(&good.to_lowercase(), NOW),
        Err(InviteError::Malformed(_))
    ));
    assert!(matches!(
        parse(&uri_of(b"\xa0"), NOW),
        Err(InviteError::Malformed(_))
    ));
    // Cut short.
    let short = &good[..good.len() - 10];
    assert!(matches!(parse(short, NOW), Err(InviteError::Malformed(_))));
    // Too long: refused by its length alone.
    let long = format!("{URI_PREFIX}{}", "A".repeat(MAX_URI_CHARS));
    assert_eq!(
        parse(&long, NOW),
        Err(InviteError::TooLarge(MAX_URI_CHARS + URI_PREFIX.len()))
    );
    // The same invite with its `{body, sig}` re-encoded another way
    // (a byte-string key where CBOR had a text key) is refused too.
    let mut bytes = payload(&good);
    let at = bytes.windows(5).position(|w| w == b"\x64body").unwrap();
    bytes[at] = 0x44;
    assert!(matches!(
        parse(&uri_of(&bytes), NOW),
        Err(InviteError::Malformed(_))
    ));
}

fn fixed_invite() -> (String, Invite) {
    let id = Identity::from_seed([7; 32]);
    let relay = Identity::from_seed([8; 32]);
    let uri = create(&id, &[tcp(), circuit(&relay)], NOW + DAY).unwrap();
    let inv = parse(&uri, NOW).unwrap();
    (uri, inv)
}

/// Every change of every byte of the text (each position, each of the
/// 255 other values) is refused.
#[test]
fn any_byte_flip_of_the_text_is_refused() {
    let (uri, _) = fixed_invite();
    for i in 0..uri.len() {
        for x in 1..=255u8 {
            let mut bytes = uri.clone().into_bytes();
            bytes[i] ^= x;
            if let Ok(text) = String::from_utf8(bytes) {
                assert!(parse(&text, NOW).is_err(), "byte {i} ^ {x:#x} accepted");
            }
        }
    }
}

/// Every change of every byte of the binary form is refused, whether it
/// falls in the signed body, the signature or the `{body, sig}` around
/// them.
#[test]
fn any_byte_flip_of_the_binary_form_is_refused() {
    let (uri, _) = fixed_invite();
    let good = payload(&uri);
    for i in 0..good.len() {
        for x in 1..=255u8 {
            let mut bytes = good.clone();
            bytes[i] ^= x;
            assert!(
                parse(&uri_of(&bytes), NOW).is_err(),
                "byte {i} ^ {x:#x} accepted"
            );
        }
    }
}

proptest! {
    /// Random text and random bytes behind the prefix never panic and are
    /// never taken for an invite.
    #[test]
    fn garbage_never_passes(text in ".{0,2000}", bytes in prop::collection::vec(any::<u8>(), 0..1500)) {
        prop_assert!(parse(&text, NOW).is_err());
        let prefixed = format!("{}{}", URI_PREFIX, text);
        prop_assert!(parse(&prefixed, NOW).is_err());
        prop_assert!(parse(&uri_of(&bytes), NOW).is_err());
    }

    /// Whatever the addresses and expiry, what is made is what is read.
    #[test]
    fn round_trip(ports in prop::collection::vec(1u16.., 0..12), ahead in 1u64..=90 * DAY) {
        let id = Identity::from_seed([9; 32]);
        let addrs: Vec<Multiaddr> = ports
            .iter()
            .map(|p| addr(&format!("/ip4/203.0.113.9/tcp/{p}")))
            .collect();
        let inv = parse(&create(&id, &addrs, NOW + ahead).unwrap(), NOW).unwrap();
        let mut want = Vec::new();
        for a in addrs {
            if !want.contains(&a) && want.len() < MAX_ADDRS {
                want.push(a);
            }
        }
        prop_assert_eq!(inv, Invite { peer: id.peer_id(), addrs: want, expires_at: NOW + ahead });
    }
}

#[test]
fn an_invite_with_more_relay_circuits_than_allowed_is_refused() {
    let owner = Identity::generate().unwrap();
    let relays: Vec<Identity> = (0..=MAX_CIRCUIT_ADDRS)
        .map(|_| Identity::generate().unwrap())
        .collect();
    let signed_with = |n: usize| {
        let body = InviteBody {
            pubkey: owner.verifying_key().to_bytes().to_vec(),
            addrs: relays[..n]
                .iter()
                .map(|r| ByteBuf::from(circuit(r).to_vec()))
                .collect(),
            expires_at: NOW + DAY,
        };
        let body_bytes = crate::wire::encode(&body).unwrap();
        let sig = owner.sign(&signed::signed_bytes(SIG_DOMAIN, &body_bytes));
        assemble(&body, sig.to_bytes().to_vec()).unwrap()
    };
    // The owner's own signature over one circuit too many.
    let err = parse(&signed_with(MAX_CIRCUIT_ADDRS + 1), NOW).unwrap_err();
    assert!(
        err.to_string().contains("too many relay addresses"),
        "{err}"
    );
    // At the limit it is taken.
    assert_eq!(
        parse(&signed_with(MAX_CIRCUIT_ADDRS), NOW)
            .unwrap()
            .addrs
            .len(),
        MAX_CIRCUIT_ADDRS
    );
}

#[test]
fn circuits_through_global_relay_addresses_and_global_addresses_are_picked_first() {
    let id = Identity::generate().unwrap();
    let relay = Identity::generate().unwrap();
    let via = |ip: &str| {
        addr(&format!(
            "/ip4/{ip}/tcp/7117/p2p/{}/p2p-circuit",
            relay.peer_id()
        ))
    };
    // A relay that declared its loopback and LAN addresses too hands out
    // circuits through each; ours come in the order the swarm lists them.
    let mut addrs: Vec<Multiaddr> = (1..=MAX_ADDRS as u8)
        .map(|i| addr(&format!("/ip4/10.0.0.{i}/tcp/7117")))
        .collect();
    addrs.push(tcp());
    addrs.extend(
        [
            "127.0.0.1",
            "172.17.0.1",
            "10.0.0.9",
            "192.168.1.1",
            "100.64.0.1",
        ]
        .map(via),
    );
    addrs.push(via("198.51.100.10"));
    let inv = parse(&create(&id, &addrs, NOW + DAY).unwrap(), NOW).unwrap();
    assert_eq!(inv.addrs[0], tcp(), "{:?}", inv.addrs);
    assert!(inv.addrs.contains(&via("198.51.100.10")), "{:?}", inv.addrs);
    assert!(!inv.addrs.contains(&via("100.64.0.1")), "{:?}", inv.addrs);
}

#[test]
fn make_returns_what_its_invite_says() {
    let id = Identity::generate().unwrap();
    let relays: Vec<Identity> = (0..6).map(|_| Identity::generate().unwrap()).collect();
    let many: Vec<Multiaddr> = (0..20)
        .map(|p| addr(&format!("/ip4/10.0.0.1/tcp/{}", 1000 + p)))
        .chain(relays.iter().map(circuit))
        .collect();
    for addrs in [vec![], vec![tcp()], many] {
        let (text, made) = make(&id, &addrs, NOW + DAY).unwrap();
        assert_eq!(made, parse(&text, NOW).unwrap());
    }
}

#[test]
fn out_of_room_an_invite_drops_lan_addresses_before_a_global_circuit() {
    let id = Identity::generate().unwrap();
    let relay = Identity::generate().unwrap();
    // LAN addresses as long as allowed (IPs with long transport tails: a
    // DNS name would count as global) fill the invite past its byte limit.
    let tail = "/webrtc-direct/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g";
    let long = |i: u8| {
        let mut a = addr(&format!("/ip6/fd00::{i}/udp/{i}"));
        for piece in [tail, "/ws"] {
            loop {
                let longer = addr(&format!("{a}{piece}"));
                if longer.len() > MAX_ADDR_BYTES {
                    break;
                }
                a = longer;
            }
        }
        a
    };
    let lan: Vec<Multiaddr> = (1..MAX_ADDRS as u8).map(long).collect();
    let global = addr(&format!(
        "/ip4/198.51.100.10/tcp/7117/p2p/{}/p2p-circuit",
        relay.peer_id()
    ));
    let mut addrs = lan.clone();
    addrs.push(global.clone());
    let (text, inv) = make(&id, &addrs, NOW + DAY).unwrap();
    assert!(text.len() <= MAX_URI_CHARS);
    assert!(inv.addrs.len() < addrs.len(), "the limit was not reached");
    assert!(inv.addrs.contains(&global), "{:?}", inv.addrs);
}
