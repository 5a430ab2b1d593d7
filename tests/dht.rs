//! [trust] What the DHT takes from strangers: a lookup's answers, the
//! records peers put to us, and the peers we remember for the next start.
//! Hostile peers are raw libp2p swarms speaking our Kademlia protocol, so
//! they can answer what no roost node would.

mod common;

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestNode, eventually, init_tracing, start_with};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use libp2p::identity::Keypair;
use libp2p::kad::store::{self, MemoryStore, RecordStore};
use libp2p::kad::{self, KBucketKey, ProviderRecord, Record, RecordKey};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, identify, noise, tcp, yamux};
use roost::Identity;
use roost::clock::unix_ms;
use roost::net::KAD_PROTOCOL;
use roost::net::record_store::{MAX_RECORDS, MAX_RECORDS_PER_SOURCE};
use roost::wire::locator::{self, record_key};
use tokio::sync::{mpsc, oneshot};

const HOUR: u64 = 3_600_000;

/// A record store that answers every request for one key with whatever
/// the test sets (the hostile part), and counts those requests.
struct Answering {
    inner: MemoryStore,
    key: Option<RecordKey>,
    answer: Arc<Mutex<Option<Record>>>,
    asked: Arc<AtomicUsize>,
}

impl RecordStore for Answering {
    type RecordsIter<'a> = <MemoryStore as RecordStore>::RecordsIter<'a>;
    type ProvidedIter<'a> = <MemoryStore as RecordStore>::ProvidedIter<'a>;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        if self.key.as_ref() == Some(k) {
            self.asked.fetch_add(1, Ordering::SeqCst);
            return self.answer.lock().unwrap().clone().map(Cow::Owned);
        }
        self.inner.get(k)
    }
    fn put(&mut self, r: Record) -> store::Result<()> {
        self.inner.put(r)
    }
    fn remove(&mut self, k: &RecordKey) {
        self.inner.remove(k)
    }
    fn records(&self) -> Self::RecordsIter<'_> {
        self.inner.records()
    }
    fn add_provider(&mut self, record: ProviderRecord) -> store::Result<()> {
        self.inner.add_provider(record)
    }
    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        self.inner.providers(key)
    }
    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.inner.provided()
    }
    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        self.inner.remove_provider(k, p)
    }
}

#[derive(NetworkBehaviour)]
struct RawBehaviour {
    kad: kad::Behaviour<Answering>,
    identify: identify::Behaviour,
}

/// A record to put to a peer, and where to say it was answered.
type Put = (Record, PeerId, oneshot::Sender<Result<(), String>>);

/// A raw libp2p node: our Kademlia protocol in server mode, and identify.
struct RawNode {
    peer: PeerId,
    /// Its address with `/p2p/<ID>`.
    addr: Multiaddr,
    /// Peers it has sent its identify info to.
    identified_to: mpsc::UnboundedReceiver<PeerId>,
    dial: mpsc::UnboundedSender<Multiaddr>,
    puts: mpsc::UnboundedSender<Put>,
    stop: Option<oneshot::Sender<()>>,
}

impl RawNode {
    /// Starts one on 127.0.0.1 with `keypair`, answering requests for `key`
    /// from `answer` and counting them in `asked`.
    async fn start(
        keypair: Keypair,
        key: Option<RecordKey>,
        answer: Arc<Mutex<Option<Record>>>,
        asked: Arc<AtomicUsize>,
    ) -> Self {
        let peer = keypair.public().to_peer_id();
        let store = Answering {
            inner: MemoryStore::new(peer),
            key,
            answer,
            asked,
        };
        let mut swarm = raw_swarm(keypair, store);
        swarm
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address.with(Protocol::P2p(peer));
            }
        };
        let (id_tx, identified_to) = mpsc::unbounded_channel();
        let (dial, dials) = mpsc::unbounded_channel::<Multiaddr>();
        let (stop, stopped) = oneshot::channel();
        let (puts, to_put) = mpsc::unbounded_channel::<Put>();
        tokio::spawn(drive(swarm, id_tx, dials, stopped, to_put));
        Self {
            peer,
            addr,
            identified_to,
            dial,
            puts,
            stop: Some(stop),
        }
    }

    /// Puts `record` to `peer`; `Ok` once the peer answered.
    async fn put_to(&self, record: Record, peer: PeerId) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.puts.send((record, peer, tx)).expect("running");
        rx.await.expect("running")
    }

    /// Dials `addr` (of `peer`) and waits until the connection is up (our
    /// identify info went out on it): a put before that has no connection
    /// to go on and fails.
    async fn connect_to(&mut self, addr: Multiaddr, peer: PeerId) {
        self.dial.send(addr).expect("running");
        while self.identified_to.recv().await.expect("running") != peer {}
    }

    /// Stops it: its swarm and every connection go.
    fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// The raw node's swarm: our Kademlia protocol in server mode over `store`,
/// and identify.
fn raw_swarm(keypair: Keypair, store: Answering) -> libp2p::Swarm<RawBehaviour> {
    let peer = keypair.public().to_peer_id();
    let mut kad = kad::Behaviour::with_config(peer, store, kad::Config::new(KAD_PROTOCOL));
    kad.set_mode(Some(kad::Mode::Server));
    let identify =
        identify::Behaviour::new(identify::Config::new("/raw/1".into(), keypair.public()));
    libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| RawBehaviour { kad, identify })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// Runs the raw node: reports whom its identify info went to, dials and
/// puts on request, answers each put once the peer answered, until stopped.
async fn drive(
    mut swarm: libp2p::Swarm<RawBehaviour>,
    id_tx: mpsc::UnboundedSender<PeerId>,
    mut dials: mpsc::UnboundedReceiver<Multiaddr>,
    mut stopped: oneshot::Receiver<()>,
    mut to_put: mpsc::UnboundedReceiver<Put>,
) {
    let mut waiting: std::collections::HashMap<kad::QueryId, oneshot::Sender<Result<(), String>>> =
        std::collections::HashMap::new();
    loop {
        tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(RawBehaviourEvent::Identify(
                    identify::Event::Sent { peer_id, .. },
                )) => {
                    let _ = id_tx.send(peer_id);
                }
                SwarmEvent::Behaviour(RawBehaviourEvent::Kad(
                    kad::Event::OutboundQueryProgressed {
                        id,
                        result: kad::QueryResult::PutRecord(res),
                        ..
                    },
                )) => {
                    if let Some(reply) = waiting.remove(&id) {
                        let _ = reply.send(res.map(|_| ()).map_err(|e| e.to_string()));
                    }
                }
                _ => {}
            },
            Some(addr) = dials.recv() => {
                if let Some(Protocol::P2p(peer)) = addr.iter().last() {
                    swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
                }
                swarm.dial(addr).unwrap();
            }
            Some((record, peer, reply)) = to_put.recv() => {
                let kad = &mut swarm.behaviour_mut().kad;
                let id = kad.put_record_to(record, std::iter::once(peer), kad::Quorum::One);
                waiting.insert(id, reply);
            }
            _ = &mut stopped => break,
        }
    }
}

/// A keypair whose peer ID is closer to `target` than `than` is.
fn closer_keypair(target: &KBucketKey<RecordKey>, than: PeerId) -> Keypair {
    let limit = target.distance(&KBucketKey::from(than));
    loop {
        let kp = Keypair::generate_ed25519();
        if target.distance(&KBucketKey::from(kp.public().to_peer_id())) < limit {
            return kp;
        }
    }
}

/// Peers on the lookup's path answer for the buddy with a record for
/// another key — another identity's own valid "offline" record — and then
/// with another identity's record under the buddy's key. The lookup goes
/// on past them and finds the buddy online.
///
/// The three hostile peers are closer to the buddy's key than the buddy
/// (the only honest node), so Kademlia asks them first (α = 3): the buddy
/// is asked only once one of them has answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_ignores_answers_for_another_key() {
    init_tracing();
    let buddy = TestNode::start(&[]).await;
    let buddy_id = buddy.handle.peer_id();
    let key = record_key(&buddy_id);
    let target = KBucketKey::new(key.clone());
    // The buddy holds its own record (it answers lookups with it).
    eventually("the buddy has published its locator", || async {
        buddy.handle.find(buddy_id).await.expect("running")
    })
    .await;

    // Mallory's own identity signs a valid record of its own, offline, with
    // a seq above anything the buddy has published.
    let mallory = Identity::generate().unwrap();
    let now = unix_ms();
    let offline = locator::sign(&mallory, u64::MAX / 2, &[], now + HOUR, false).unwrap();
    let another_key = Record::new(record_key(&mallory.peer_id()), offline.clone());
    assert!(
        locator::validate(&another_key.key, &another_key.value, now, None).is_ok(),
        "the hostile answer is a valid record, for another key"
    );
    let answer = Arc::new(Mutex::new(Some(another_key)));
    let asked = Arc::new(AtomicUsize::new(0));
    let mut hostile = Vec::new();
    for _ in 0..3 {
        let kp = closer_keypair(&target, buddy_id);
        hostile.push(RawNode::start(kp, Some(key.clone()), answer.clone(), asked.clone()).await);
    }
    let mut boot = vec![buddy.addr().await];
    boot.extend(hostile.iter().map(|h| h.addr.clone()));
    let alice = TestNode::start(&boot).await;

    let loc = alice
        .handle
        .find(buddy_id)
        .await
        .unwrap()
        .expect("the buddy's record is found");
    assert!(
        asked.load(Ordering::SeqCst) >= 1,
        "a hostile peer answered the lookup"
    );
    assert_eq!(
        (loc.peer, loc.online),
        (buddy_id, true),
        "the lookup took another key's record"
    );

    // Another identity's record, under the buddy's key.
    *answer.lock().unwrap() = Some(Record::new(key.clone(), offline));
    let before = asked.load(Ordering::SeqCst);
    let loc = alice.handle.find(buddy_id).await.unwrap().expect("found");
    assert!(asked.load(Ordering::SeqCst) > before);
    assert_eq!((loc.peer, loc.online), (buddy_id, true));
    alice
        .handle
        .dial(buddy_id)
        .await
        .expect("dial the buddy by ID");

    for mut h in hostile {
        h.stop();
    }
    alice.handle.shutdown().await.unwrap();
    buddy.handle.shutdown().await.unwrap();
}

/// One peer puts as many validly signed records — one per identity it
/// generated — as the whole store holds. It keeps its share and no more,
/// and a record from another peer afterwards still lands. The flooder is a
/// raw Kademlia peer: it puts nothing of its own (a roost node would put
/// its own locator too, one more record charged to it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_cannot_fill_the_record_store() {
    init_tracing();
    let honest = TestNode::start(&[]).await;
    let boot = honest.addr().await;
    let target = honest.handle.peer_id();
    let mut flooder = RawNode::start(
        Keypair::generate_ed25519(),
        None,
        Arc::default(),
        Arc::default(),
    )
    .await;
    flooder.connect_to(boot.clone(), target).await;
    let other = TestNode::start(&[boot]).await;
    let now = unix_ms();

    let records: Vec<(RecordKey, Vec<u8>)> = (0..MAX_RECORDS)
        .map(|_| {
            let id = Identity::generate().unwrap();
            let value = locator::sign(&id, 1, &[], now + HOUR, true).unwrap();
            (record_key(&id.peer_id()), value)
        })
        .collect();
    let answered = flood(&flooder, target, &records).await;
    assert_eq!(answered, MAX_RECORDS);

    // Every put above was answered, so the honest node has handled each
    // before this one.
    let sentinel = Identity::generate().unwrap();
    let sentinel_key = record_key(&sentinel.peer_id());
    let sentinel_value = locator::sign(&sentinel, 1, &[], now + HOUR, true).unwrap();
    other
        .handle
        .net()
        .put_record_to(sentinel_key.clone(), sentinel_value.clone(), target)
        .await
        .expect("the honest node answered");
    eventually("the sentinel from another peer is stored", || async {
        let held = honest.handle.net().held_record(sentinel_key.clone()).await;
        (held.expect("running") == Some(sentinel_value.clone())).then_some(())
    })
    .await;

    let mut held = 0;
    for (key, _) in &records {
        if honest
            .handle
            .net()
            .held_record(key.clone())
            .await
            .unwrap()
            .is_some()
        {
            held += 1;
        }
    }
    assert_eq!(
        held, MAX_RECORDS_PER_SOURCE,
        "records held from the one flooding peer"
    );
    for n in [&honest, &other] {
        n.handle.shutdown().await.unwrap();
    }
}

/// Puts `records` from `flooder` to `target`, 16 at a time; returns how
/// many puts were answered (each answer is checked to be a success).
async fn flood(flooder: &RawNode, target: PeerId, records: &[(RecordKey, Vec<u8>)]) -> usize {
    let mut puts: FuturesUnordered<_> = FuturesUnordered::new();
    let mut queue = records.iter().cloned();
    let mut answered = 0;
    loop {
        while puts.len() < 16 {
            let Some((key, value)) = queue.next() else {
                break;
            };
            puts.push(async move { flooder.put_to(Record::new(key, value), target).await });
        }
        match puts.next().await {
            Some(res) => {
                res.expect("the honest node answered");
                answered += 1;
            }
            None => break,
        }
    }
    answered
}

/// A record stored under another spelling of its owner's key (the ID with
/// whitespace around it, which `parse_id` trims) is refused: each spelling
/// would be a key of its own, so one identity could fill a store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_is_stored_only_under_its_owners_key() {
    init_tracing();
    let honest = TestNode::start(&[]).await;
    let target = honest.handle.peer_id();
    let mut raw = RawNode::start(
        Keypair::generate_ed25519(),
        None,
        Arc::default(),
        Arc::default(),
    )
    .await;
    raw.connect_to(honest.addr().await, target).await;
    let owner = Identity::generate().unwrap();
    let value = locator::sign(&owner, 1, &[], unix_ms() + HOUR, true).unwrap();
    let padded: Vec<RecordKey> = [" ", "\n", "  "]
        .iter()
        .map(|pad| RecordKey::new(&format!("{}{}{pad}", locator::KEY_PREFIX, owner.peer_id())))
        .collect();
    for key in &padded {
        raw.put_to(Record::new(key.clone(), value.clone()), target)
            .await
            .expect("the honest node answered");
    }
    // Then the same record under its key: puts are handled in order.
    let key = record_key(&owner.peer_id());
    raw.put_to(Record::new(key.clone(), value.clone()), target)
        .await
        .expect("the honest node answered");
    eventually("the record is stored under its key", || async {
        let held = honest.handle.net().held_record(key.clone()).await;
        (held.expect("running") == Some(value.clone())).then_some(())
    })
    .await;
    for key in padded {
        let held = honest.handle.net().held_record(key).await.unwrap();
        assert!(held.is_none(), "a record was stored under a padded key");
    }
    honest.handle.shutdown().await.unwrap();
}

/// Only a peer we dialled and stayed connected to is remembered: not a
/// stranger we dialled that hangs up at once, nor one that dialled us and
/// stays. A clean stop saves the peer still connected as seen then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_peers_we_dialled_and_kept_are_remembered() {
    init_tracing();
    const LASTING: Duration = Duration::from_secs(10);
    let raw = || {
        RawNode::start(
            Keypair::generate_ed25519(),
            None,
            Arc::default(),
            Arc::default(),
        )
    };
    // The node dials both (they are its bootstrap peers).
    let stays = TestNode::start(&[]).await;
    let stays_id = stays.handle.peer_id();
    let mut stranger = raw().await;
    let dir = tempfile::tempdir().unwrap();
    Identity::create_in(dir.path()).unwrap();
    let boot = [stays.addr().await, stranger.addr.clone()];
    let node = start_with(&dir, &boot, |c| c.lasting_connection = LASTING).await;
    // This one dials the node and stays connected.
    let mut lurker = raw().await;
    lurker
        .dial
        .send(node.dial_addrs().await.unwrap().remove(0))
        .unwrap();
    // The node has the identify info of both strangers (listen address,
    // our DHT protocol): all it once needed to remember them.
    for raw in [&mut stranger, &mut lurker] {
        while raw.identified_to.recv().await.expect("running") != node.peer_id() {}
    }
    let lurker_since = unix_ms();
    stranger.stop();
    eventually("the stranger is gone", || async {
        let peers = node.connected_peers().await.expect("running");
        (!peers.contains(&stranger.peer)).then_some(())
    })
    .await;

    let known = eventually("the peer that stayed is remembered", || async {
        let known = node.known_peers().await.expect("running");
        known.iter().any(|k| k.peer == stays_id).then_some(known)
    })
    .await;
    assert!(
        known.iter().all(|k| k.peer != stranger.peer),
        "a stranger of a moment was remembered"
    );
    let remembered_at = known.iter().find(|k| k.peer == stays_id).unwrap().last_seen;

    // Once the lurker, too, has been connected for longer than the
    // threshold, and the clock has moved on, stop the node cleanly.
    let lurked = lurker_since + LASTING.as_millis() as u64;
    eventually(
        "the lurker has been connected past the threshold",
        || async { (unix_ms() > lurked.max(remembered_at)).then_some(()) },
    )
    .await;
    let peers = node.connected_peers().await.unwrap();
    assert!(peers.contains(&lurker.peer), "the lurker stayed connected");
    let before_stop = unix_ms();
    node.shutdown().await.unwrap();

    only_the_peer_that_stayed_was_saved(dir.path(), stays_id, &stranger, &lurker, before_stop);
    lurker.stop();
    stays.handle.shutdown().await.unwrap();
}

/// What the stopped node saved in `dir`: neither `stranger` nor `lurker`,
/// and the peer `stays` as seen at the stop (`before_stop`) or later.
fn only_the_peer_that_stayed_was_saved(
    dir: &std::path::Path,
    stays_id: PeerId,
    stranger: &RawNode,
    lurker: &RawNode,
    before_stop: u64,
) {
    let db = dir.join(roost::node::DB_DIR);
    let store = roost::store::Store::open(&db, 1 << 20).unwrap();
    let saved = store.known_peers(usize::MAX).unwrap();
    assert!(
        saved.iter().all(|k| k.peer != lurker.peer),
        "a peer that dialled us was remembered"
    );
    assert!(saved.iter().all(|k| k.peer != stranger.peer));
    let last_seen = saved
        .iter()
        .find(|k| k.peer == stays_id)
        .map(|k| k.last_seen);
    assert!(
        last_seen >= Some(before_stop),
        "the peer still connected at the stop was saved as seen at {last_seen:?}, before {before_stop}"
    );
    drop(store);
}
