//! [hardening] Crash safety: during a 1000-message exchange the sender, the
//! recipient and a mailbox holder are killed with SIGKILL at points chosen
//! by a seeded generator, and restarted. Every message that `send` accepted
//! must arrive exactly once.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Child;

use common::{TestNode, eventually, roost, spawn_daemon};
use roost::api::SendView;
use roost::api::client::ApiClient;
use serde_json::json;

/// A daemon process on a data dir that outlives it.
struct Proc {
    dir: tempfile::TempDir,
    child: Option<Child>,
    id: String,
    boot: String,
}

impl Proc {
    async fn new(boot: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = roost(dir.path(), &["--json", "init"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut p = Self {
            dir,
            child: None,
            id: v["id"].as_str().unwrap().to_string(),
            boot: boot.to_string(),
        };
        p.start().await;
        p
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    async fn start(&mut self) {
        self.child = Some(spawn_daemon(self.dir.path(), Some(&self.boot)));
        let dir = self.path();
        eventually("daemon answers", || async {
            roost(&dir, &["--json", "status"])
                .status
                .success()
                .then_some(())
        })
        .await;
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }

    async fn client(&self) -> ApiClient {
        let dir = self.path();
        eventually("api.json", || async { ApiClient::open(&dir).ok() }).await
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// xorshift64*: a tiny seeded generator, so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

async fn campaign(seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let hub = TestNode::start(&[]).await;
    let boot = hub.addr().await.to_string();
    let mut holders = Vec::new();
    for _ in 0..3 {
        holders.push(Proc::new(&boot).await);
    }
    let mut sender = Proc::new(&boot).await;
    let mut recipient = Proc::new(&boot).await;
    let (rid, sid) = (recipient.id.clone(), sender.id.clone());

    const TOTAL: usize = 1000;
    // Three kill points, one per victim, somewhere in the exchange.
    let points: Vec<usize> = (0..3)
        .map(|_| 50 + rng.below((TOTAL - 100) as u64) as usize)
        .collect();
    let victim_holder = rng.below(holders.len() as u64) as usize;
    let mut accepted = HashSet::new();
    let mut client = sender.client().await;
    let mut recipient_down = false;
    for i in 0..TOTAL {
        if i == points[0] {
            sender.kill();
            sender.start().await;
            client = sender.client().await;
        }
        if i == points[1] {
            recipient.kill();
            recipient_down = true;
        }
        if i == points[2] {
            holders[victim_holder].kill();
        }
        // The recipient stays down for a stretch, so some messages take the
        // mailbox path.
        if recipient_down && i == points[1] + 100 {
            recipient.start().await;
            recipient_down = false;
        }
        let body = json!({ "to": rid, "text": format!("m{i:04}") });
        // A send either returns an id (then it must arrive) or fails.
        if let Ok(v) = client.post::<SendView>("send", &body).await {
            accepted.insert(v.id);
        }
    }
    if recipient_down {
        recipient.start().await;
    }
    holders[victim_holder].start().await;

    let dir = recipient.path();
    let got = eventually(
        &format!("seed {seed}: every accepted message arrives"),
        || async {
            let out = roost(&dir, &["--json", "log", &sid, "--limit", "5000"]);
            if !out.status.success() {
                return None;
            }
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|v| v["id"].as_str().map(str::to_string))
                .collect();
            let set: HashSet<String> = ids.iter().cloned().collect();
            accepted.is_subset(&set).then_some(ids)
        },
    )
    .await;
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(
        unique.len(),
        got.len(),
        "seed {seed}: a message arrived twice"
    );
    assert!(
        accepted.len() >= TOTAL - 5,
        "seed {seed}: only {} sends were accepted",
        accepted.len()
    );
    hub.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_sender_recipient_and_holder_during_a_thousand_messages() {
    for seed in [1, 2, 3] {
        campaign(seed).await;
    }
}
