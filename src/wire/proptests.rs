//! Property tests for every wire type: what we encode decodes to the same
//! value, and no byte string makes a decoder panic.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::locator::LocatorBody;
use super::mailbox::{DepositReject, MailboxRequest, MailboxResponse};
use super::message::{
    Ack, AckResult, Body, Envelope, Frame, Inner, MessageId, ReceiptKind, RejectReason,
};
use super::presence::{PresenceInfo, PresenceRequest, PresenceResponse, Status};
use super::{decode, encode};

fn id() -> impl Strategy<Value = MessageId> {
    any::<[u8; 16]>().prop_map(MessageId)
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

prop_compose! {
    fn envelope()(id in id(), to in bytes(40), from in bytes(40), nonce in any::<[u8; 24]>(), sealed in bytes(300)) -> Envelope {
        Envelope { id, to, from, nonce, sealed }
    }
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (".{0,20}", option::of(".{0,20}"), bytes(200)).prop_map(|(content_type, subject, data)| {
            Body::Content {
                content_type,
                subject,
                data,
            }
        }),
        (any::<bool>(), vec(id(), 0..8)).prop_map(|(read, ids)| Body::Receipt {
            kind: if read {
                ReceiptKind::Read
            } else {
                ReceiptKind::Delivered
            },
            ids
        }),
        Just(Body::BuddyRequest),
        bytes(300).prop_map(Body::Group),
    ]
}

fn reject() -> impl Strategy<Value = RejectReason> {
    prop_oneof![
        Just(RejectReason::TooLarge),
        Just(RejectReason::Malformed),
        Just(RejectReason::NotForMe),
        Just(RejectReason::BadSeal),
        Just(RejectReason::SenderMismatch),
        Just(RejectReason::Blocked),
        Just(RejectReason::Unavailable),
        Just(RejectReason::FieldTooLarge),
    ]
}

fn ack() -> impl Strategy<Value = Ack> {
    let result = prop_oneof![
        Just(AckResult::Accepted),
        Just(AckResult::Duplicate),
        reject().prop_map(AckResult::Rejected)
    ];
    (option::of(id()), result).prop_map(|(id, result)| Ack { id, result })
}

fn presence_info() -> impl Strategy<Value = PresenceInfo> {
    let status = prop_oneof![
        Just(Status::Online),
        Just(Status::Away),
        Just(Status::Busy),
        Just(Status::Offline)
    ];
    (
        status,
        option::of(".{0,30}"),
        option::of(".{0,10}"),
        option::of(".{0,10}"),
        option::of(".{0,10}"),
    )
        .prop_map(|(status, note, activity, location, until)| PresenceInfo {
            status,
            note,
            activity,
            location,
            until,
        })
}

fn mailbox_request() -> impl Strategy<Value = MailboxRequest> {
    prop_oneof![
        vec(envelope(), 0..3).prop_map(MailboxRequest::Deposit),
        (bytes(40), any::<u64>())
            .prop_map(|(recipient, cursor)| MailboxRequest::Fetch { recipient, cursor }),
        (bytes(40), vec(id(), 0..5))
            .prop_map(|(recipient, ids)| MailboxRequest::Ack { recipient, ids }),
    ]
}

fn mailbox_response() -> impl Strategy<Value = MailboxResponse> {
    let why = prop_oneof![
        Just(DepositReject::RecipientQuota),
        Just(DepositReject::DepositorQuota),
        Just(DepositReject::NotAcceptable),
        Just(DepositReject::Unavailable),
        Just(DepositReject::TooLarge),
    ];
    prop_oneof![
        vec(option::of(why), 0..5).prop_map(MailboxResponse::Deposited),
        (vec(envelope(), 0..3), option::of(any::<u64>()))
            .prop_map(|(items, next)| MailboxResponse::Page { items, next }),
        any::<u32>().prop_map(|removed| MailboxResponse::Acked { removed }),
        Just(MailboxResponse::Denied),
    ]
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    v: &T,
) -> Result<(), TestCaseError> {
    let bytes = encode(v).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: T = decode(&bytes, bytes.len()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, v);
    Ok(())
}

/// Decoding arbitrary bytes as every wire type returns, never panics.
fn decode_all(b: &[u8]) {
    let _ = decode::<Frame>(b, 1 << 20);
    let _ = decode::<Envelope>(b, 1 << 20);
    let _ = decode::<Inner>(b, 1 << 20);
    let _ = decode::<Ack>(b, 1 << 20);
    let _ = decode::<LocatorBody>(b, 1 << 20);
    let _ = decode::<MailboxRequest>(b, 1 << 20);
    let _ = decode::<MailboxResponse>(b, 1 << 20);
    let _ = decode::<PresenceRequest>(b, 1 << 20);
    let _ = decode::<PresenceResponse>(b, 1 << 20);
    let key = super::locator::record_key(&libp2p::PeerId::random());
    let _ = super::locator::validate(&key, b, 0, None);
}

proptest! {
    #[test]
    fn message_types_round_trip(env in envelope(), body in body(), from in bytes(40), sent_at in any::<u64>(), a in ack()) {
        round_trip(&Frame::Deliver(env))?;
        round_trip(&Inner { from, sent_at, body })?;
        round_trip(&a)?;
    }

    #[test]
    fn locator_bodies_round_trip(pubkey in bytes(40), seq in any::<u64>(), addrs in vec(bytes(30), 0..4), expires_at in any::<u64>(), online in any::<bool>()) {
        let addrs = addrs.into_iter().map(serde_bytes::ByteBuf::from).collect();
        round_trip(&LocatorBody { pubkey, seq, addrs, expires_at, online })?;
    }

    #[test]
    fn mailbox_and_presence_round_trip(req in mailbox_request(), resp in mailbox_response(), info in presence_info(), secs in any::<u32>()) {
        round_trip(&req)?;
        round_trip(&resp)?;
        round_trip(&PresenceRequest::Notify(info.clone()))?;
        round_trip(&PresenceRequest::Subscribe { expires_secs: secs })?;
        round_trip(&PresenceResponse::State(info))?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in bytes(2048)) {
        decode_all(&b);
    }

    #[test]
    fn mutated_valid_encodings_never_panic(env in envelope(), flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut b = encode(&Frame::Deliver(env)).unwrap();
        for (i, x) in flips {
            let i = i.index(b.len());
            b[i] ^= x;
        }
        decode_all(&b);
    }
}
