//! Limits and signatures of the group wire formats.

use proptest::prelude::*;

use super::*;
use crate::identity::Identity;

fn state(creator: &Identity, members: usize) -> GroupState {
    let mut roster = vec![Member {
        id: creator.peer_id().to_bytes(),
        role: Role::Admin,
    }];
    for _ in 1..members {
        roster.push(Member {
            id: PeerId::random().to_bytes(),
            role: Role::Member,
        });
    }
    GroupState {
        group_id: GroupId([1; 32]),
        name: "g".into(),
        creator: creator.peer_id().to_bytes(),
        epoch: 0,
        roster,
        prev: [0; 32],
        issued_at: 1,
        change: Change::Created,
    }
}

#[test]
fn a_state_opens_only_with_its_creators_signature_and_within_limits() {
    let (a, b) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let st = state(&a, 3);
    let signed = SignedState::sign(&a, &st).unwrap();
    assert_eq!(signed.open().unwrap(), st);
    // Signed by someone else than the creator it names.
    let forged = SignedState::sign(&b, &st).unwrap();
    assert_eq!(forged.open(), Err(GroupWireError::BadSignature));
    let mut tampered = signed.clone();
    let last = tampered.body.len() - 1;
    tampered.body[last] ^= 1;
    assert!(tampered.open().is_err());
    // Limits: roster, name, duplicate members.
    let big = SignedState::sign(&a, &state(&a, MAX_MEMBERS + 1)).unwrap();
    assert_eq!(big.open().err(), Some(GroupWireError::TooManyMembers));
    let mut long = state(&a, 1);
    long.name = "x".repeat(MAX_NAME + 1);
    let long = SignedState::sign(&a, &long).unwrap();
    assert_eq!(long.open(), Err(GroupWireError::FieldTooLarge));
    let mut dup = state(&a, 1);
    dup.roster.push(dup.roster[0].clone());
    let dup = SignedState::sign(&a, &dup).unwrap();
    assert!(matches!(dup.open(), Err(GroupWireError::Malformed(_))));
    // A full roster fits in one body.
    let full = GroupBody::State {
        state: SignedState::sign(&a, &state(&a, MAX_MEMBERS)).unwrap(),
        secret: Some([0; 32]),
    };
    let bytes = crate::wire::encode(&full).unwrap();
    assert!(bytes.len() <= MAX_GROUP_BYTES, "{} bytes", bytes.len());
    assert_eq!(decode_body(&bytes).unwrap(), full);
}

#[test]
fn a_message_is_checked_against_the_sender_it_names() {
    let (a, b) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let body = MsgBody {
        header: Header {
            group_id: GroupId([1; 32]),
            epoch: 2,
            sender: a.peer_id().to_bytes(),
            n: 5,
        },
        ct: vec![1, 2, 3],
    };
    assert_eq!(
        open_message(&sign_message(&a, &body).unwrap()).unwrap(),
        body
    );
    // B signs a message naming A as its sender.
    assert_eq!(
        open_message(&sign_message(&b, &body).unwrap()),
        Err(GroupWireError::BadSignature)
    );
}

#[test]
fn decoders_refuse_oversize_input_before_parsing() {
    let big = vec![0u8; MAX_GROUP_BYTES + 1];
    assert!(matches!(
        decode_body(&big),
        Err(GroupWireError::Wire(WireError::TooLarge { .. }))
    ));
    let many = GroupBody::Request {
        group_id: GroupId([0; 32]),
        op: Op::Add(vec![serde_bytes::ByteBuf::from(vec![1u8; 38]); MAX_ADD + 1]),
    };
    assert_eq!(
        decode_body(&crate::wire::encode(&many).unwrap()),
        Err(GroupWireError::FieldTooLarge)
    );
}

proptest! {
    #[test]
    fn no_bytes_make_the_group_decoders_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_body(&bytes);
        let _ = crate::wire::decode::<SignedState>(&bytes, MAX_GROUP_BYTES).map(|s| s.open());
        let _ = crate::wire::decode::<MsgBody>(&bytes, MAX_GROUP_BYTES);
    }

    #[test]
    fn requests_round_trip(gid in any::<[u8; 32]>(), ids in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8)) {
        let body = GroupBody::Request {
            group_id: GroupId(gid),
            op: Op::Add(ids.into_iter().map(serde_bytes::ByteBuf::from).collect()),
        };
        prop_assert_eq!(decode_body(&crate::wire::encode(&body).unwrap()).unwrap(), body);
    }
}
