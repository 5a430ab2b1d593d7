//! The `roost` command: a thin layer that parses arguments, talks to the
//! library or the running daemon's local API, and prints. Exit codes: 0 ok,
//! 1 error (one line on stderr), 2 usage error.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use libp2p::Multiaddr;
use roost::api::client::ApiClient;
use roost::api::{IdView, MessageView, SendView, StatusView};
use roost::{Config, Identity, Node, config};

/// roost — a peer-to-peer instant messenger with no server in the middle.
///
/// Run `roost init` once, then `roost daemon`; give your ID (`roost id`) to
/// friends. Every other command talks to the running daemon.
#[derive(Debug, Parser)]
#[command(name = "roost", version, propagate_version = true)]
struct Cli {
    /// Where roost keeps its key, database and settings
    /// [default: $ROOST_HOME, else the platform data dir, e.g. ~/.local/share/roost]
    #[arg(long, global = true, env = "ROOST_HOME", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Print JSON only: one object, or one object per line for lists.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create a new identity (an ed25519 key) and print its ID.
    Init,
    /// Print my ID (and, while the daemon runs, its addresses).
    Id {
        /// Also print the ID as a QR code for a phone to scan.
        #[arg(long)]
        qr: bool,
    },
    /// Run my node: DHT, presence and delivery, plus the local API.
    Daemon(DaemonArgs),
    /// Show the running daemon's state.
    Status,
    /// Send a message (direct when the recipient is online; kept in the
    /// outbox and retried until it is accepted).
    Send {
        /// Recipient ID.
        to: String,
        /// The message text.
        text: String,
        /// MIME type of the body.
        #[arg(long = "type", value_name = "MIME", default_value = "text/plain")]
        content_type: String,
    },
    /// Show the conversation with a peer, both directions.
    Log {
        /// The peer's ID.
        peer: String,
        /// How many of the latest messages.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Show received messages.
    Inbox,
    /// Mark the conversation with a peer read (sends a read receipt).
    Read {
        /// The peer's ID.
        peer: String,
    },
    /// Print a shell completion script.
    Completions {
        /// Which shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, clap::Args)]
struct DaemonArgs {
    /// Listen address, repeatable [default: TCP and QUIC on port 7117, all interfaces].
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<Multiaddr>,
    /// Join the network through this peer (…/p2p/<ID>), repeatable.
    #[arg(long, value_name = "MULTIADDR")]
    bootstrap: Vec<Multiaddr>,
    /// Do not look for peers on the local network (multicast DNS).
    #[arg(long)]
    no_mdns: bool,
    /// Address of the local API [default: 127.0.0.1:0, any free port].
    #[arg(long, value_name = "ADDR:PORT")]
    api: Option<std::net::SocketAddr>,
}

fn main() {
    let cli = Cli::parse();
    let default_log = if matches!(cli.command, Cmd::Daemon(_)) {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log)),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|rt| rt.block_on(run(cli)));
    if let Err(e) = result {
        eprintln!("roost: {}", one_line(&e));
        std::process::exit(1);
    }
}

/// The error and its causes on one line, as scripts expect.
fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}

async fn run(cli: Cli) -> Result<()> {
    let data_dir = config::data_dir(cli.data_dir.clone())?;
    let out = Out { json: cli.json };
    match cli.command {
        Cmd::Init => {
            let id = Identity::create_in(&data_dir)?;
            out.object(&serde_json::json!({ "id": id.peer_id().to_string() }), || {
                format!(
                    "Created identity {}\nin {}\nGive this ID to your buddies; start your node with `roost daemon`.",
                    id.peer_id(),
                    data_dir.display()
                )
            })
        }
        Cmd::Id { qr } => {
            let id = Identity::load_from(&data_dir)?;
            let addrs = match ApiClient::open(&data_dir) {
                Ok(c) => c
                    .get::<IdView>("id")
                    .await
                    .map(|v| v.addrs)
                    .unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            let view = IdView {
                id: id.peer_id().to_string(),
                addrs,
            };
            if qr && !cli.json {
                println!("{}", qr_text(&view.id)?);
            }
            out.object(&view, || {
                let mut s = view.id.clone();
                for a in &view.addrs {
                    s.push_str(&format!("\n  {a}"));
                }
                if view.addrs.is_empty() {
                    s.push_str("\n  (daemon not running: no addresses)");
                }
                s
            })
        }
        Cmd::Status => {
            let client = ApiClient::open(&data_dir)?;
            let s: StatusView = client.get("status").await?;
            out.object(&s, || {
                format!(
                    "{}\npeers: {}\noutbox: {}\nheld for others: {}",
                    s.id, s.peers, s.outbox, s.held
                )
            })
        }
        Cmd::Send {
            to,
            text,
            content_type,
        } => {
            roost::identity::parse_id(&to)?;
            let client = ApiClient::open(&data_dir)?;
            let body = serde_json::json!({ "to": to, "text": text, "content_type": content_type });
            let v: SendView = client.post("send", &body).await?;
            out.object(&v, || format!("{} {}", v.id, v.state))
        }
        Cmd::Log { peer, limit } => {
            roost::identity::parse_id(&peer)?;
            let client = ApiClient::open(&data_dir)?;
            let rows: Vec<MessageView> = client.get(&format!("log/{peer}?limit={limit}")).await?;
            out.rows(&rows, |m| {
                format!(
                    "{} {:>9} {}",
                    if m.direction == "in" { "<" } else { ">" },
                    m.state,
                    m.text
                )
            })
        }
        Cmd::Inbox => {
            let client = ApiClient::open(&data_dir)?;
            let rows: Vec<MessageView> = client.get("inbox").await?;
            out.rows(&rows, |m| format!("{}: {}", m.peer, m.text))
        }
        Cmd::Read { peer } => {
            roost::identity::parse_id(&peer)?;
            let client = ApiClient::open(&data_dir)?;
            let v: serde_json::Value = client
                .post(&format!("read/{peer}"), &serde_json::json!({}))
                .await?;
            out.object(&v, || format!("{} marked read", v["read"]))
        }
        Cmd::Daemon(args) => daemon(data_dir, args).await,
        Cmd::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "roost", &mut std::io::stdout());
            Ok(())
        }
    }
}

async fn daemon(data_dir: PathBuf, args: DaemonArgs) -> Result<()> {
    let mut config = Config::new(data_dir.clone());
    config.apply_file()?;
    if !args.listen.is_empty() {
        config.listen = args.listen;
    }
    config.bootstrap.extend(args.bootstrap);
    if args.no_mdns {
        config.mdns = false;
    }
    if let Some(api) = args.api {
        config.api = api;
    }
    let node = Node::start(config.clone()).await?;
    let api = roost::api::serve(node.clone(), config.api, &data_dir).await?;
    tracing::info!(id = %node.peer_id(), api = %api.addr, "roost daemon running");
    wait_for_signal().await?;
    tracing::info!("shutting down");
    api.stop();
    node.shutdown().await?;
    Ok(())
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

fn qr_text(id: &str) -> Result<String> {
    let code = qrcode::QrCode::new(id.as_bytes())?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .quiet_zone(true)
        .build())
}

/// Printing in the two modes: human text, or JSON only.
struct Out {
    json: bool,
}

impl Out {
    fn object<T: serde::Serialize>(&self, value: &T, human: impl FnOnce() -> String) -> Result<()> {
        let mut stdout = std::io::stdout().lock();
        if self.json {
            serde_json::to_writer(&mut stdout, value)?;
            writeln!(stdout)?;
        } else {
            writeln!(stdout, "{}", human())?;
        }
        Ok(())
    }

    fn rows<T: serde::Serialize>(&self, rows: &[T], human: impl Fn(&T) -> String) -> Result<()> {
        let mut stdout = std::io::stdout().lock();
        for r in rows {
            if self.json {
                serde_json::to_writer(&mut stdout, r)?;
                writeln!(stdout)?;
            } else {
                writeln!(stdout, "{}", human(r))?;
            }
        }
        Ok(())
    }
}
