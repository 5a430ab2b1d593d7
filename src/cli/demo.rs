//! `roost demo`: the whole story on one machine, in one process — a small
//! network of real nodes on 127.0.0.1 (real libp2p over TCP, real sled in a
//! temporary directory), the lecture's Alex, Alice, Bob, Oscar and Jack plus
//! plain nodes. Each step is narrated and checked; the first failure ends
//! the demo with the step's name. Nothing is left behind.

use std::future::Future;
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};

use roost::node::{BuddyChange, Content, Event, Own, OwnStatus};
use roost::store::MessageState;
use roost::wire::presence::Status;
use roost::{Config, Identity, Node, NodeHandle};

/// How long any one step may take.
const STEP: Duration = Duration::from_secs(20);

/// The step that failed, and why.
#[derive(Debug, thiserror::Error)]
#[error("demo step {step:?} failed: {reason}")]
pub struct DemoError {
    /// Which step.
    pub step: &'static str,
    /// What went wrong.
    pub reason: String,
}

fn fail(step: &'static str, reason: impl ToString) -> DemoError {
    DemoError {
        step,
        reason: reason.to_string(),
    }
}

/// Polls `check` until it yields `Some` or the step times out.
async fn wait<T, F, Fut>(step: &'static str, mut check: F) -> Result<T, DemoError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if start.elapsed() > STEP {
            return Err(fail(step, format!("no result after {STEP:?}")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Person {
    name: &'static str,
    node: NodeHandle,
}

async fn start(
    root: &std::path::Path,
    name: &str,
    identity: &Identity,
    boot: &[Multiaddr],
) -> Result<NodeHandle, DemoError> {
    let dir = root.join(name);
    identity
        .save_new_in(&dir)
        .map_err(|e| fail("start nodes", e))?;
    let mut config = Config::local(dir);
    config.bootstrap = boot.to_vec();
    config.auto_away = None;
    Node::start(config)
        .await
        .map_err(|e| fail("start nodes", e))
}

async fn status_of(who: &NodeHandle, peer: PeerId) -> Status {
    who.buddies()
        .await
        .ok()
        .and_then(|l| l.into_iter().find(|b| b.peer == peer))
        .map_or(Status::Offline, |b| b.presence.status)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Runs the demo, narrating through `say`.
pub async fn run(mut say: impl FnMut(&str)) -> Result<(), DemoError> {
    let t0 = Instant::now();
    let root = tempfile::Builder::new()
        .prefix("roost-demo-")
        .tempdir()
        .map_err(|e| fail("prepare", e))?;
    let result = story(root.path(), &mut say).await;
    if result.is_ok() {
        say(&format!(
            "\nThe whole story took {:.1} s. Temporary data removed.",
            t0.elapsed().as_secs_f64()
        ));
    }
    result
}

/// The nodes of the story: plain ones, the people, and Jack's identity
/// (his node starts in step 7).
struct Cast {
    plain: Vec<NodeHandle>,
    people: Vec<Person>,
    jack_id: Identity,
    boot: Vec<Multiaddr>,
}

impl Cast {
    /// Alex, Alice, Bob and Oscar.
    fn four(&self) -> (&NodeHandle, &NodeHandle, &NodeHandle, &NodeHandle) {
        (
            &self.people[0].node,
            &self.people[1].node,
            &self.people[2].node,
            &self.people[3].node,
        )
    }

    /// Every running node but Jack's.
    fn nodes(&self) -> impl Iterator<Item = &NodeHandle> {
        self.plain.iter().chain(self.people.iter().map(|p| &p.node))
    }
}

async fn story(root: &std::path::Path, say: &mut impl FnMut(&str)) -> Result<(), DemoError> {
    say("roost demo: a peer-to-peer messenger, no server in the middle.\n");
    say(
        "1. Starting a small network on 127.0.0.1: three plain nodes, then Alex, Alice, Bob and Oscar.",
    );
    say("   Jack has an identity, but his node is off.");
    let cast = start_cast(root, say).await?;
    discovery(&cast, say).await?;
    buddies(&cast, say).await?;
    hide_from_one(&cast, say).await?;
    presence_push(&cast, say).await?;
    direct_message(&cast, say).await?;
    let jack = store_and_forward(root, &cast, say).await?;
    say("\n8. Everyone leaves cleanly (each node leaves an \"offline\" locator record).");
    for n in cast.nodes().chain([&jack]) {
        n.shutdown().await.map_err(|e| fail("shutdown", e))?;
    }
    say("\nAll steps passed.");
    Ok(())
}

/// Step 1: the network and the people on it.
async fn start_cast(root: &std::path::Path, say: &mut impl FnMut(&str)) -> Result<Cast, DemoError> {
    let seed = start(
        root,
        "node0",
        &Identity::generate().map_err(|e| fail("start nodes", e))?,
        &[],
    )
    .await?;
    let boot = seed
        .dial_addrs()
        .await
        .map_err(|e| fail("start nodes", e))?;
    let mut all = vec![seed];
    for i in 1..3 {
        let id = Identity::generate().map_err(|e| fail("start nodes", e))?;
        all.push(start(root, &format!("node{i}"), &id, &boot).await?);
    }
    let mut people = Vec::new();
    for name in ["alex", "alice", "bob", "oscar"] {
        let id = Identity::generate().map_err(|e| fail("start nodes", e))?;
        people.push(Person {
            name,
            node: start(root, name, &id, &boot).await?,
        });
    }
    let jack_id = Identity::generate().map_err(|e| fail("start nodes", e))?;
    for p in &people {
        say(&format!("   {:<6} {}", p.name, p.node.peer_id()));
    }
    say(&format!("   jack   {} (offline)", jack_id.peer_id()));
    Ok(Cast {
        plain: all,
        people,
        jack_id,
        boot,
    })
}

/// Step 2: finding Bob by his key alone.
async fn discovery(cast: &Cast, say: &mut impl FnMut(&str)) -> Result<(), DemoError> {
    let (_, alice, bob, _) = cast.four();
    say(
        "\n2. Discovery by key: Alice knows only Bob's ID and finds his signed locator record in the DHT.",
    );
    let t = Instant::now();
    let loc = wait("discovery by key", || async {
        alice.find(bob.peer_id()).await.ok().flatten()
    })
    .await?;
    say(&format!(
        "   found Bob at {} in {} (record seq {}, signature checked)",
        loc.addrs.first().map(|a| a.to_string()).unwrap_or_default(),
        ms(t.elapsed()),
        loc.seq
    ));
    Ok(())
}

/// Step 3: buddy lists, and presence seen through them.
async fn buddies(cast: &Cast, say: &mut impl FnMut(&str)) -> Result<(), DemoError> {
    let (alex, alice, bob, oscar) = cast.four();
    say("\n3. Buddies: adding a key is the permission to see my presence.");
    let add = |who: &NodeHandle, whom: &NodeHandle, name: &str| {
        let (who, peer, name) = (who.clone(), whom.peer_id(), name.to_string());
        async move {
            who.add_buddy(peer, name)
                .await
                .map_err(|e| fail("buddies", e))
        }
    };
    add(alice, bob, "bob").await?;
    add(alice, oscar, "oscar").await?;
    alice
        .add_buddy(cast.jack_id.peer_id(), "jack".into())
        .await
        .map_err(|e| fail("buddies", e))?;
    add(bob, alice, "alice").await?;
    add(oscar, alice, "alice").await?;
    add(oscar, alex, "alex").await?;
    add(alex, oscar, "oscar").await?;
    say(
        "   Alice adds Bob, Oscar and Jack; Bob and Oscar add Alice; Oscar and Alex add each other.",
    );
    wait("presence", || async {
        (status_of(alice, bob.peer_id()).await == Status::Online
            && status_of(alice, oscar.peer_id()).await == Status::Online)
            .then_some(())
    })
    .await?;
    for b in alice.buddies().await.map_err(|e| fail("presence", e))? {
        say(&format!(
            "   Alice's list: {:<6} {}",
            b.name,
            b.presence.status.as_str()
        ));
    }
    if status_of(alice, cast.jack_id.peer_id()).await != Status::Offline {
        return Err(fail("presence", "Jack should be offline"));
    }
    Ok(())
}

/// Step 4: Oscar hidden from Alex only.
async fn hide_from_one(cast: &Cast, say: &mut impl FnMut(&str)) -> Result<(), DemoError> {
    let (alex, alice, _, oscar) = cast.four();
    say("\n4. Oscar hides his state from Alex (Alice still sees it).");
    wait("hide from one buddy", || async {
        (status_of(alex, oscar.peer_id()).await == Status::Online).then_some(())
    })
    .await?;
    oscar
        .change_buddy(alex.peer_id(), BuddyChange::Hide(true))
        .await
        .map_err(|e| fail("hide from one buddy", e))?;
    wait("hide from one buddy", || async {
        (status_of(alex, oscar.peer_id()).await == Status::Offline).then_some(())
    })
    .await?;
    let alice_sees = status_of(alice, oscar.peer_id()).await;
    if alice_sees != Status::Online {
        return Err(fail(
            "hide from one buddy",
            format!("Alice sees Oscar {}", alice_sees.as_str()),
        ));
    }
    say("   Alex sees Oscar: offline.   Alice sees Oscar: online.");
    Ok(())
}

/// Step 5: a presence change pushed to a buddy.
async fn presence_push(cast: &Cast, say: &mut impl FnMut(&str)) -> Result<(), DemoError> {
    let (_, alice, bob, _) = cast.four();
    say("\n5. Presence is pushed: Bob goes to lunch; Alice is notified, nobody polls.");
    let mut events = alice.events();
    let t = Instant::now();
    let lunch = Own {
        status: OwnStatus::Away,
        note: Some("lunch, back at 14:00".into()),
        until: Some("14:00".into()),
        ..Own::default()
    };
    bob.set_presence(lunch)
        .await
        .map_err(|e| fail("presence push", e))?;
    let info = tokio::time::timeout(STEP, async {
        loop {
            match events.recv().await {
                Ok(Event::Presence { peer, info }) if peer == bob.peer_id() => return Some(info),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                _ => {}
            }
        }
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(|| fail("presence push", "no notification"))?;
    say(&format!(
        "   Alice is told: Bob is {} — \"{}\" ({} after the change)",
        info.status.as_str(),
        info.note.unwrap_or_default(),
        ms(t.elapsed())
    ));
    Ok(())
}

/// Step 6: a message to a buddy who is online.
async fn direct_message(cast: &Cast, say: &mut impl FnMut(&str)) -> Result<(), DemoError> {
    let (_, alice, bob, _) = cast.four();
    say(
        "\n6. A direct MESSAGE: Alice → Bob, sealed end to end; \"delivered\" = stored by Bob's node.",
    );
    let t = Instant::now();
    let id = alice
        .send(bob.peer_id(), Content::text("Bob, come here!"))
        .await
        .map_err(|e| fail("direct message", e))?;
    wait("direct message", || async {
        let conv = alice.conversation(bob.peer_id(), 10).await.ok()?;
        conv.iter()
            .any(|m| m.id == id && m.state == MessageState::Delivered)
            .then_some(())
    })
    .await?;
    let got = bob.inbox().await.map_err(|e| fail("direct message", e))?;
    let text = got
        .last()
        .map(|m| String::from_utf8_lossy(&m.data).into_owned())
        .unwrap_or_default();
    say(&format!(
        "   Bob's inbox: \"{text}\" — delivered in {}",
        ms(t.elapsed())
    ));
    Ok(())
}

/// Step 7: a message to Jack while he is offline, taken from his
/// mailboxes when he starts; returns Jack's node.
async fn store_and_forward(
    root: &std::path::Path,
    cast: &Cast,
    say: &mut impl FnMut(&str),
) -> Result<NodeHandle, DemoError> {
    let (_, alice, _, _) = cast.four();
    say("\n7. Store and forward: Alice → Jack while Jack is offline.");
    let id = alice
        .send(
            cast.jack_id.peer_id(),
            Content::text("Jack, call me when you are back"),
        )
        .await
        .map_err(|e| fail("store and forward", e))?;
    wait("store and forward", || async {
        let conv = alice.conversation(cast.jack_id.peer_id(), 10).await.ok()?;
        conv.iter()
            .any(|m| m.id == id && m.state == MessageState::Stored)
            .then_some(())
    })
    .await?;
    let mut holders = 0;
    for n in cast.nodes() {
        holders += usize::from(n.held_for(cast.jack_id.peer_id()).await.unwrap_or(0) > 0);
    }
    say(&format!(
        "   direct delivery failed; the sealed envelope waits on {holders} peers near Jack's mailbox key (state: stored)."
    ));
    say("   Jack's node starts...");
    let t = Instant::now();
    let jack = start(root, "jack", &cast.jack_id, &cast.boot).await?;
    wait("store and forward", || async {
        let conv = jack.conversation(alice.peer_id(), 10).await.ok()?;
        conv.iter().any(|m| m.id == id).then_some(())
    })
    .await?;
    say(&format!(
        "   Jack has it {} after starting: \"Jack, call me when you are back\"",
        ms(t.elapsed())
    ));
    wait("store and forward", || async {
        let conv = alice.conversation(cast.jack_id.peer_id(), 10).await.ok()?;
        conv.iter()
            .any(|m| m.id == id && m.state == MessageState::Delivered)
            .then_some(())
    })
    .await?;
    say("   Jack's node sent a delivery receipt: Alice sees the message delivered.");

    Ok(jack)
}
