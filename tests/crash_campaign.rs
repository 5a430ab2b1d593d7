//! [hardening] Crash safety: during a 1000-message exchange, with 8 sends
//! in flight at a time, the sender (with sends in flight), the recipient and a mailbox
//! holder (while it holds some of the recipient's items) are killed with
//! SIGKILL at points chosen by a seeded generator, and restarted. Every
//! message that `send` accepted arrives exactly once, and nothing arrives
//! that was not sent.

mod common;

use std::collections::{HashMap, HashSet};

use common::{Daemon, TestNode, eventually, roost};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use roost::api::SendView;
use roost::api::client::{ApiClient, ClientError};
use serde_json::json;

const TOTAL: usize = 1000;
/// Sends in flight at once.
const WINDOW: usize = 8;
/// Sends made while the recipient is down.
const AWAY: usize = 96;

/// xorshift64*: a tiny seeded generator, so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }

    /// A number in `lo..hi`.
    fn within(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below((hi - lo) as u64) as usize
    }
}

/// The body of send number `i`.
fn body(i: usize) -> String {
    format!("m{i:04}")
}

/// Send number `i` to `to` through `api`, tagged with its number.
async fn send(api: &ApiClient, to: &str, i: usize) -> (usize, Result<SendView, ClientError>) {
    let body = json!({ "to": to, "text": body(i) });
    (i, api.post::<SendView>("send", &body).await)
}

async fn client(d: &Daemon) -> ApiClient {
    let dir = d.dir.path().to_path_buf();
    eventually("the daemon's api.json", || async {
        ApiClient::open(&dir).ok()
    })
    .await
}

/// Waits until a connection waits, unaccepted, on the API socket `sock`
/// (`ss` reads the listener's backlog): a request the daemon cannot have
/// answered.
async fn api_backlog(sock: &std::path::Path) {
    eventually("a request waits in the frozen daemon's socket", || async {
        let out = std::process::Command::new("ss")
            .args(["-xlnH", "src"])
            .arg(sock)
            .output()
            .expect("ss (iproute2) runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let queued: u64 = text.split_whitespace().nth(2)?.parse().ok()?;
        (queued > 0).then_some(())
    })
    .await
}

/// `roost --json log <peer>` on `d`, as (id, state, text, direction) rows.
fn log(d: &Daemon, peer: &str) -> Option<Vec<[String; 4]>> {
    let out = roost(d.dir.path(), &["--json", "log", peer, "--limit", "5000"]);
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let field = |k: &str| v[k].as_str().map(str::to_string);
            Some([
                field("id")?,
                field("state")?,
                field("text")?,
                field("direction")?,
            ])
        })
        .collect()
}

/// What one campaign saw, for the test's output.
struct Figures {
    accepted: usize,
    /// Sends cut by the sender's kill (no answer).
    cut: usize,
    /// Of those, how many arrived anyway (committed before the kill).
    cut_arrived: usize,
    /// Items the killed holder held when it died.
    victim_held: u64,
}

async fn campaign(seed: u64) -> Figures {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut cast = Cast::start().await;
    let sent = send_through_the_kills(seed, &mut rng, &mut cast).await;
    every_accepted_message_arrives_once(seed, &cast, sent).await
}

/// The daemons of one campaign: a hub node, three holders, the sender and
/// the recipient (with their peer ids as the CLI spells them).
struct Cast {
    hub: TestNode,
    holders: Vec<Daemon>,
    sender: Daemon,
    recipient: Daemon,
    rid: String,
    sid: String,
}

impl Cast {
    async fn start() -> Self {
        let hub = TestNode::start(&[]).await;
        let boot = hub.addr().await;
        let mut holders = Vec::new();
        for _ in 0..3 {
            holders.push(Daemon::start(Some(&boot)).await);
        }
        let sender = Daemon::start(Some(&boot)).await;
        let recipient = Daemon::start(Some(&boot)).await;
        let (rid, sid) = (recipient.id.to_string(), sender.id.to_string());
        // The sender is the recipient's buddy: a stranger's messages are capped
        // (`store::MAX_REQUEST_MESSAGES_PER_STRANGER`) far below TOTAL.
        let added = roost(recipient.dir.path(), &["buddy", "add", &sid]);
        assert!(
            added.status.success(),
            "{}",
            String::from_utf8_lossy(&added.stderr)
        );
        Self {
            hub,
            holders,
            sender,
            recipient,
            rid,
            sid,
        }
    }
}

/// What the TOTAL sends came to: the accepted ones (index → message id),
/// the ones the sender's kill cut, and what the killed holder held.
struct Sent {
    accepted: HashMap<usize, String>,
    cut: HashSet<usize>,
    victim_held: u64,
}

/// Where the kills fall. The recipient is down for the AWAY sends from
/// `down`; a holder dies some way into that stretch (at send `hold_at`); the
/// sender dies in it too, when `kill_sender` sends were answered, with the
/// next ones in flight and the last ones it accepted not yet deposited with
/// the holders (so that only its outbox has them).
struct Plan {
    down: usize,
    hold_at: usize,
    kill_sender: usize,
}

impl Plan {
    fn draw(rng: &mut Rng) -> Self {
        let down = rng.within(WINDOW, TOTAL - AWAY - WINDOW);
        let hold_at = down + rng.within(WINDOW, AWAY - WINDOW);
        let kill_sender = down + rng.within(WINDOW, AWAY - WINDOW);
        Self {
            down,
            hold_at,
            kill_sender,
        }
    }
}

/// Makes the TOTAL sends, WINDOW at a time, killing and restarting the
/// recipient, a holder and the sender on the way.
async fn send_through_the_kills(seed: u64, rng: &mut Rng, cast: &mut Cast) -> Sent {
    let Cast {
        holders,
        sender,
        recipient,
        rid,
        ..
    } = cast;
    let Plan {
        down,
        hold_at,
        kill_sender,
    } = Plan::draw(rng);
    let mut victim = None;
    let mut victim_held = 0;
    let mut accepted: HashMap<usize, String> = HashMap::new();
    let mut cut: HashSet<usize> = HashSet::new();
    let mut next = 0;
    let mut answered = 0;
    let mut sender_killed = false;
    while next < TOTAL {
        let api = client(sender).await;
        let mut flight = FuturesUnordered::new();
        let mut dead = false;
        loop {
            while !dead && next < TOTAL && flight.len() < WINDOW {
                if next == down {
                    recipient.kill();
                }
                if next == hold_at {
                    let (i, n) = kill_a_holder(seed, rng, sender, rid, holders).await;
                    victim = Some(i);
                    victim_held = n;
                }
                if next == down + AWAY {
                    recipient.restart().await;
                }
                flight.push(send(&api, rid, next));
                next += 1;
            }
            let Some((i, result)) = flight.next().await else {
                break;
            };
            match result {
                Ok(v) => {
                    accepted.insert(i, v.id);
                }
                Err(e) => {
                    assert!(dead, "seed {seed}: send {i} failed with the sender up: {e}");
                    cut.insert(i);
                }
            }
            answered += 1;
            if !sender_killed && answered == kill_sender {
                let one_more = send(&api, rid, next);
                next += 1;
                let (accepted, answered) = (&mut accepted, &mut answered);
                freeze_and_kill_sender(seed, sender, &mut flight, one_more, accepted, answered)
                    .await;
                (dead, sender_killed) = (true, true);
            }
        }
        drop(flight);
        if dead {
            sender.restart().await;
        }
    }
    let victim = victim.expect("a holder was killed");
    holders[victim].restart().await;

    Sent {
        accepted,
        cut,
        victim_held,
    }
}

/// Kills, while the recipient is down, one of the holders that holds some
/// of its items; returns which holder and how many items it held.
async fn kill_a_holder(
    seed: u64,
    rng: &mut Rng,
    sender: &Daemon,
    rid: &str,
    holders: &mut [Daemon],
) -> (usize, u64) {
    // Messages go through `stored` while the recipient is
    // down…
    eventually(&format!("seed {seed}: a message is `stored`"), || async {
        let rows = log(sender, rid)?;
        rows.iter().any(|r| r[1] == "stored").then_some(())
    })
    .await;
    // …and the holder that dies holds some of them.
    let mut held = Vec::new();
    for (i, h) in holders.iter().enumerate() {
        let n = h.held().await;
        if n > 0 {
            held.push((i, n));
        }
    }
    assert!(
        !held.is_empty(),
        "seed {seed}: no holder daemon holds anything while the recipient is down"
    );
    let (i, n) = held[rng.below(held.len() as u64) as usize];
    holders[i].kill();
    (i, n)
}

/// Kills the sender with a send it has not answered. WINDOW - 1 sends are
/// in flight, but the daemon may have answered them all already. So that the
/// kill surely cuts one it has not answered, it is frozen first and sent one
/// more (`one_more`), and dies once that request waits in its socket.
async fn freeze_and_kill_sender<F>(
    seed: u64,
    sender: &mut Daemon,
    flight: &mut FuturesUnordered<F>,
    one_more: F,
    accepted: &mut HashMap<usize, String>,
    answered: &mut usize,
) where
    F: Future<Output = (usize, Result<SendView, ClientError>)>,
{
    sender.freeze();
    flight.push(one_more);
    let sock = sender.dir.path().join("api.sock");
    let waiting = api_backlog(&sock);
    tokio::pin!(waiting);
    loop {
        tokio::select! {
            () = &mut waiting => break,
            Some((i, result)) = flight.next() => {
                // Answered before the freeze.
                let v = result.unwrap_or_else(|e| {
                    panic!("seed {seed}: send {i} failed with the sender up: {e}")
                });
                accepted.insert(i, v.id);
                *answered += 1;
            }
        }
    }
    sender.kill();
}

async fn every_accepted_message_arrives_once(seed: u64, cast: &Cast, sent: Sent) -> Figures {
    let Cast {
        hub,
        recipient,
        sid,
        ..
    } = cast;
    let Sent {
        accepted,
        cut,
        victim_held,
    } = sent;
    // Every accepted message arrives, once.
    let received = eventually(
        &format!("seed {seed}: every accepted message arrives"),
        || async {
            let rows = log(recipient, sid)?;
            let ids: HashSet<&String> = rows.iter().map(|r| &r[0]).collect();
            accepted.values().all(|id| ids.contains(id)).then_some(rows)
        },
    )
    .await;
    let mut bodies = HashSet::new();
    let mut ids = HashSet::new();
    let mut cut_arrived = 0;
    for [id, _, text, direction] in &received {
        assert_eq!(direction, "in", "seed {seed}: only the sender's messages");
        assert!(ids.insert(id), "seed {seed}: id {id} arrived twice");
        assert!(
            bodies.insert(text),
            "seed {seed}: body {text} arrived twice"
        );
        let i: usize = text
            .strip_prefix('m')
            .and_then(|n| n.parse().ok())
            .filter(|i| *i < TOTAL && body(*i) == *text)
            .unwrap_or_else(|| panic!("seed {seed}: {text:?} was never sent"));
        // received ⊆ accepted, but for sends whose answer the kill cut.
        match accepted.get(&i) {
            Some(want) => assert_eq!(want, id, "seed {seed}: {text} arrived under another id"),
            None => {
                assert!(
                    cut.contains(&i),
                    "seed {seed}: {text} arrived but its send was neither accepted nor cut"
                );
                cut_arrived += 1;
            }
        }
    }
    assert_eq!(
        accepted.len() + cut.len(),
        TOTAL,
        "seed {seed}: every send was answered or cut by the kill"
    );
    assert!(
        !cut.is_empty(),
        "seed {seed}: the sender's kill cut no send in flight"
    );
    hub.handle.shutdown().await.unwrap();
    Figures {
        accepted: accepted.len(),
        cut: cut.len(),
        cut_arrived,
        victim_held,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_sender_recipient_and_holder_during_a_thousand_messages() {
    for seed in [1, 2, 3, 4, 5] {
        let f = campaign(seed).await;
        println!(
            "seed {seed}: {} accepted, {} cut by the sender's kill ({} of them arrived), \
             the killed holder held {}",
            f.accepted, f.cut, f.cut_arrived, f.victim_held
        );
    }
}
