//! What each command does: one function per command, each a request to the
//! daemon's local API (or, for `init`, `id`, `daemon` and `demo`, a call
//! into the library) and its output.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::CommandFactory;
use roost::api::client::{ApiClient, escape};
use roost::api::terminal::printable_line as field;
use roost::api::{
    AddBuddy, BuddyAction, BuddyActionView, BuddyRow, Empty, EventView, IdView, InviteView,
    MessageView, OwnPresence, ReadView, RequestRow, SendRequest, SendView, StatusView,
};
use roost::{Config, Identity, Node, config};
use serde_json::json;

use super::output::{Out, indented, qr_text};
use super::{BuddyCmd, Cli, Cmd, DaemonArgs, PresenceCmd};

/// Runs the parsed command line.
pub(crate) async fn run(cli: Cli) -> Result<()> {
    let data_dir = config::data_dir(cli.data_dir.clone())?;
    let out = Out { json: cli.json };
    let api = || ApiClient::open(&data_dir);
    match cli.command {
        Cmd::Init => init(&data_dir, &out),
        Cmd::Id { qr } => id(&data_dir, &out, qr).await,
        Cmd::Status => status(&api()?, &out).await,
        Cmd::Invite { expires, no_qr } => invite(&api()?, &out, &expires, no_qr).await,
        Cmd::Daemon(args) => daemon(data_dir, args).await,
        Cmd::Buddy(cmd) => buddy(&api()?, &out, cmd).await,
        Cmd::Group(cmd) => super::group::run(&api()?, &out, cmd).await,
        Cmd::Presence { set: None } => presence_of_buddies(&api()?, &out).await,
        Cmd::Presence { set: Some(set) } => set_presence(&api()?, &out, set).await,
        Cmd::Send {
            to,
            file: Some(path),
            wait,
            ..
        } => super::files::send(&api()?, &out, to, &path, wait).await,
        Cmd::Send {
            to,
            text,
            content_type,
            ..
        } => send(&api()?, &out, to, text, content_type).await,
        Cmd::Files { cmd } => super::files::run(&api()?, &out, cmd).await,
        Cmd::Inbox { follow, from } => inbox(&api()?, &out, follow, from).await,
        Cmd::Chat => super::chat::run(api).await,
        Cmd::Log { peer, limit } => {
            let rows: Vec<MessageView> = api()?
                .get(&format!("log/{}?limit={limit}", escape(&peer)))
                .await?;
            out.rows(&rows, |m| {
                let arrow = if m.direction == "in" { "<" } else { ">" };
                format!("{arrow} {:<9} {}", field(&m.state), indented(&m.shown()))
            })
        }
        Cmd::Read { peer } => {
            let v: ReadView = api()?
                .post(&format!("read/{}", escape(&peer)), &Empty {})
                .await?;
            out.object(&v, || format!("{} marked read", v.read))
        }
        Cmd::Open(args) => super::open::run(&api()?, &out, &data_dir, args).await,
        Cmd::Demo => {
            let mut stdout = std::io::stdout();
            super::demo::run(|line| {
                let _ = writeln!(stdout, "{line}");
            })
            .await?;
            Ok(())
        }
        Cmd::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "roost", &mut std::io::stdout());
            Ok(())
        }
    }
}

fn init(data_dir: &Path, out: &Out) -> Result<()> {
    let id = Identity::create_in(data_dir)?;
    out.object(&json!({ "id": id.peer_id().to_string() }), || {
        format!(
            "Created identity {}\nin {}\nGive this ID to your buddies; start your node with `roost daemon`.",
            id.peer_id(),
            data_dir.display()
        )
    })
}

async fn id(data_dir: &Path, out: &Out, qr: bool) -> Result<()> {
    let id = Identity::load_from(data_dir)?;
    let addrs = match ApiClient::open(data_dir) {
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
    if qr && !out.json {
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

async fn invite(client: &ApiClient, out: &Out, expires: &str, no_qr: bool) -> Result<()> {
    // The daemon judges the duration; it answers what it refuses.
    let v: InviteView = client
        .get(&format!("invite?expires={}", escape(expires)))
        .await?;
    out.object(&v, || {
        let mut s = v.uri.clone();
        if !no_qr {
            match qr_text(&v.uri) {
                Ok(qr) => s = format!("{qr}\n{s}"),
                Err(e) => s.push_str(&format!("\n(no QR code: {e})")),
            }
        }
        format!(
            "{s}\nvalid until {}; whoever has it can add you as a buddy with\n  roost buddy add <invite>",
            field(&v.expires)
        )
    })
}

async fn status(client: &ApiClient, out: &Out) -> Result<()> {
    let s: StatusView = client.get("status").await?;
    out.object(&s, || {
        let mut text = format!(
            "{}\npeers connected: {}\nbuddies: {}\noutbox: {} waiting\nheld for others: {}\n{}",
            s.id,
            s.peers,
            s.buddies,
            s.outbox,
            s.held,
            reachability_words(&s.reachability)
        );
        if s.relays.is_empty() {
            text.push_str("\nrelays: none");
        }
        for r in &s.relays {
            text.push_str(&format!("\nreachable through relay {}", field(r)));
        }
        for c in &s.connections {
            let how = if c.relayed {
                "relayed via"
            } else {
                "direct at"
            };
            text.push_str(&format!(
                "\nconnected to {} {how} {}",
                field(&c.peer),
                field(&c.addr)
            ));
        }
        text
    })
}

/// What a reachability means for the user.
fn reachability_words(r: &str) -> String {
    match r {
        "public" => "reachability: public (others can connect to this node directly)".into(),
        "private" => {
            "reachability: private (behind a NAT or firewall; others reach this node through relays)"
                .into()
        }
        "unknown" => "reachability: unknown (not tested yet)".into(),
        other => format!("reachability: {}", field(other)),
    }
}

async fn presence_of_buddies(client: &ApiClient, out: &Out) -> Result<()> {
    let rows: Vec<BuddyRow> = client.get("presence/buddies").await?;
    out.rows(&rows, |b| {
        let note = b
            .note
            .as_deref()
            .map(|n| format!("  \"{}\"", field(n)))
            .unwrap_or_default();
        format!("{:<16} {:<8}{}", field(&b.name), field(&b.status), note)
    })
}

async fn set_presence(client: &ApiClient, out: &Out, set: PresenceCmd) -> Result<()> {
    let PresenceCmd::Set {
        state,
        note,
        activity,
        location,
        until,
    } = set;
    // The daemon knows the states and the limits; it answers what it refuses.
    let body = OwnPresence {
        status: state,
        note,
        activity,
        location,
        until,
    };
    let v: OwnPresence = client.post("presence", &body).await?;
    out.object(&v, || format!("presence: {}", field(&v.status)))
}

async fn send(
    client: &ApiClient,
    out: &Out,
    to: String,
    text: Option<String>,
    content_type: String,
) -> Result<()> {
    let Some(text) = text else {
        bail!("give the message text or --file");
    };
    let body = SendRequest {
        to,
        text: Some(text),
        hex: None,
        base64: None,
        content_type: Some(content_type),
        subject: None,
    };
    let v: SendView = client.post("send", &body).await?;
    out.object(&v, || format!("{} {}", field(&v.id), field(&v.state)))
}

async fn inbox(client: &ApiClient, out: &Out, follow: bool, from: Option<String>) -> Result<()> {
    // Open the event stream first, so nothing that arrives while we list
    // the inbox is missed; skip what was already listed. The daemon
    // resolves `from` and filters the stream.
    let mut events = if follow {
        Some(client.events(from.as_deref()).await?)
    } else {
        None
    };
    let path = match &from {
        Some(f) => format!("inbox?from={}", escape(f)),
        None => "inbox".to_string(),
    };
    let rows: Vec<MessageView> = client.get(&path).await?;
    let show = |m: &MessageView| {
        let who = m.from_name.as_deref().unwrap_or(&m.from);
        format!("{}: {}", field(who), indented(&m.shown()))
    };
    out.rows(&rows, show)?;
    if let Some(events) = events.as_mut() {
        let mut seen: std::collections::HashSet<String> = rows.into_iter().map(|m| m.id).collect();
        while let Some(ev) = events.next().await? {
            if let EventView::Message(m) = ev
                && seen.insert(m.id.clone())
            {
                out.rows(std::slice::from_ref(&m), show)?;
            }
        }
    }
    Ok(())
}

async fn buddy(client: &ApiClient, out: &Out, cmd: BuddyCmd) -> Result<()> {
    let action = |buddy: String, action: &'static str, body: BuddyAction| async move {
        let v: BuddyActionView = client
            .post(&format!("buddies/{}/{action}", escape(&buddy)), &body)
            .await?;
        out.object(&v, || format!("{action}: done"))
    };
    match cmd {
        BuddyCmd::Add { id, name } => {
            // Which of the two the text is meant as; the daemon judges it.
            let body = if roost::wire::invite::looks_like_invite(&id) {
                AddBuddy {
                    id: None,
                    name,
                    invite: Some(id),
                }
            } else {
                AddBuddy {
                    id: Some(id),
                    name,
                    invite: None,
                }
            };
            let row: BuddyRow = client.post("buddies", &body).await?;
            out.object(&row, || {
                format!("added {} as {}", field(&row.id), field(&row.name))
            })
        }
        BuddyCmd::List => {
            let rows: Vec<BuddyRow> = client.get("buddies").await?;
            out.rows(&rows, |b| {
                let mut flags = String::new();
                if b.hidden {
                    flags.push_str(" (hidden from)");
                }
                if b.blocked {
                    flags.push_str(" (blocked)");
                }
                format!(
                    "{:<16} {:<8} {}{flags}",
                    field(&b.name),
                    field(&b.status),
                    field(&b.id)
                )
            })
        }
        BuddyCmd::Requests => {
            let rows: Vec<RequestRow> = client.get("requests").await?;
            out.rows(&rows, |r| {
                let id = field(&r.id);
                format!("{id} wants to be your buddy: roost buddy add {id}")
            })
        }
        BuddyCmd::Remove { buddy } => action(buddy, "remove", BuddyAction::default()).await,
        BuddyCmd::Rename { buddy, name } => {
            action(buddy, "rename", BuddyAction { name: Some(name) }).await
        }
        BuddyCmd::Hide { buddy } => action(buddy, "hide", BuddyAction::default()).await,
        BuddyCmd::Show { buddy } => action(buddy, "show", BuddyAction::default()).await,
        BuddyCmd::Block { buddy } => action(buddy, "block", BuddyAction::default()).await,
        BuddyCmd::Unblock { buddy } => action(buddy, "unblock", BuddyAction::default()).await,
    }
}

async fn daemon(data_dir: PathBuf, args: DaemonArgs) -> Result<()> {
    let mut config = Config::new(data_dir.clone());
    config.apply_file()?;
    if !args.listen.is_empty() {
        config.listen = args.listen;
    }
    for b in args.bootstrap {
        b.add_to(&mut config);
    }
    if args.no_mdns {
        config.mdns = false;
    }
    if let Some(api) = args.api {
        config.api = api;
    }
    if let Some(mode) = args.dht_mode {
        config.dht_mode = mode;
    }
    if args.relay_server {
        config.relay_server = true;
    }
    if args.no_relay_server {
        config.relay_server = false;
    }
    if args.no_upnp {
        config.upnp = false;
    }
    config.external_addrs.extend(args.external_addr);
    config.relays.extend(args.relay);
    let node = Node::start(config.clone()).await?;
    let api = roost::api::serve(node.clone(), config.api, &data_dir).await?;
    tracing::info!(id = %node.peer_id(), api = %api.addr, socket = %api.socket.display(), "roost daemon running");
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
