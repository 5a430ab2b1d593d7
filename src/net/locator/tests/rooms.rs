//! What a DHT node keeps of the room records peers put to it: the first
//! owner of a name keeps it, only its own higher seq replaces it, and a
//! forged record never lands.

use super::*;
use crate::wire::room::{RoomId, sign_record};

fn put(r: &mut Rig, source: PeerId, key: RecordKey, value: Vec<u8>, d: Duration) {
    let record = Record::new(key, value);
    r.run(Input::Inbound { source, record }, d);
}

fn held(r: &mut Rig, key: &RecordKey) -> Option<Vec<u8>> {
    r.dht.held(key).map(|h| h.value)
}

#[test]
fn the_first_owner_keeps_a_name_and_only_its_higher_seq_replaces_it() {
    let mut r = Rig::new(0);
    let (owner, squatter) = (Identity::from_seed([1; 32]), Identity::from_seed([2; 32]));
    let key = RoomId::of_name("lobby").unwrap().record_key();
    let first = sign_record(&owner, "lobby", 1, 1, &[]).unwrap();
    put(
        &mut r,
        owner.peer_id(),
        key.clone(),
        first.raw.clone(),
        secs(0),
    );
    assert_eq!(held(&mut r, &key), Some(first.raw.clone()));

    // Another owner, however high its seq, does not take the name.
    let squat = sign_record(&squatter, "lobby", 0, 1 << 40, &[]).unwrap();
    put(&mut r, squatter.peer_id(), key.clone(), squat.raw, secs(1));
    assert_eq!(held(&mut r, &key), Some(first.raw.clone()));

    // The owner's ban (a higher seq) replaces its record; a replay of the
    // older one does not come back.
    let banned = sign_record(&owner, "lobby", 1, 2, &[squatter.peer_id()]).unwrap();
    put(
        &mut r,
        PeerId::random(),
        key.clone(),
        banned.raw.clone(),
        secs(2),
    );
    assert_eq!(held(&mut r, &key), Some(banned.raw.clone()));
    put(&mut r, PeerId::random(), key.clone(), first.raw, secs(3));
    assert_eq!(held(&mut r, &key), Some(banned.raw));
}

#[test]
fn a_forged_or_misplaced_room_record_is_refused() {
    let mut r = Rig::new(0);
    let owner = Identity::from_seed([1; 32]);
    let key = RoomId::of_name("lobby").unwrap().record_key();
    let good = sign_record(&owner, "lobby", 1, 1, &[]).unwrap();
    // One bit of the signature flipped (the signature is the CBOR's tail).
    let mut forged = good.raw.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    put(&mut r, owner.peer_id(), key.clone(), forged, secs(0));
    assert_eq!(held(&mut r, &key), None);
    // A valid record under another name's key.
    let other = RoomId::of_name("other").unwrap().record_key();
    put(
        &mut r,
        owner.peer_id(),
        other.clone(),
        good.raw.clone(),
        secs(1),
    );
    assert_eq!(held(&mut r, &other), None);
    // Sentinel: the same record under its own key lands.
    put(
        &mut r,
        owner.peer_id(),
        key.clone(),
        good.raw.clone(),
        secs(2),
    );
    assert_eq!(held(&mut r, &key), Some(good.raw));
}

#[test]
fn the_same_record_put_again_renews_its_life() {
    use crate::net::locator::rooms::ROOM_RECORD_TTL;
    let mut r = Rig::new(0);
    let owner = Identity::from_seed([1; 32]);
    let key = RoomId::of_name("lobby").unwrap().record_key();
    let rec = sign_record(&owner, "lobby", 1, 1, &[]).unwrap();
    put(
        &mut r,
        owner.peer_id(),
        key.clone(),
        rec.raw.clone(),
        secs(0),
    );
    let first = r.dht.held(&key).and_then(|h| h.expires).unwrap();
    assert_eq!(first, r.t0 + ROOM_RECORD_TTL);
    // The owner puts the same bytes again 12 h later: it lives 24 h from then.
    let later = secs(12 * 3600);
    put(&mut r, owner.peer_id(), key.clone(), rec.raw.clone(), later);
    let held = r.dht.held(&key).unwrap();
    assert_eq!(held.value, rec.raw);
    assert_eq!(held.expires, Some(r.t0 + later + ROOM_RECORD_TTL));
}
