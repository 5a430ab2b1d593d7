use super::*;
use crate::identity::Identity;
use crate::wire::group::{MsgBody, sign_message};

fn header(sender: &PeerId, n: u64) -> Header {
    Header {
        group_id: GroupId([7; 32]),
        epoch: 3,
        sender: sender.to_bytes(),
        n,
    }
}

#[test]
fn topics_differ_by_secret_group_and_epoch() {
    let g = GroupId([1; 32]);
    let t = topic(&[9; 32], &g, 1);
    assert!(t.starts_with(TOPIC_PREFIX));
    assert_ne!(t, topic(&[8; 32], &g, 1), "secret");
    assert_ne!(t, topic(&[9; 32], &GroupId([2; 32]), 1), "group");
    assert_ne!(t, topic(&[9; 32], &g, 2), "epoch");
    assert_eq!(t, topic(&[9; 32], &g, 1));
}

#[test]
fn the_fast_path_takes_large_groups_and_gossip_sized_messages() {
    let c = FastConfig {
        threshold: 10,
        ..FastConfig::default()
    };
    assert!(!c.applies(9, 100));
    assert!(c.applies(10, 100));
    assert!(c.applies(1000, MAX_GOSSIP_MESSAGE));
    assert!(
        !c.applies(1000, MAX_GOSSIP_MESSAGE + 1),
        "too big for gossip"
    );
}

fn signed_msg(signer: &Identity, claimed: &PeerId) -> Vec<u8> {
    let signed = sign_message(
        signer,
        &MsgBody {
            header: header(claimed, 0),
            ct: vec![1, 2, 3],
        },
    )
    .expect("sign");
    crate::wire::encode(&GroupBody::Message(signed)).expect("encode")
}

#[test]
fn gossip_must_be_signed_by_the_sender_it_names_on_its_own_topic() {
    let alice = Identity::generate().expect("id");
    let eve = Identity::generate().expect("id");
    let bytes = signed_msg(&alice, &alice.peer_id());
    let right = |_: &Header| Some("t".to_string());
    // Its author is its signer, whoever gossips it.
    assert_eq!(
        precheck("t", &bytes, right).map(|c| c.sender),
        Ok(alice.peer_id())
    );
    // Signed by Eve, naming Alice.
    let forged = signed_msg(&eve, &alice.peer_id());
    assert!(precheck("t", &forged, right).is_err());
    // On another topic, or one of a group we do not know.
    assert_eq!(
        precheck("u", &bytes, right).map(|c| c.sender),
        Err(GroupError::NotMember)
    );
    assert_eq!(
        precheck("t", &bytes, |_| None).map(|c| c.sender),
        Err(GroupError::NotMember)
    );
    assert!(precheck("t", b"junk", right).is_err());
}

fn msg_in(signer: &Identity, epoch: u64) -> Vec<u8> {
    let mut h = header(&signer.peer_id(), 0);
    h.epoch = epoch;
    let signed = sign_message(
        signer,
        &MsgBody {
            header: h,
            ct: vec![1],
        },
    )
    .expect("sign");
    crate::wire::encode(&GroupBody::Message(signed)).expect("encode")
}

#[test]
fn gossip_is_judged_by_the_members_kept_for_its_topic() {
    let [alice, mallory, bob] = [(); 3].map(|_| Identity::generate().expect("id"));
    let view = EpochView {
        epoch: 3,
        members: vec![alice.peer_id().to_bytes(), mallory.peer_id().to_bytes()],
        ended_at: None,
    };
    let speakers = Speakers {
        topics: HashMap::from([("t".to_string(), (GroupId([7; 32]), Arc::new(view)))]),
        blocked: HashSet::from([mallory.peer_id().to_bytes()]),
    };
    let judge = |topic: &str, bytes: &[u8]| match judge(&speakers, topic, bytes) {
        Ok(_) => GossipVerdict::Took,
        Err(v) => v,
    };
    let from_alice = msg_in(&alice, 3);
    assert_eq!(judge("t", &from_alice), GossipVerdict::Took);
    assert_eq!(
        judge("u", &from_alice),
        GossipVerdict::Ignore,
        "not followed"
    );
    // Its signature is what names its author: one changed bit of it, and
    // the message is nobody's.
    let GroupBody::Message(mut forged) = decode_body(&from_alice).expect("decode") else {
        panic!("a message");
    };
    forged.sig[0] ^= 1;
    let forged = crate::wire::encode(&GroupBody::Message(forged)).expect("encode");
    assert!(
        matches!(judge("t", &forged), GossipVerdict::Reject(_)),
        "a signature that is not the named sender's"
    );
    assert_eq!(
        judge("t", &msg_in(&bob, 3)),
        GossipVerdict::Reject(GroupError::NotMember),
        "not a member of the epoch"
    );
    assert_eq!(
        judge("t", &msg_in(&alice, 4)),
        GossipVerdict::Reject(GroupError::NotMember),
        "sealed for another epoch than the topic's"
    );
    assert_eq!(
        judge("t", &msg_in(&mallory, 3)),
        GossipVerdict::Ignore,
        "a member we blocked: not forwarded, nobody penalised"
    );
    assert!(matches!(judge("t", b"junk"), GossipVerdict::Reject(_)));
}

#[test]
fn dials_skip_us_and_the_connected_and_spread_over_the_roster() {
    let roster: Vec<PeerId> = (0..20).map(|_| PeerId::random()).collect();
    let me = roster[3];
    let connected = |p: &PeerId| *p == roster[4] || *p == roster[5];
    let picks = pick_dials(&roster, &me, &connected, 1, 4);
    assert_eq!(picks.len(), 4);
    assert!(picks.iter().all(|p| *p != me && !connected(p)));
    let all: std::collections::HashSet<PeerId> = (0..50)
        .flat_map(|r| pick_dials(&roster, &me, &connected, r, 4))
        .collect();
    assert!(
        all.len() > 8,
        "rounds pick different members: {}",
        all.len()
    );
    assert!(pick_dials(&[], &me, &connected, 1, 4).is_empty());
    assert!(pick_dials(&[me], &me, &|_| false, 1, 4).is_empty());
}

#[test]
fn a_topic_whose_subscription_failed_is_not_recorded_as_followed() {
    let g = GroupId([1; 32]);
    let map = |ts: &[&str]| -> HashMap<String, (GroupId, u64)> {
        ts.iter().map(|t| (t.to_string(), (g, 1))).collect()
    };
    let wanted = map(&["kept", "joined", "failed"]);
    let before = map(&["kept", "left"]);
    let subscribed: HashSet<String> = ["joined".to_string()].into();
    let mut after: Vec<String> = followed_after(wanted, &before, &subscribed)
        .into_keys()
        .collect();
    after.sort();
    assert_eq!(after, ["joined", "kept"], "the failed one is tried again");
}

/// A group row of ours: `joined`, `gone`, and a previous epoch that ended
/// at `ended` (with its secret, as a member keeps it) if any.
fn row_with_prev(joined: bool, gone: bool, ended: Option<u64>) -> crate::store::GroupRow {
    use crate::wire::group::{Change, GroupState, Member, Role, SignedState};
    let me = Identity::generate().expect("identity");
    let state = GroupState {
        group_id: GroupId([3; 32]),
        name: "g".into(),
        creator: me.peer_id().to_bytes(),
        epoch: 1,
        roster: vec![Member {
            id: me.peer_id().to_bytes(),
            role: Role::Admin,
        }],
        prev: [0; 32],
        issued_at: 0,
        change: Change::Created,
    };
    crate::store::GroupRow {
        state: SignedState::sign(&me, &state).expect("sign"),
        secret: Some([1; 32]),
        joined,
        gone,
        prev: ended.map(|ended_at| crate::store::PrevEpoch {
            epoch: 0,
            members: Vec::new(),
            secret: Some([2; 32]),
            ended_at,
        }),
    }
}

#[test]
fn the_upkeep_reads_the_groups_again_only_after_a_failure_or_a_grace_ending() {
    use super::super::roster::GRACE_MS;
    let g = GroupId([3; 32]);
    let now = 1_000_000;
    // Previous epochs ended at different times: the first grace to end
    // counts; one already over, and groups not followed, do not.
    let groups = vec![
        (g, row_with_prev(true, false, Some(now - 1000))),
        (g, row_with_prev(true, false, Some(now - 5000))),
        (g, row_with_prev(true, false, Some(now - GRACE_MS - 1))),
        (g, row_with_prev(false, false, Some(now - 9000))),
        (g, row_with_prev(true, true, Some(now - 9000))),
        (g, row_with_prev(true, false, None)),
    ];
    let end = grace_end(&groups, now).expect("a grace runs");
    assert_eq!(end, now - 5000 + GRACE_MS);
    assert_eq!(grace_end(&groups[2..], now), None, "none left to end");
    // A settled node's rounds read nothing until that grace ends.
    assert!(!refresh_due(false, None, now));
    assert!(!refresh_due(false, Some(end), end - 1));
    assert!(refresh_due(false, Some(end), end));
    // A failed read or subscription is tried again at the next round.
    assert!(refresh_due(true, None, now));
}
