//! [mbox] A holder's recipient and total quotas, end to end: real nodes
//! deposit real sealed envelopes over `/roost/mailbox/1` into a holder whose
//! quotas are set small through its config; what the holder refuses is not
//! held (the recipient, started after every depositor left, gets exactly
//! what was accepted), and a sentinel deposit shows that other recipients
//! and depositors still get through.

mod common;

use common::{TestNode, dir_for, eventually, init_tracing, start_with};
use libp2p::PeerId;
use roost::crypto::Sealer;
use roost::node::mailbox::Quotas;
use roost::wire::mailbox::{DepositReject, MailboxRequest, MailboxResponse};
use roost::wire::message::{self, Envelope, Inner, MessageId};
use roost::{Identity, NodeHandle};
use tempfile::TempDir;

/// A depositor: a running node and its identity (to seal as it would).
struct Depositor {
    node: TestNode,
    sealer: Sealer,
}

impl Depositor {
    async fn start(boot: &libp2p::Multiaddr, holder: PeerId) -> Self {
        let node = TestNode::start(std::slice::from_ref(boot)).await;
        let sealer = Sealer::new(&Identity::load_from(node.dir.path()).unwrap());
        eventually("the depositor knows the holder", || async {
            node.handle.find(holder).await.unwrap()
        })
        .await;
        Self { node, sealer }
    }

    /// A real message from this depositor to `to`, sealed for `to`.
    fn letter(&self, to: PeerId, text: &str) -> Envelope {
        let inner = Inner::text(&self.node.handle.peer_id(), roost::clock::unix_ms(), text);
        message::seal(&self.sealer, MessageId::random(), &to, &inner).unwrap()
    }

    /// Deposits `envs` at `holder` in one request; the per-item verdicts.
    async fn deposit(&self, holder: PeerId, envs: Vec<Envelope>) -> Vec<Option<DepositReject>> {
        let req = MailboxRequest::Deposit(envs);
        match self.node.handle.net().mailbox(holder, req).await.unwrap() {
            MailboxResponse::Deposited(v) => v,
            other => panic!("expected per-item verdicts, got {other:?}"),
        }
    }
}

/// A holder on a fresh identity, not bootstrapped, whose mailbox quotas
/// `limit` sets; the temp dir holds its data while the test runs.
async fn holder_with(limit: impl FnOnce(&mut Quotas)) -> (TempDir, NodeHandle) {
    let dir = dir_for(&Identity::generate().unwrap());
    let holder = start_with(&dir, &[], |c| limit(&mut c.mailbox.quotas)).await;
    (dir, holder)
}

/// Starts `recipient`'s node through the holder (every depositor has left)
/// and waits until it has exactly the messages `from` (texts per sender),
/// and the holder has let them go. The recipient deposits nothing itself
/// (no replicas for its own outgoing items): its delivery receipts would
/// otherwise land in this same holder and blur the counts.
async fn picks_up(recipient: &Identity, holder: &NodeHandle, from: &[(PeerId, Vec<&str>)]) {
    let dir = dir_for(recipient);
    let via = holder.dial_addrs().await.unwrap().remove(0);
    let node = start_with(&dir, &[via], |c| c.mailbox.replicas = 0).await;
    for (peer, texts) in from {
        let want = texts.len();
        let conv = eventually("the recipient fetches what was held", || async {
            let conv = node.conversation(*peer, 100).await.unwrap();
            (conv.len() >= want).then_some(conv)
        })
        .await;
        let mut got: Vec<String> = conv
            .iter()
            .map(|m| String::from_utf8(m.data.clone()).unwrap())
            .collect();
        got.sort();
        let mut texts = texts.clone();
        texts.sort();
        assert_eq!(got, texts, "exactly what the holder accepted");
    }
    eventually("the holder lets go of what was fetched", || async {
        (holder.held_for(recipient.peer_id()).await.unwrap() == 0).then_some(())
    })
    .await;
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_recipient_mailbox_refuses_every_depositor_and_keeps_nothing_more() {
    init_tracing();
    let (_dir, holder) = holder_with(|q| q.recipient_items = 3).await;
    let boot = holder.dial_addrs().await.unwrap().remove(0);
    let hid = holder.peer_id();
    let alice = Depositor::start(&boot, hid).await;
    let carol = Depositor::start(&boot, hid).await;
    let jack = Identity::generate().unwrap();
    let kate = Identity::generate().unwrap();
    let (ja, ka) = (jack.peer_id(), kate.peer_id());

    // Two depositors, each far below any per-depositor limit, fill Jack's
    // mailbox: the third item fits, the fourth does not.
    let v = alice
        .deposit(hid, vec![alice.letter(ja, "a1"), alice.letter(ja, "a2")])
        .await;
    assert_eq!(v, vec![None, None]);
    let v = carol
        .deposit(hid, vec![carol.letter(ja, "c1"), carol.letter(ja, "c2")])
        .await;
    assert_eq!(v, vec![None, Some(DepositReject::RecipientQuota)]);
    let v = alice.deposit(hid, vec![alice.letter(ja, "a3")]).await;
    assert_eq!(v, vec![Some(DepositReject::RecipientQuota)]);
    assert_eq!(
        holder.held_for(ja).await.unwrap(),
        3,
        "the refused are not held"
    );

    // Sentinel: both depositors still get items for Kate through.
    let v = carol.deposit(hid, vec![carol.letter(ka, "k1")]).await;
    assert_eq!(v, vec![None]);
    let v = alice.deposit(hid, vec![alice.letter(ka, "k2")]).await;
    assert_eq!(v, vec![None]);
    assert_eq!(holder.held_for(ka).await.unwrap(), 2);
    assert_eq!(holder.held_for(ja).await.unwrap(), 3);
    assert_eq!(holder.held_len().await.unwrap(), 5);

    // Every depositor leaves; Jack gets exactly the three accepted items.
    let (aid, cid) = (alice.node.handle.peer_id(), carol.node.handle.peer_id());
    for d in [&alice, &carol] {
        d.node.handle.shutdown().await.unwrap();
    }
    picks_up(
        &jack,
        &holder,
        &[(aid, vec!["a1", "a2"]), (cid, vec!["c1"])],
    )
    .await;
    // With Jack's mailbox emptied, it takes items again.
    let dave = Depositor::start(&boot, hid).await;
    let v = dave.deposit(hid, vec![dave.letter(ja, "d1")]).await;
    assert_eq!(v, vec![None]);
    dave.node.handle.shutdown().await.unwrap();
    holder.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_holder_refuses_every_recipient_until_space_is_freed() {
    init_tracing();
    let (_dir, holder) = holder_with(|q| q.total_items = 4).await;
    let boot = holder.dial_addrs().await.unwrap().remove(0);
    let hid = holder.peer_id();
    let alice = Depositor::start(&boot, hid).await;
    let carol = Depositor::start(&boot, hid).await;
    let jack = Identity::generate().unwrap();
    let (ja, ka, la) = (
        jack.peer_id(),
        Identity::generate().unwrap().peer_id(),
        Identity::generate().unwrap().peer_id(),
    );

    let v = alice
        .deposit(hid, vec![alice.letter(ja, "a1"), alice.letter(ja, "a2")])
        .await;
    assert_eq!(v, vec![None, None]);
    // Carol's batch: two fit, the third is over the holder's total.
    let v = carol
        .deposit(
            hid,
            vec![
                carol.letter(ka, "c1"),
                carol.letter(ka, "c2"),
                carol.letter(la, "c3"),
            ],
        )
        .await;
    assert_eq!(v, vec![None, None, Some(DepositReject::Unavailable)]);
    // Full for everyone: another depositor, a recipient with nothing held.
    let v = alice.deposit(hid, vec![alice.letter(la, "a3")]).await;
    assert_eq!(v, vec![Some(DepositReject::Unavailable)]);
    assert_eq!(
        holder.held_for(la).await.unwrap(),
        0,
        "the refused are not held"
    );
    assert_eq!(holder.held_len().await.unwrap(), 4);

    // Jack fetches his two (every depositor has left first); that frees room.
    let aid = alice.node.handle.peer_id();
    for d in [&alice, &carol] {
        d.node.handle.shutdown().await.unwrap();
    }
    picks_up(&jack, &holder, &[(aid, vec!["a1", "a2"])]).await;
    assert_eq!(holder.held_len().await.unwrap(), 2);

    // Sentinel: a new depositor's items for Lou fit again, up to the total.
    let dave = Depositor::start(&boot, hid).await;
    let v = dave
        .deposit(
            hid,
            vec![
                dave.letter(la, "d1"),
                dave.letter(la, "d2"),
                dave.letter(la, "d3"),
            ],
        )
        .await;
    assert_eq!(v, vec![None, None, Some(DepositReject::Unavailable)]);
    assert_eq!(holder.held_for(la).await.unwrap(), 2);
    assert_eq!(holder.held_len().await.unwrap(), 4);
    dave.node.handle.shutdown().await.unwrap();
    holder.shutdown().await.unwrap();
}
