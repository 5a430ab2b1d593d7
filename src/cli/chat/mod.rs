//! `roost chat`: a full-screen chat in the terminal. It reaches the daemon
//! only through the local API, like every other command: the buddies and
//! received messages once, each conversation's history when it is opened,
//! and live changes from the event stream. The state and its rules are in
//! [`model`], the drawing in [`view`]; this module is the loop between
//! them and the terminal and the daemon.

mod model;
mod view;

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ratatui::crossterm::event::{self, Event};
use roost::api::client::{ApiClient, EventStream, escape};
use roost::api::{
    BuddyRow, Empty, FileRow, GetFileRequest, MessageView, ReadView, SendRequest, SendView,
};
use tokio::sync::mpsc;

use model::{App, ConvId, Effect, Input, Key};

/// How many messages of a conversation are fetched when it is opened.
const HISTORY: usize = 200;
/// How often the key reader looks whether the chat has ended.
const KEY_POLL: Duration = Duration::from_millis(200);

/// Runs the chat until the user quits; the terminal is restored on every
/// way out (an error, a panic: ratatui's hook restores it first).
/// `client` is asked for only once stdout is known to be a terminal.
pub(crate) async fn run(
    client: impl FnOnce() -> Result<ApiClient, roost::api::client::ClientError>,
) -> Result<()> {
    if !std::io::stdout().is_terminal() {
        bail!(
            "`roost chat` needs a terminal: stdout is not one (scripts use `roost send` and `roost inbox --follow`)"
        );
    }
    let client = Arc::new(client()?);
    // The event stream first: nothing that happens while the lists are
    // fetched is missed.
    let events = client.events(None).await?;
    let buddies: Vec<BuddyRow> = client.get("buddies").await?;
    let inbox: Vec<MessageView> = client.get("inbox").await?;
    let files: Vec<FileRow> = client.get("files").await?;

    let (tx, mut rx) = mpsc::channel::<Input>(256);
    tokio::spawn(forward_events(events, tx.clone()));

    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            ratatui::restore(); // whatever part was set up
            return Err(e).context("cannot set up the terminal");
        }
    };
    let done = Arc::new(AtomicBool::new(false));
    let (key_tx, mut key_rx) = mpsc::channel::<Option<Key>>(64);
    let reader = {
        let done = done.clone();
        std::thread::spawn(move || read_keys(&key_tx, &done))
    };
    let snapshot = Input::Snapshot {
        buddies,
        inbox,
        files,
    };
    let result = drive(&mut terminal, snapshot, &client, &tx, &mut rx, &mut key_rx).await;
    done.store(true, Ordering::Relaxed);
    ratatui::restore();
    let _ = reader.join();
    result
}

/// Passes the daemon's events on to the chat as inputs; when the stream
/// ends or fails, says so once, as an error the chat shows.
async fn forward_events(mut events: EventStream, tx: mpsc::Sender<Input>) {
    let gone = loop {
        match events.next().await {
            Ok(Some(ev)) => {
                if tx.send(Input::Event(ev)).await.is_err() {
                    return;
                }
            }
            Ok(None) => break "the daemon ended the event stream".to_string(),
            Err(e) => break e.to_string(),
        }
    };
    let _ = tx
        .send(Input::Error(format!("no live updates: {gone}")))
        .await;
}

/// The chat's loop: hands `snapshot`, then each key and each input from
/// the daemon, to the model, draws it, and carries out what it asks for,
/// until the model quits or a source of input is gone.
async fn drive(
    terminal: &mut ratatui::DefaultTerminal,
    snapshot: Input,
    client: &Arc<ApiClient>,
    tx: &mpsc::Sender<Input>,
    rx: &mut mpsc::Receiver<Input>,
    key_rx: &mut mpsc::Receiver<Option<Key>>,
) -> Result<()> {
    let mut app = App::default();
    if carry_out(app.handle(snapshot), client, tx) {
        return Ok(());
    }
    loop {
        terminal.draw(|f| view::draw(f, &app))?;
        let input = tokio::select! {
            k = key_rx.recv() => match k {
                Some(Some(k)) => Input::Key(k),
                Some(None) => continue, // resized: drawn again
                None => return Ok(()),  // the terminal is gone
            },
            i = rx.recv() => match i {
                Some(i) => i,
                None => return Ok(()),
            },
        };
        if carry_out(app.handle(input), client, tx) {
            return Ok(());
        }
    }
}

/// Reads the terminal's keys on a thread of its own (crossterm's reads
/// block) until `done`: a key the chat knows as `Some`, a resize as
/// `None`.
fn read_keys(tx: &mpsc::Sender<Option<Key>>, done: &AtomicBool) {
    while !done.load(Ordering::Relaxed) {
        match event::poll(KEY_POLL) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(_) => return,
        }
        let sent = match event::read() {
            Ok(Event::Key(k)) => match Key::from_event(k) {
                Some(k) => tx.blocking_send(Some(k)),
                None => Ok(()),
            },
            Ok(Event::Resize(..)) => tx.blocking_send(None),
            Ok(_) => Ok(()),
            Err(_) => return,
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Starts the API calls `effects` ask for, each answering into `tx`;
/// true if the chat is to end.
fn carry_out(effects: Vec<Effect>, client: &Arc<ApiClient>, tx: &mpsc::Sender<Input>) -> bool {
    for effect in effects {
        let (client, tx) = (client.clone(), tx.clone());
        match effect {
            Effect::Quit => return true,
            Effect::LoadLog(id) => {
                tokio::spawn(async move {
                    let path = format!("log/{}?limit={HISTORY}&parts=false", escape(id.api_name()));
                    let input = match client.get::<Vec<MessageView>>(&path).await {
                        Ok(msgs) => Input::Log(id, msgs),
                        Err(e) => Input::Error(format!("cannot fetch the conversation: {e}")),
                    };
                    let _ = tx.send(input).await;
                });
            }
            Effect::MarkRead(id) => {
                tokio::spawn(async move {
                    let path = format!("read/{}", escape(id.api_name()));
                    if let Err(e) = client.post::<ReadView>(&path, &Empty {}).await {
                        let _ = tx
                            .send(Input::Error(format!("cannot mark read: {e}")))
                            .await;
                    }
                });
            }
            Effect::Send { to, text } => {
                tokio::spawn(send(client, tx, to, text));
            }
            Effect::GetFile(id) => {
                tokio::spawn(async move {
                    let path = format!("files/{}/get", escape(&id));
                    let body = GetFileRequest::default();
                    let input = match client.post::<FileRow>(&path, &body).await {
                        Ok(row) => Input::File(row),
                        Err(e) => Input::Error(format!("cannot get the file: {e}")),
                    };
                    let _ = tx.send(input).await;
                });
            }
        }
    }
    false
}

/// Sends `text` to `to` and reports the message the daemon took.
async fn send(client: Arc<ApiClient>, tx: mpsc::Sender<Input>, to: ConvId, text: String) {
    let req = SendRequest {
        to: to.api_name().to_string(),
        text: Some(text.clone()),
        hex: None,
        base64: None,
        content_type: None,
        subject: None,
    };
    let input = match client.post::<SendView>("send", &req).await {
        Ok(v) => Input::Sent {
            to,
            id: v.id,
            text,
            sent_at: roost::clock::unix_ms(),
        },
        Err(e) => Input::Error(format!("not sent: {e}")),
    };
    let _ = tx.send(input).await;
}
