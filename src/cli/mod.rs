//! The `roost` command line: its arguments (here), what each command does
//! ([`commands`]), how results are printed ([`output`]) and the one-process
//! demo ([`demo`]). It belongs to the binary: the library knows nothing of
//! it. Every command that needs the daemon goes through the local API's
//! client with the request types of [`roost::api`], so the server's rules
//! (names, presence states, limits) are applied in one place, the server.

pub(crate) mod chat;
pub(crate) mod commands;
pub(crate) mod demo;
pub(crate) mod files;
pub(crate) mod group;
pub(crate) mod open;
pub(crate) mod output;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use libp2p::Multiaddr;

/// roost — a peer-to-peer instant messenger with no server in the middle.
///
/// Run `roost init` once, then `roost daemon`; give your ID (`roost id`) to
/// friends and add theirs with `roost buddy add`. Every other command talks
/// to the running daemon. `roost demo` shows the whole story on one machine.
#[derive(Debug, Parser)]
#[command(name = "roost", version, propagate_version = true)]
pub(crate) struct Cli {
    /// Where roost keeps its key, database and settings
    /// [default: $ROOST_HOME, else the platform data dir, e.g. ~/.local/share/roost]
    #[arg(long, global = true, env = "ROOST_HOME", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Print JSON only: one object, or one object per line for lists.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Cmd,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Cmd {
    /// Create a new identity (an ed25519 key) and print its ID.
    Init,
    /// Print my ID (and, while the daemon runs, its addresses).
    Id {
        /// Also print the ID as a QR code for a phone to scan.
        #[arg(long)]
        qr: bool,
    },
    /// Print an invite: my ID and the addresses that reach my node now,
    /// signed, with an expiry, as a `roost:` link and its QR code. Whoever
    /// has it can add me with `roost buddy add <invite>`, and needs nothing
    /// else to reach me.
    Invite {
        /// How long the invite stays valid, e.g. 30m, 12h, 7d, 2w (at most 90 days).
        #[arg(long, value_name = "DURATION", default_value = "7d")]
        expires: String,
        /// Print the link only, without its QR code.
        #[arg(long)]
        no_qr: bool,
    },
    /// Run my node: DHT, presence, delivery, mailboxes, plus the local API.
    Daemon(DaemonArgs),
    /// Show the running daemon's state.
    Status,
    /// Manage buddies: adding a key lets it see my presence.
    #[command(subcommand)]
    Buddy(BuddyCmd),
    /// Show my buddies' presence, or set mine with `presence set`.
    Presence {
        #[command(subcommand)]
        set: Option<PresenceCmd>,
    },
    /// Send a message (direct if the buddy is online, else into its
    /// replicated mailboxes; kept in the outbox until accepted).
    Send {
        /// Recipient: a buddy's name or an ID.
        to: String,
        /// The message text (or use --file).
        #[arg(required_unless_present = "file")]
        text: Option<String>,
        /// MIME type of the body.
        #[arg(long = "type", value_name = "MIME", default_value = "text/plain")]
        content_type: String,
        /// Offer a file instead: it moves verified, resumable, over its
        /// own protocol (`roost files`).
        #[arg(long, value_name = "PATH", conflicts_with = "text")]
        file: Option<PathBuf>,
        /// With --file: stay until the file was sent, showing progress.
        #[arg(long, requires = "file")]
        wait: bool,
    },
    /// List file transfers, or get or cancel one.
    Files {
        #[command(subcommand)]
        cmd: Option<files::FilesCmd>,
    },
    /// Show received messages.
    Inbox {
        /// Keep running and print new messages as they arrive.
        #[arg(long)]
        follow: bool,
        /// Only messages from this buddy (name or ID).
        #[arg(long, value_name = "NAME|ID")]
        from: Option<String>,
    },
    /// Show the conversation with a buddy, both directions, with states.
    Log {
        /// The buddy's name or ID.
        peer: String,
        /// How many of the latest messages.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Mark the conversation with a buddy read (sends a read receipt).
    Read {
        /// The buddy's name or ID.
        peer: String,
    },
    /// Private groups and public rooms: create [--public], invite, join, leave,
    /// remove, ban, list, members, send, log.
    #[command(subcommand)]
    Group(group::GroupCmd),
    /// Run the whole story on this machine: a small network in one process.
    Demo,
    /// Chat full-screen in this terminal: buddies, conversations, live updates.
    Chat,
    /// Open the web app in the browser, logged in with a one-time link.
    Open(open::OpenArgs),
    /// Print a shell completion script.
    Completions {
        /// Which shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct DaemonArgs {
    /// Listen address, repeatable [default: TCP and QUIC on port 7117, all interfaces].
    #[arg(long, value_name = "MULTIADDR")]
    pub(crate) listen: Vec<Multiaddr>,
    /// Join the network through this peer (…/p2p/<ID>) or through the
    /// addresses of an invite (roost:…), repeatable.
    #[arg(long, value_name = "MULTIADDR|INVITE")]
    pub(crate) bootstrap: Vec<roost::config::Bootstrap>,
    /// Do not look for peers on the local network (multicast DNS).
    #[arg(long)]
    pub(crate) no_mdns: bool,
    /// Address of the local API [default: 127.0.0.1:0, any free port].
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) api: Option<std::net::SocketAddr>,
    /// Serve the DHT: auto (only while reachable), server, or client
    /// [default: auto].
    #[arg(long, value_name = "MODE", value_parser = roost::config::parse_dht_mode)]
    pub(crate) dht_mode: Option<roost::config::DhtMode>,
    /// Relay for NATed peers while reachable (the default).
    #[arg(long, overrides_with = "no_relay_server")]
    pub(crate) relay_server: bool,
    /// Never relay for others.
    #[arg(long)]
    pub(crate) no_relay_server: bool,
    /// Do not ask the router for a port mapping (UPnP).
    #[arg(long)]
    pub(crate) no_upnp: bool,
    /// An address others can dial this node on (public IP, forwarded
    /// port), repeatable: the node counts as reachable without a test.
    #[arg(long, value_name = "MULTIADDR")]
    pub(crate) external_addr: Vec<Multiaddr>,
    /// Reserve on this relay (…/p2p/<ID>) while not reachable, repeatable.
    #[arg(long, value_name = "MULTIADDR")]
    pub(crate) relay: Vec<Multiaddr>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BuddyCmd {
    /// Add a buddy by ID or invite (also accepts its buddy request). An
    /// invite's addresses are used to reach the buddy and to join the
    /// network.
    Add {
        /// The buddy's ID, or an invite (roost:…).
        id: String,
        /// My name for it.
        #[arg(long)]
        name: Option<String>,
    },
    /// List buddies with their presence.
    List,
    /// List keys that added me and that I have not added.
    Requests,
    /// Remove a buddy (it no longer sees my presence).
    Remove {
        /// Name or ID.
        buddy: String,
    },
    /// Give a buddy a new name.
    Rename {
        /// Name or ID.
        buddy: String,
        /// The new name.
        name: String,
    },
    /// Hide my presence from a buddy (it sees me offline).
    Hide {
        /// Name or ID.
        buddy: String,
    },
    /// Show my presence to a buddy again.
    Show {
        /// Name or ID.
        buddy: String,
    },
    /// Refuse everything from a key.
    Block {
        /// Name or ID.
        buddy: String,
    },
    /// Stop refusing a key.
    Unblock {
        /// Name or ID.
        buddy: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PresenceCmd {
    /// Set my presence: online, away, busy or invisible (appear offline).
    Set {
        /// online | away | busy | invisible
        state: String,
        /// A note, e.g. "lunch, back at 14:00" (≤ 256 characters).
        #[arg(long)]
        note: Option<String>,
        /// What I am doing.
        #[arg(long)]
        activity: Option<String>,
        /// Where I am.
        #[arg(long)]
        location: Option<String>,
        /// Until when, e.g. 14:00.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
    },
}
