//! Where a node keeps its data and how it is tuned.
//!
//! Precedence, highest first: command-line flags, `<data-dir>/config.toml`,
//! built-in defaults. The data directory itself comes from `--data-dir`, else
//! `ROOST_HOME`, else the platform data directory (`$XDG_DATA_HOME/roost`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use libp2p::Multiaddr;
use serde::Deserialize;

mod data_dir;
mod files;
mod groups;
mod rooms;
pub use data_dir::{DataDirError, check_owned, data_dir, ensure_private_dir};
pub use files::{FilesConfig, FilesSection, MAX_INLINE_BYTES};
pub use groups::FastConfig;
pub use rooms::{RoomLimits, RoomsSection};

/// Name of the optional configuration file inside the data directory.
pub const CONFIG_FILE: &str = "config.toml";

/// Default TCP and UDP (QUIC) port; fixed so a firewall rule can name it.
pub const DEFAULT_PORT: u16 = 7117;

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No `--data-dir`, no `ROOST_HOME` and no platform data dir.
    #[error("cannot tell where to keep data: pass --data-dir or set ROOST_HOME")]
    NoDataDir,
    /// `config.toml` exists but is not valid.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, from the TOML parser.
        message: String,
    },
    /// Reading the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The data directory is not ours: its `config.toml` is not read.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
}

/// Everything a node needs to start. Built by [`Config::new`] with defaults,
/// then adjusted by `config.toml` and flags.
#[derive(Debug, Clone)]
pub struct Config {
    /// Holds the key, the sled database, `api.json` and `api.sock`.
    pub data_dir: PathBuf,
    /// Addresses to listen on (TCP and QUIC).
    pub listen: Vec<Multiaddr>,
    /// Peers to join the network through, in addition to remembered ones.
    pub bootstrap: Vec<Multiaddr>,
    /// Invites (`roost:…`) to join through as well: their addresses. Kept
    /// as text here; the node checks each when it starts and refuses to
    /// start on an expired, forged or damaged one.
    pub bootstrap_invites: Vec<String>,
    /// Find peers on the local network by multicast DNS.
    pub mdns: bool,
    /// Kademlia mode: `auto` serves the DHT only while we are reachable
    /// (see [`crate::net::reach`]), so a node behind a NAT is never chosen
    /// to hold records or mailboxes; `server` forces it (and declares us
    /// reachable on our listen addresses); `client` never serves.
    pub dht_mode: DhtMode,
    /// Serve as a circuit relay for NATed peers while we are reachable.
    pub relay_server: bool,
    /// What our relay server grants.
    pub relay_limits: RelayLimits,
    /// Ask the home router for a port mapping (UPnP IGD).
    pub upnp: bool,
    /// Relays to reserve on while not reachable (`…/p2p/<ID>`), tried
    /// before the ones found among peers.
    pub relays: Vec<Multiaddr>,
    /// Addresses others can dial us on, declared by the user (a server
    /// with a public IP or a forwarded port): they make us `public`
    /// without waiting for AutoNAT.
    pub external_addrs: Vec<Multiaddr>,
    /// Lifetime of our locator record in the DHT; it is republished at half
    /// of it, so a crashed node is forgotten after at most this long.
    pub locator_ttl: Duration,
    /// Least time between two republications caused by the network growing.
    pub republish_min_interval: Duration,
    /// How long a connection no protocol keeps is kept (10 s, libp2p's
    /// own default). The connections that should last keep themselves:
    /// buddies' (`net::keep`), message links (their stream idles out after
    /// 5 minutes), relay reservations, gossip meshes. What is left is
    /// mostly DHT traffic: a lookup's steps follow each other within a
    /// second or two, and a node's next lookup comes minutes later, so
    /// keeping them longer saves few dials, costs memory while they are
    /// open, and keeps a network busy closing its start-up's connections
    /// for as long after the start.
    pub idle_timeout: Duration,
    /// Upper bound for one DHT query.
    pub query_timeout: Duration,
    /// Most connections others may hold open to us at once, whoever they
    /// are: each costs a socket and buffers, and identities are free to
    /// make. A node with many buddies and a DHT neighbourhood needs a few
    /// hundred.
    pub max_incoming_connections: u32,
    /// Where the local HTTP API listens; port 0 picks a free one.
    pub api: SocketAddr,
    /// sled page cache in bytes (sled's default of 1 GiB is far too much).
    pub cache_bytes: u64,
    /// Store-and-forward settings.
    pub mailbox: MailboxConfig,
    /// Show `away` after this long without user activity through the local
    /// API, while the explicit state is `online`; `None` disables it.
    pub auto_away: Option<Duration>,
    /// How long a connection we dialled must stay open before its peer is
    /// remembered for the next start (`net::lasting`): strangers passing
    /// by stay out of the `peers` table a restart reseeds from. Shorter
    /// than [`Config::idle_timeout`], so a peer met by a lookup, which
    /// stays connected until the idle timeout, counts.
    pub lasting_connection: Duration,
    /// Per-sender rate of public rooms' messages this node forwards and
    /// shows (`node::rooms`).
    pub room_limits: RoomLimits,
    /// What files this node takes in and sends through mailboxes.
    pub files: FilesConfig,
    /// When a private group is large enough for gossip first, 1:1 copies
    /// held back for confirmations (`node::groups::fast`).
    pub group_fast: FastConfig,
}

/// Kademlia's mode (`dht_mode`): whether this node serves the DHT, and so
/// may be chosen to hold others' records and mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhtMode {
    /// Server once reachability is known to be public, client otherwise.
    Auto,
    /// Always server (and claim to be reachable).
    Server,
    /// Always client.
    Client,
}

/// Resources our relay server grants to NATed peers. libp2p's defaults
/// (2 minutes and 128 KiB per circuit) would cut an ordinary chat; these
/// let a relayed conversation run for half an hour and a few megabytes
/// before the relay resets it and the peers connect again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayLimits {
    /// Reservations held for others at once.
    pub max_reservations: usize,
    /// Reservations one peer may hold.
    pub max_reservations_per_peer: usize,
    /// How long a reservation lasts (clients renew it before).
    pub reservation_duration: Duration,
    /// Circuits relayed at once.
    pub max_circuits: usize,
    /// Circuits one peer may have relayed at once (as source or target).
    pub max_circuits_per_peer: usize,
    /// How long one circuit may last.
    pub max_circuit_duration: Duration,
    /// Bytes one circuit may carry in each direction.
    pub max_circuit_bytes: u64,
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            max_reservations: 128,
            max_reservations_per_peer: 4,
            reservation_duration: Duration::from_secs(3600),
            max_circuits: 64,
            max_circuits_per_peer: 8,
            max_circuit_duration: Duration::from_secs(30 * 60),
            max_circuit_bytes: 8 << 20,
        }
    }
}

/// How this node uses and serves replicated mailboxes.
#[derive(Debug, Clone)]
pub struct MailboxConfig {
    /// Holders per mailbox (R).
    pub replicas: usize,
    /// Holder acknowledgements that make a deposit `stored`.
    pub quorum: usize,
    /// How long a holder keeps an item.
    pub ttl: Duration,
    /// How often we check our own mailbox even without a reason to.
    pub poll: Duration,
    /// What a holder accepts.
    pub quotas: Quotas,
}

impl Default for MailboxConfig {
    fn default() -> Self {
        Self {
            replicas: 3,
            quorum: 2,
            ttl: Duration::from_secs(7 * 24 * 3600),
            poll: Duration::from_secs(300),
            quotas: Default::default(),
        }
    }
}

/// Default of [`Quotas::pair_items`].
pub const PAIR_ITEMS: usize = 200;

/// Limits a holder enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Most items held for one recipient.
    pub recipient_items: usize,
    /// Most bytes held for one recipient.
    pub recipient_bytes: usize,
    /// Most items held from one depositor.
    pub depositor_items: usize,
    /// Most items held from one depositor for one recipient: one identity
    /// must not fill a recipient's mailbox (and lock out every other
    /// sender) up to `recipient_items`. In the low hundreds: more than a
    /// person writes to someone away for a week, and a sender over it
    /// keeps the rest in its outbox and retries. A co-holder handing on a
    /// mailbox counts as the depositor too, so a mailbox larger than this
    /// moves on only in part, and its holder keeps its copies.
    pub pair_items: usize,
    /// Most items held in all (many depositors must not fill the disk).
    pub total_items: usize,
    /// Most bytes held in all.
    pub total_bytes: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            recipient_items: 10_000,
            recipient_bytes: 64 << 20,
            depositor_items: 10_000,
            pair_items: PAIR_ITEMS,
            total_items: 200_000,
            total_bytes: 1 << 30,
        }
    }
}

impl Config {
    /// Defaults for a node whose data lives in `data_dir`.
    pub fn new(data_dir: PathBuf) -> Self {
        let listen = vec![
            format!("/ip4/0.0.0.0/tcp/{DEFAULT_PORT}"),
            format!("/ip4/0.0.0.0/udp/{DEFAULT_PORT}/quic-v1"),
        ]
        .into_iter()
        .filter_map(|a| a.parse().ok())
        .collect();
        Self {
            data_dir,
            listen,
            bootstrap: Vec::new(),
            bootstrap_invites: Vec::new(),
            mdns: true,
            dht_mode: DhtMode::Auto,
            relay_server: true,
            relay_limits: RelayLimits::default(),
            upnp: true,
            relays: Vec::new(),
            external_addrs: Vec::new(),
            locator_ttl: Duration::from_secs(3600),
            republish_min_interval: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
            query_timeout: Duration::from_secs(20),
            max_incoming_connections: 2048,
            api: SocketAddr::from(([127, 0, 0, 1], 0)),
            cache_bytes: 16 << 20,
            mailbox: MailboxConfig::default(),
            auto_away: Some(Duration::from_secs(15 * 60)),
            lasting_connection: Duration::from_secs(5),
            room_limits: Default::default(),
            files: FilesConfig::default(),
            group_fast: Default::default(),
        }
    }

    /// A node for tests and the demo: loopback only, ephemeral ports, no
    /// mDNS, no UPnP, and a DHT server (loopback peers can all dial it).
    pub fn local(data_dir: PathBuf) -> Self {
        let mut c = Self::new(data_dir);
        c.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")];
        c.mdns = false;
        c.upnp = false;
        c.dht_mode = DhtMode::Server;
        c.republish_min_interval = Duration::from_secs(1);
        // Short-lived test nodes remember every peer that identifies; the
        // tests of the rule itself set a threshold.
        c.lasting_connection = Duration::ZERO;
        c
    }

    /// Applies `<data_dir>/config.toml` if it exists.
    pub fn apply_file(&mut self) -> Result<(), ConfigError> {
        // Another user's dir (or file) would set our listen addresses,
        // bootstrap peers and API: refused before a byte of it is read.
        check_owned(&self.data_dir)?;
        let path = self.data_dir.join(CONFIG_FILE);
        check_owned(&path)?;
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(ConfigError::Io { path, source }),
        };
        let file: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        file.apply(self)
            .map_err(|message| ConfigError::Invalid { path, message })
    }
}

/// The shape of `config.toml`: every key optional, unknown keys refused so a
/// typo does not go unnoticed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See [`Config::listen`].
    pub listen: Option<Vec<Multiaddr>>,
    /// See [`Config::bootstrap`]: multiaddrs or invites.
    pub bootstrap: Option<Vec<Bootstrap>>,
    /// See [`Config::mdns`].
    pub mdns: Option<bool>,
    /// See [`Config::dht_mode`]: `"auto"`, `"server"` or `"client"`.
    pub dht_mode: Option<String>,
    /// Deprecated alias: `true` is `dht_mode = "server"`, `false` is
    /// `"client"`; `dht_mode` wins when both are set.
    pub dht_server: Option<bool>,
    /// See [`Config::relay_server`].
    pub relay_server: Option<bool>,
    /// See [`Config::upnp`].
    pub upnp: Option<bool>,
    /// See [`Config::relays`].
    pub relays: Option<Vec<Multiaddr>>,
    /// See [`Config::external_addrs`].
    pub external_addrs: Option<Vec<Multiaddr>>,
    /// See [`RelayLimits::max_reservations`].
    pub relay_max_reservations: Option<usize>,
    /// See [`RelayLimits::max_circuits`].
    pub relay_max_circuits: Option<usize>,
    /// See [`RelayLimits::max_circuits_per_peer`].
    pub relay_max_circuits_per_peer: Option<usize>,
    /// See [`RelayLimits::max_circuit_duration`], in seconds.
    pub relay_circuit_secs: Option<u64>,
    /// See [`RelayLimits::max_circuit_bytes`].
    pub relay_circuit_bytes: Option<u64>,
    /// See [`Config::api`].
    pub api: Option<SocketAddr>,
    /// See [`Config::locator_ttl`], in seconds.
    pub locator_ttl_secs: Option<u64>,
    /// See [`Config::idle_timeout`], in seconds.
    pub idle_timeout_secs: Option<u64>,
    /// See [`Config::max_incoming_connections`].
    pub max_incoming_connections: Option<u32>,
    /// See [`Config::cache_bytes`].
    pub cache_bytes: Option<u64>,
    /// See [`MailboxConfig::replicas`].
    pub mailbox_replicas: Option<usize>,
    /// See [`MailboxConfig::poll`], in seconds.
    pub mailbox_poll_secs: Option<u64>,
    /// See [`MailboxConfig::ttl`], in seconds.
    pub mailbox_ttl_secs: Option<u64>,
    /// See [`Config::auto_away`], in minutes; 0 disables it.
    pub auto_away_mins: Option<u64>,
    /// The `[files]` table: see [`FilesConfig`].
    pub files: Option<FilesSection>,
    /// The `[rooms]` table: see [`RoomLimits`].
    pub rooms: Option<RoomsSection>,
}

/// Parses a `dht_mode` value.
pub fn parse_dht_mode(s: &str) -> Result<DhtMode, String> {
    match s {
        "auto" => Ok(DhtMode::Auto),
        "server" => Ok(DhtMode::Server),
        "client" => Ok(DhtMode::Client),
        other => Err(format!(
            "dht_mode must be \"auto\", \"server\" or \"client\", not {other:?}"
        )),
    }
}

impl FileConfig {
    fn apply_relay_limits(&self, l: &mut RelayLimits) {
        if let Some(v) = self.relay_max_reservations {
            l.max_reservations = v;
        }
        if let Some(v) = self.relay_max_circuits {
            l.max_circuits = v;
        }
        if let Some(v) = self.relay_max_circuits_per_peer {
            l.max_circuits_per_peer = v;
        }
        if let Some(v) = self.relay_circuit_secs {
            l.max_circuit_duration = Duration::from_secs(v);
        }
        if let Some(v) = self.relay_circuit_bytes {
            l.max_circuit_bytes = v;
        }
    }

    fn apply_mailbox(&self, m: &mut MailboxConfig) {
        if let Some(v) = self.mailbox_replicas {
            m.replicas = v.clamp(1, 20);
        }
        if let Some(v) = self.mailbox_poll_secs {
            m.poll = Duration::from_secs(v.max(1));
        }
        if let Some(v) = self.mailbox_ttl_secs {
            m.ttl = Duration::from_secs(v.max(60));
        }
    }

    fn apply(self, c: &mut Config) -> Result<(), String> {
        self.apply_relay_limits(&mut c.relay_limits);
        self.apply_mailbox(&mut c.mailbox);
        if let Some(v) = self.dht_server {
            c.dht_mode = if v { DhtMode::Server } else { DhtMode::Client };
        }
        if let Some(v) = &self.dht_mode {
            c.dht_mode = parse_dht_mode(v)?;
        }
        if let Some(v) = self.relay_server {
            c.relay_server = v;
        }
        if let Some(v) = self.upnp {
            c.upnp = v;
        }
        if let Some(v) = self.relays {
            c.relays = v;
        }
        if let Some(v) = self.external_addrs {
            c.external_addrs = v;
        }
        if let Some(v) = self.listen {
            c.listen = v;
        }
        if let Some(v) = self.bootstrap {
            c.bootstrap.clear();
            c.bootstrap_invites.clear();
            for b in v {
                b.add_to(c);
            }
        }
        if let Some(v) = self.mdns {
            c.mdns = v;
        }
        if let Some(v) = self.api {
            c.api = v;
        }
        if let Some(v) = self.locator_ttl_secs {
            c.locator_ttl = Duration::from_secs(v.max(60));
        }
        if let Some(v) = self.idle_timeout_secs {
            c.idle_timeout = Duration::from_secs(v);
            // A peer met by a lookup stays connected only this long: the
            // threshold for remembering it must be shorter.
            c.lasting_connection = c.lasting_connection.min(c.idle_timeout / 2);
        }
        if let Some(v) = self.max_incoming_connections {
            c.max_incoming_connections = v.max(1);
        }
        if let Some(v) = self.cache_bytes {
            c.cache_bytes = v;
        }
        if let Some(v) = self.auto_away_mins {
            c.auto_away = (v > 0).then(|| Duration::from_secs(v * 60));
        }
        if let Some(v) = self.files {
            v.apply(&mut c.files);
        }
        if let Some(v) = self.rooms {
            v.apply(&mut c.room_limits)?;
        }
        Ok(())
    }
}

/// One way into the network as the user gives it (`--bootstrap`, the
/// `bootstrap` list in `config.toml`): a peer's full multiaddr
/// (`…/p2p/<ID>`), or anything else, taken as an invite (`roost:…`) and
/// checked by the node when it starts (the invite format lives above this
/// layer, in `wire::invite`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Bootstrap {
    /// A peer's address.
    Addr(Multiaddr),
    /// An invite's text.
    Invite(String),
}

/// A bootstrap entry that looks like a multiaddr (it starts with `/`) but
/// is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a multiaddr such as /ip4/192.0.2.10/tcp/7117/p2p/<ID> (nor a roost: invite)")]
pub struct BadBootstrap(pub String);

impl Bootstrap {
    /// Adds the entry to `config`'s bootstrap addresses or invites.
    pub fn add_to(self, config: &mut Config) {
        match self {
            Self::Addr(a) => config.bootstrap.push(a),
            Self::Invite(i) => config.bootstrap_invites.push(i),
        }
    }
}

impl std::str::FromStr for Bootstrap {
    type Err = BadBootstrap;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if !text.starts_with('/') {
            return Ok(Self::Invite(text.to_string()));
        }
        text.parse()
            .map(Self::Addr)
            .map_err(|_| BadBootstrap(text.to_string()))
    }
}

impl TryFrom<String> for Bootstrap {
    type Error = BadBootstrap;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
