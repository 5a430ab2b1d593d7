//! [hardening] Replays the fuzzers' findings and seeds: every file under
//! `fuzz/regressions/<target>/` goes through the same entry point as the
//! fuzz target of that name, and must not panic.

use std::path::Path;

use roost::wire::fuzz;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let data = std::fs::read(e.path()).expect("readable regression input");
            run(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn every_saved_input_is_handled_without_panic() {
    let mut total = 0;
    for (target, run) in [
        ("message_frame", fuzz::message_frame as fn(&[u8])),
        ("locator_record", fuzz::locator_record),
        ("mailbox_frames", fuzz::mailbox_frames),
        ("presence_frames", fuzz::presence_frames),
        ("framing", fuzz::framing),
    ] {
        total += replay(target, run);
        // And the classic edge cases, for every target.
        for data in [
            &b""[..],
            b"\x00",
            b"\xff\xff\xff\xff",
            b"\x5b\x7f\xff\xff\xff\xff\xff\xff\xff",
        ] {
            run(data);
        }
    }
    assert!(total > 0, "the regression corpus is present");
}

/// Writes valid encodings of every frame kind as seeds for the fuzzers
/// (`cargo test --test fuzz_regressions -- --ignored`); the files are kept
/// in the repository.
#[test]
#[ignore]
fn write_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    for (target, name, bytes) in seeds() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
}

/// Valid encodings of every frame kind, as (fuzz target, seed name, bytes):
/// a sealed DELIVER, a signed locator record, mailbox and presence frames
/// and two length-prefixed frames in a row.
fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    use roost::crypto::Sealer;
    use roost::wire::encode;
    use roost::wire::mailbox::{MailboxRequest, MailboxResponse};
    use roost::wire::message::{self, Frame, Inner, MessageId};
    use roost::wire::presence::{PresenceInfo, PresenceRequest, PresenceResponse, Status};
    use roost::{Identity, wire::locator};

    let me = Identity::from_seed([7; 32]);
    let other = Identity::from_seed([9; 32]);
    let env = message::seal(
        &Sealer::new(&other),
        MessageId([1; 16]),
        &me.peer_id(),
        &Inner::text(&other.peer_id(), 1, "hello"),
    )
    .unwrap();
    let frame = encode(&Frame::Deliver(env.clone())).unwrap();
    let info = PresenceInfo {
        status: Status::Away,
        note: Some("lunch".into()),
        ..PresenceInfo::offline()
    };
    let mut stream = Vec::new();
    for f in [&frame, &frame] {
        stream.extend_from_slice(&(f.len() as u32).to_be_bytes());
        stream.extend_from_slice(f);
    }
    vec![
        ("message_frame", "deliver", frame.clone()),
        (
            "locator_record",
            "valid",
            locator::sign(
                &me,
                9,
                &["/ip4/127.0.0.1/tcp/1".parse().unwrap()],
                1_800_000_100_000,
                true,
            )
            .unwrap(),
        ),
        (
            "mailbox_frames",
            "deposit",
            encode(&MailboxRequest::Deposit(vec![env.clone()])).unwrap(),
        ),
        (
            "mailbox_frames",
            "fetch",
            encode(&MailboxRequest::Fetch {
                recipient: me.peer_id().to_bytes(),
                cursor: 3,
            })
            .unwrap(),
        ),
        (
            "mailbox_frames",
            "page",
            encode(&MailboxResponse::Page {
                items: vec![env],
                next: Some(4),
            })
            .unwrap(),
        ),
        (
            "presence_frames",
            "notify",
            encode(&PresenceRequest::Notify(info.clone())).unwrap(),
        ),
        (
            "presence_frames",
            "state",
            encode(&PresenceResponse::State(info)).unwrap(),
        ),
        ("framing", "two_frames", stream),
    ]
}
