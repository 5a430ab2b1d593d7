use super::*;

/// A fixed sender, so the same `n` gives the same bytes.
fn env(to: &PeerId, n: u8) -> Envelope {
    Envelope {
        id: MessageId([n; 16]),
        to: to.to_bytes(),
        from: vec![n; 8],
        nonce: [0; 24],
        sealed: vec![n; 100],
    }
}

/// Holds `envs` as admitted with `items`, hashed here.
fn hold(s: &Store, items: &[HeldItem], envs: &[Envelope]) -> Result<Vec<bool>, StoreError> {
    let admitted: Vec<Admitted> = items
        .iter()
        .zip(envs)
        .map(|(item, envelope)| Admitted {
            item: item.clone(),
            encoding: Encoding::of(envelope).unwrap(),
            envelope: envelope.clone(),
        })
        .collect();
    s.hold(&admitted)
}

fn envelopes(held: Vec<(ItemHash, Envelope)>) -> Vec<Envelope> {
    held.into_iter().map(|(_, e)| e).collect()
}

fn item(recipient: PeerId, depositor: PeerId, expires_at: u64) -> HeldItem {
    HeldItem {
        recipient,
        depositor,
        size: 100,
        expires_at,
    }
}

#[test]
fn a_row_spliced_from_the_envelope_encoding_is_the_row_encoded_whole() {
    let (jack, dep) = (PeerId::random(), PeerId::random());
    for (n, hash) in [(1, Some([9; 32])), (2, None)] {
        let e = env(&jack, n);
        let whole = Row {
            envelope: e.clone(),
            depositor: dep.to_bytes(),
            expires_at: 1 << 40,
            hash,
        };
        let tail = RowTail {
            depositor: &whole.depositor,
            expires_at: whole.expires_at,
            hash: hash.as_ref(),
        };
        let spliced = row_bytes(&crate::wire::encode(&e).unwrap(), &tail).unwrap();
        assert_eq!(spliced, crate::wire::encode(&whole).unwrap());
        let back = row_of(&spliced).unwrap();
        assert_eq!(back.envelope, e);
        assert_eq!(back.hash, hash);
    }
}

#[test]
fn unreadable_rows_are_skipped_and_deleted_by_every_reader() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), 1 << 20).unwrap();
    let (jack, dep) = (PeerId::random(), PeerId::random());
    // Two bad rows at the head of Jack's mailbox: garbage, and a
    // well-formed row over the read limit (what an unchecked 2 MiB
    // deposit left behind).
    let plant = |s: &Store| {
        let mut big = env(&jack, 200);
        big.sealed = vec![7; MAX_ROW + 1];
        let rows = [
            b"not cbor at all".to_vec(),
            crate::wire::encode(&Row {
                envelope: big,
                depositor: dep.to_bytes(),
                expires_at: 0,
                hash: None,
            })
            .unwrap(),
        ];
        for row in rows {
            let mut key = prefix(&jack);
            key.extend_from_slice(&s.db.generate_id().unwrap().to_be_bytes());
            s.held.insert(key, row).unwrap();
        }
    };
    plant(&s);
    let good: Vec<Envelope> = (1..=3).map(|n| env(&jack, n)).collect();
    let items = vec![item(jack, dep, 5000); 3];
    assert_eq!(hold(&s, &items, &good).unwrap(), vec![true; 3]);
    assert_eq!(s.held_len().unwrap(), 5);

    // A page skips them, and they are gone.
    let (page, next) = s.held_page(&jack, 0, 64, 1 << 20).unwrap();
    assert_eq!(page, good);
    assert_eq!(next, None);
    assert_eq!(s.held_len().unwrap(), 3, "the bad rows were deleted");

    // The ledger's scan, a purge and a hand-off's read likewise.
    plant(&s);
    assert_eq!(s.held_items().unwrap().len(), 3);
    assert_eq!(s.held_len().unwrap(), 3);
    plant(&s);
    assert_eq!(envelopes(s.held_for(&jack).unwrap()), good);
    assert_eq!(s.held_len().unwrap(), 3);
    plant(&s);
    assert_eq!(
        s.purge_expired(5000).unwrap().len(),
        3,
        "the good ones expire"
    );
    assert_eq!(s.held_len().unwrap(), 0);
    // An index entry left by a deleted row does not make its item
    // look held.
    assert_eq!(hold(&s, &items[..1], &good[..1]).unwrap(), vec![true]);
}

#[test]
fn other_bytes_under_a_held_id_are_held_apart() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), 1 << 20).unwrap();
    let (jack, mallory, alice) = (PeerId::random(), PeerId::random(), PeerId::random());
    let real = env(&jack, 1);
    let mut junk = real.clone();
    junk.sealed = vec![0xEE; 100];
    assert_eq!(
        hold(&s, &[item(jack, mallory, 9)], std::slice::from_ref(&junk)).unwrap(),
        vec![true]
    );
    assert_eq!(
        hold(&s, &[item(jack, alice, 9)], std::slice::from_ref(&real)).unwrap(),
        vec![true],
        "the real item is not 'already held'"
    );
    assert_eq!(
        hold(&s, &[item(jack, alice, 9)], std::slice::from_ref(&real)).unwrap(),
        vec![false],
        "the same bytes are"
    );
    assert_eq!(
        envelopes(s.held_for(&jack).unwrap()),
        vec![junk, real.clone()]
    );
    // Jack's ack of the id clears both.
    assert_eq!(s.release(&jack, &[real.id]).unwrap().len(), 2);
    assert_eq!(s.held_len().unwrap(), 0);
}

#[test]
fn a_hand_off_reads_the_hash_kept_at_admission_and_computes_only_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), 1 << 20).unwrap();
    let (jack, dep) = (PeerId::random(), PeerId::random());
    let e = env(&jack, 1);
    // Not the envelope's hash: shows the kept one is read, not recomputed.
    let kept = ItemHash([9; 32]);
    let admitted = Admitted {
        item: item(jack, dep, 9),
        encoding: Encoding {
            bytes: crate::wire::encode(&e).unwrap(),
            hash: kept,
        },
        envelope: e.clone(),
    };
    assert_eq!(s.hold(std::slice::from_ref(&admitted)).unwrap(), vec![true]);
    assert_eq!(s.hold(&[admitted]).unwrap(), vec![false], "indexed by it");
    // A row of a store that kept no hash (no such field) gets it computed.
    #[derive(Serialize)]
    struct Unhashed {
        envelope: Envelope,
        #[serde(with = "serde_bytes")]
        depositor: Vec<u8>,
        expires_at: u64,
    }
    let bare = env(&jack, 2);
    let row = Unhashed {
        envelope: bare.clone(),
        depositor: dep.to_bytes(),
        expires_at: 9,
    };
    let mut key = prefix(&jack);
    key.extend_from_slice(&s.db.generate_id().unwrap().to_be_bytes());
    s.held
        .insert(key, crate::wire::encode(&row).unwrap())
        .unwrap();
    assert_eq!(
        s.held_for(&jack).unwrap(),
        vec![(kept, e.clone()), (ItemHash::of(&bare).unwrap(), bare)]
    );
    assert_eq!(s.release_items(&jack, &[(e.id, kept)]).unwrap().len(), 1);
}

#[test]
fn hold_syncs_the_store_before_returning() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), 1 << 20).unwrap();
    let jack = PeerId::random();
    for n in 1..=3u8 {
        let before = s.sync_count();
        hold(&s, &[item(jack, PeerId::random(), 9)], &[env(&jack, n)]).unwrap();
        assert_eq!(s.sync_count(), before + 1, "one fdatasync per hold");
    }
}

#[test]
fn hold_page_release_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), 1 << 20).unwrap();
    let (jack, other, dep) = (PeerId::random(), PeerId::random(), PeerId::random());
    let item = |r: PeerId, exp| HeldItem {
        recipient: r,
        depositor: dep,
        size: 100,
        expires_at: exp,
    };
    let items: Vec<HeldItem> = (0..5).map(|n| item(jack, 1000 + n)).collect();
    let envs: Vec<Envelope> = (0..5).map(|n| env(&jack, n as u8)).collect();
    assert_eq!(hold(&s, &items, &envs).unwrap(), vec![true; 5]);
    assert_eq!(
        hold(&s, &[item(jack, 2000)], &[env(&jack, 0)]).unwrap(),
        vec![false],
        "dedupe"
    );
    hold(&s, &[item(other, 5000)], &[env(&other, 9)]).unwrap();

    let (page, next) = s.held_page(&jack, 0, 2, 1 << 20).unwrap();
    assert_eq!(page.len(), 2);
    let (page2, next2) = s.held_page(&jack, next.unwrap(), 10, 1 << 20).unwrap();
    assert_eq!(page2.len(), 3);
    assert_eq!(next2, None);
    assert_ne!(page[0].id, page2[0].id);

    assert_eq!(
        s.release(&jack, &[page[0].id, page[1].id]).unwrap().len(),
        2
    );
    // Someone else's ids do not release Jack's items.
    assert!(s.release(&other, &[page2[0].id]).unwrap().is_empty());
    assert_eq!(envelopes(s.held_for(&jack).unwrap()).len(), 3);

    let gone = s.purge_expired(1003).unwrap();
    assert_eq!(gone.len(), 2); // items 2 and 3 (0, 1 were released)
    assert_eq!(s.held_len().unwrap(), 2);
    assert_eq!(s.held_items().unwrap().len(), 2);
}
