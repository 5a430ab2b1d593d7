//! Which incoming messages this node takes, as pure functions of the
//! sender's relation to us and the message's body.
//!
//! The store worker reads the facts (the sender's [`Relation`], whether a
//! buddy request was seen before, how a message was filed) and applies the
//! verdicts; the rules themselves live here, without a store:
//!
//! - [`decide`]: blocked senders are refused; a message or buddy request
//!   from the future is refused for now (direct) or for good (mailbox);
//!   a message is stored — under requests if its sender is a stranger; a
//!   receipt is applied; a buddy request goes on to [`take_request`].
//! - [`take_request`]: a buddy request is taken once; a stranger's is
//!   filed as a request, a buddy's means it accepted us.
//! - [`settle`]: the ack of a stored message, from how the store filed it.

use crate::node::content::from_the_future;
use crate::store::{Filed, Relation};
use crate::wire::message::{AckResult, Body, RejectReason};

/// How a message reached us: the refusal of one we do not take now
/// depends on it (see [`not_now`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// On a link from its sender, which offers it again later.
    Direct,
    /// Fetched from a mailbox holder, which keeps what we leave.
    Mailbox,
}

/// The kind of an opened body: all [`decide`] needs of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A message for the history.
    Content,
    /// A receipt for messages of ours.
    Receipt,
    /// A request to be buddies.
    BuddyRequest,
    /// Something of a private group (node::groups decides).
    Group,
}

impl Kind {
    /// The kind of `body`.
    pub(crate) fn of(body: &Body) -> Self {
        match body {
            Body::Content { .. } => Kind::Content,
            Body::Receipt { .. } => Kind::Receipt,
            Body::BuddyRequest => Kind::BuddyRequest,
            Body::Group(_) => Kind::Group,
        }
    }
}

/// Who sent a buddy request that is not refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Requester {
    /// Not on our list: the request is filed for the user to answer.
    Stranger,
    /// On our list: the request means it accepted us.
    Buddy,
}

/// What to do with one incoming message, before the store says more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Refuse it with this reason.
    Refuse(RejectReason),
    /// Store it: in the inbox, or under requests when `request`. How the
    /// store filed it settles its ack ([`settle`]).
    Store {
        /// From a stranger: a message request.
        request: bool,
    },
    /// Apply the receipt to our own messages; accepted.
    ApplyReceipt,
    /// A buddy request: whether it is new decides ([`take_request`]);
    /// accepted either way.
    BuddyRequest(Requester),
    /// Something of a private group: its membership and signatures are
    /// judged by `node::groups`, whatever our relation to the sender.
    Group,
}

/// What to do with a buddy request that is not refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// Seen before (a copy replayed by a holder): nothing, so a request
    /// accepted and then removed does not come back.
    Replayed,
    /// From a stranger: file it as a request (the user is told if it was
    /// not filed already) and note it as seen.
    File,
    /// From a buddy: it accepted us; retry its presence and note it as
    /// seen.
    Accepted,
}

/// The first verdict on a message from a sender with `relation`, of body
/// `kind`, written at `sent_at`, arriving at `now` by `path`.
pub(crate) fn decide(
    relation: Relation,
    kind: Kind,
    sent_at: u64,
    now: u64,
    path: Path,
) -> Verdict {
    if relation == Relation::Blocked {
        return Verdict::Refuse(RejectReason::Blocked);
    }
    match kind {
        // Not taken until its time is near (content.rs): a message or
        // buddy request from the future.
        Kind::Content | Kind::BuddyRequest | Kind::Group if from_the_future(sent_at, now) => {
            Verdict::Refuse(not_now(path))
        }
        Kind::Content => Verdict::Store {
            request: relation == Relation::Stranger,
        },
        Kind::Receipt => Verdict::ApplyReceipt,
        Kind::Group => Verdict::Group,
        Kind::BuddyRequest => Verdict::BuddyRequest(if relation == Relation::Buddy {
            Requester::Buddy
        } else {
            Requester::Stranger
        }),
    }
}

/// What to do with a buddy request from `requester`, given whether the
/// store has seen it (`is_new` is false for a copy of an old request).
pub(crate) fn take_request(requester: Requester, is_new: bool) -> Take {
    match (is_new, requester) {
        (false, _) => Take::Replayed,
        (true, Requester::Stranger) => Take::File,
        (true, Requester::Buddy) => Take::Accepted,
    }
}

/// The ack of a message the store filed as `filed`.
pub(crate) fn settle(filed: Filed, path: Path) -> AckResult {
    match filed {
        Filed::New => AckResult::Accepted,
        Filed::Duplicate => AckResult::Duplicate,
        // A stranger over its cap: refused as one from the future is, so
        // its sender keeps it.
        Filed::Full => AckResult::Rejected(not_now(path)),
    }
}

/// How a message we do not take now is refused: a message or buddy
/// request from the future ([`from_the_future`]), or a stranger's message
/// over the caps of
/// [`MAX_REQUEST_MESSAGES_PER_STRANGER`](crate::store::MAX_REQUEST_MESSAGES_PER_STRANGER)
/// and [`MAX_REQUEST_MESSAGES`](crate::store::MAX_REQUEST_MESSAGES). On a
/// direct link, for now (`Unavailable`): the sender offers it again and it
/// is taken once its time is near, or once the stranger is a buddy. From a
/// mailbox, for good, so the holder lets go of it: a holder keeps what we
/// leave and pages oldest first, so items we kept refusing would fill
/// every fetch up to its item cap before any real mail. Nothing honest is
/// lost: a sender deposits again every
/// [`PARKED_RETRY`](crate::node::outbox::PARKED_RETRY) until a receipt
/// comes, and the copy is taken once it is no longer refused. (The reason
/// is the one for a field over its limit — `sent_at` over ours, a count
/// over its cap. It never goes on the wire: a holder is told only the
/// ids.)
pub(crate) fn not_now(path: Path) -> RejectReason {
    match path {
        Path::Mailbox => RejectReason::FieldTooLarge,
        Path::Direct => RejectReason::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::content::MAX_CLOCK_SKEW_MS;

    const NOW: u64 = 1_000_000_000;
    /// Just inside the allowed skew: not from the future.
    const NEAR: u64 = NOW + MAX_CLOCK_SKEW_MS;
    /// Just past it.
    const FUTURE: u64 = NEAR + 1;

    use Kind::{BuddyRequest as Req, Content, Group, Receipt};
    use Path::{Direct, Mailbox};
    use Relation::{Blocked, Buddy, Stranger};

    const NOW_REFUSED: Verdict = Verdict::Refuse(RejectReason::Unavailable);
    const GOOD_REFUSED: Verdict = Verdict::Refuse(RejectReason::FieldTooLarge);
    const BLOCKED: Verdict = Verdict::Refuse(RejectReason::Blocked);
    const INBOX: Verdict = Verdict::Store { request: false };
    const REQUESTS: Verdict = Verdict::Store { request: true };
    const RECEIPT: Verdict = Verdict::ApplyReceipt;
    const FROM_STRANGER: Verdict = Verdict::BuddyRequest(Requester::Stranger);
    const FROM_BUDDY: Verdict = Verdict::BuddyRequest(Requester::Buddy);

    /// Every relation × body × path × time, with its verdict.
    #[test]
    fn decide_covers_relation_body_path_and_time() {
        #[rustfmt::skip]
        let table: &[(Relation, Kind, Path, u64, Verdict)] = &[
            // Blocked: refused whatever it is, wherever it comes from.
            (Blocked, Content, Direct, NOW, BLOCKED),
            (Blocked, Content, Mailbox, NOW, BLOCKED),
            (Blocked, Content, Direct, FUTURE, BLOCKED),
            (Blocked, Content, Mailbox, FUTURE, BLOCKED),
            (Blocked, Receipt, Direct, NOW, BLOCKED),
            (Blocked, Receipt, Mailbox, NOW, BLOCKED),
            (Blocked, Receipt, Direct, FUTURE, BLOCKED),
            (Blocked, Receipt, Mailbox, FUTURE, BLOCKED),
            (Blocked, Req, Direct, NOW, BLOCKED),
            (Blocked, Req, Mailbox, NOW, BLOCKED),
            (Blocked, Req, Direct, FUTURE, BLOCKED),
            (Blocked, Req, Mailbox, FUTURE, BLOCKED),
            (Blocked, Group, Direct, NOW, BLOCKED),
            (Blocked, Group, Mailbox, NOW, BLOCKED),
            // A group item: node::groups judges it, whoever sends it.
            (Stranger, Group, Direct, NOW, Verdict::Group),
            (Stranger, Group, Mailbox, NEAR, Verdict::Group),
            (Buddy, Group, Mailbox, NOW, Verdict::Group),
            (Stranger, Group, Direct, FUTURE, NOW_REFUSED),
            (Buddy, Group, Mailbox, FUTURE, GOOD_REFUSED),
            // A stranger: messages under requests, its buddy request filed.
            (Stranger, Content, Direct, NOW, REQUESTS),
            (Stranger, Content, Mailbox, NOW, REQUESTS),
            (Stranger, Content, Direct, NEAR, REQUESTS),
            (Stranger, Content, Direct, FUTURE, NOW_REFUSED),
            (Stranger, Content, Mailbox, FUTURE, GOOD_REFUSED),
            (Stranger, Receipt, Direct, NOW, RECEIPT),
            (Stranger, Receipt, Mailbox, NOW, RECEIPT),
            (Stranger, Receipt, Direct, FUTURE, RECEIPT),
            (Stranger, Receipt, Mailbox, FUTURE, RECEIPT),
            (Stranger, Req, Direct, NOW, FROM_STRANGER),
            (Stranger, Req, Mailbox, NOW, FROM_STRANGER),
            (Stranger, Req, Mailbox, NEAR, FROM_STRANGER),
            (Stranger, Req, Direct, FUTURE, NOW_REFUSED),
            (Stranger, Req, Mailbox, FUTURE, GOOD_REFUSED),
            // A buddy: messages in the inbox, its buddy request an acceptance.
            (Buddy, Content, Direct, NOW, INBOX),
            (Buddy, Content, Mailbox, NOW, INBOX),
            (Buddy, Content, Mailbox, NEAR, INBOX),
            (Buddy, Content, Direct, FUTURE, NOW_REFUSED),
            (Buddy, Content, Mailbox, FUTURE, GOOD_REFUSED),
            (Buddy, Receipt, Direct, NOW, RECEIPT),
            (Buddy, Receipt, Mailbox, NOW, RECEIPT),
            (Buddy, Receipt, Direct, FUTURE, RECEIPT),
            (Buddy, Receipt, Mailbox, FUTURE, RECEIPT),
            (Buddy, Req, Direct, NOW, FROM_BUDDY),
            (Buddy, Req, Mailbox, NOW, FROM_BUDDY),
            (Buddy, Req, Direct, NEAR, FROM_BUDDY),
            (Buddy, Req, Direct, FUTURE, NOW_REFUSED),
            (Buddy, Req, Mailbox, FUTURE, GOOD_REFUSED),
        ];
        for &(relation, kind, path, sent_at, want) in table {
            assert_eq!(
                decide(relation, kind, sent_at, NOW, path),
                want,
                "{relation:?} {kind:?} {path:?} sent_at-now={}",
                sent_at - NOW
            );
        }
    }

    /// The past is not bounded: mail fetched long after it was written is
    /// taken.
    #[test]
    fn old_messages_are_taken() {
        for path in [Direct, Mailbox] {
            assert_eq!(decide(Buddy, Content, 0, NOW, path), INBOX);
            assert_eq!(decide(Stranger, Req, 0, NOW, path), FROM_STRANGER);
        }
    }

    #[test]
    fn a_buddy_request_is_taken_once() {
        let table = [
            (Requester::Stranger, true, Take::File),
            (Requester::Stranger, false, Take::Replayed),
            (Requester::Buddy, true, Take::Accepted),
            (Requester::Buddy, false, Take::Replayed),
        ];
        for (requester, is_new, want) in table {
            assert_eq!(
                take_request(requester, is_new),
                want,
                "{requester:?} new={is_new}"
            );
        }
    }

    #[test]
    fn filing_settles_the_ack() {
        let table = [
            (Filed::New, Direct, AckResult::Accepted),
            (Filed::New, Mailbox, AckResult::Accepted),
            (Filed::Duplicate, Direct, AckResult::Duplicate),
            (Filed::Duplicate, Mailbox, AckResult::Duplicate),
            (
                Filed::Full,
                Direct,
                AckResult::Rejected(RejectReason::Unavailable),
            ),
            (
                Filed::Full,
                Mailbox,
                AckResult::Rejected(RejectReason::FieldTooLarge),
            ),
        ];
        for (filed, path, want) in table {
            assert_eq!(settle(filed, path), want, "{filed:?} {path:?}");
        }
    }

    #[test]
    fn kind_of() {
        assert_eq!(Kind::of(&Body::BuddyRequest), Req);
        assert_eq!(
            Kind::of(&Body::Receipt {
                kind: crate::wire::message::ReceiptKind::Read,
                ids: Vec::new()
            }),
            Receipt
        );
        assert_eq!(Kind::of(&Body::Group(vec![1])), Group);
    }
}
