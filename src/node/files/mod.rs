//! Files: offers through the ordinary message path, content over its own
//! stream protocol (`/roost/files/1`), verified as it streams against the
//! offer's BLAKE3 root (bao-tree), resumable, from several sources.
//!
//! - [`plan`]: the pure download machine (which ranges from which source).
//! - [`bao`]: outboards, encoding, verified decoding, what verifies on disk.
//! - [`fetch`]: one download task per file; [`serve`]: the serving side.
//!
//! On disk, under `<data-dir>/files/`: `<id>.obao` (the outboard: one hash
//! pair per 16 KiB), `<id>.part` (a download in progress, at its full
//! size) and the completed files under their names. What verifies in a
//! partial file is found again from these two after a crash, so a restart
//! resumes where the bytes stopped. The rows are in the store
//! ([`crate::store::Transfer`]). See docs/files.md.

pub mod bao;
mod fetch;
mod finish;
mod handle;
mod held;
mod limits;
pub mod plan;
pub mod progress;
mod serve;
#[cfg(feature = "test-util")]
pub mod test_hooks;
mod uploads;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use libp2p::{PeerId, StreamProtocol};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::Event;
use super::lifecycle::Tasks;
use crate::config::FilesConfig;
use crate::net::NetClient;
use crate::store::{
    Direction, FileDirection, Relation, StoredMessage, Transfer, TransferState, Worker,
};
use crate::wire::files::{OFFER_TYPE, Offer, PART_TYPE, PROTOCOL, Part, Refusal};
use crate::wire::message::MessageId;

/// Subdirectory of the data dir holding outboards, partial and completed
/// files.
pub const FILES_DIR: &str = "files";

/// Why a file call failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// No transfer with that id.
    #[error("no file {0}")]
    Unknown(String),
    /// The file to send cannot be read.
    #[error("cannot read {path}: {error}")]
    Unreadable {
        /// The path given.
        path: String,
        /// What failed.
        error: String,
    },
    /// The call does not fit the transfer (e.g. `get` of our own file).
    #[error("{0}")]
    Invalid(String),
}

/// One transfer as the API shows it: its row plus live figures.
#[derive(Debug, Clone)]
pub struct FileInfo {
    /// The row.
    pub transfer: Transfer,
    /// Bytes here and verified (theirs), or held (ours).
    pub done: u64,
    /// Bytes of this file served to others since the node started.
    pub served: u64,
}

/// A running download's live state.
pub(crate) struct Live {
    done: AtomicU64,
    /// The chunk ranges of the partial file that verified: what it holds
    /// when the download starts, then each piece as it arrives.
    verified: Mutex<Vec<crate::wire::files::Span>>,
    cancel: CancellationToken,
    throttle: progress::Throttle,
}

/// What the files service shares between its tasks.
pub(crate) struct Shared {
    dir: PathBuf,
    limits: FilesConfig,
    events: broadcast::Sender<Event>,
    store: Worker,
    net: NetClient,
    control: libp2p_stream::Control,
    tasks: Tasks,
    live: Mutex<HashMap<MessageId, Arc<Live>>>,
    served: Mutex<HashMap<[u8; 32], u64>>,
    /// What partial copies not being downloaded hold (see [`held`]).
    held: Mutex<HashMap<MessageId, Vec<crate::wire::files::Span>>>,
    /// One lock per file being written (see [`Shared::file_lock`]).
    file_locks: Mutex<HashMap<MessageId, Arc<tokio::sync::Mutex<()>>>>,
}

/// A local copy of a file a peer asked for.
#[derive(Clone)]
pub(crate) struct LocalCopy {
    id: MessageId,
    data: PathBuf,
    obao: PathBuf,
    size: u64,
    root: [u8; 32],
    complete: bool,
}

/// The files service's handle, held by the node.
#[derive(Clone)]
pub(crate) struct Files {
    shared: Arc<Shared>,
}

/// Starts the files service: the serving side, the intake of offers
/// arriving as messages, and the downloads a previous run left going.
pub(crate) fn spawn(
    data_dir: &Path,
    limits: FilesConfig,
    store: Worker,
    net: NetClient,
    mut control: libp2p_stream::Control,
    events: &broadcast::Sender<Event>,
    tasks: &Tasks,
) -> Result<Files, libp2p_stream::AlreadyRegistered> {
    let incoming = control.accept(StreamProtocol::new(PROTOCOL))?;
    let shared = Arc::new(Shared {
        dir: data_dir.join(FILES_DIR),
        limits,
        events: events.clone(),
        store,
        net,
        control,
        tasks: tasks.clone(),
        live: Mutex::new(HashMap::new()),
        served: Mutex::new(HashMap::new()),
        held: Mutex::new(HashMap::new()),
        file_locks: Mutex::new(HashMap::new()),
    });
    if let Err(e) = crate::config::ensure_private_dir(&shared.dir) {
        tracing::warn!("cannot create {}: {e}", shared.dir.display());
    }
    tasks.spawn(serve::accept(shared.clone(), incoming));
    let rx = events.subscribe();
    tasks.spawn(intake(shared.clone(), rx));
    Ok(Files { shared })
}

/// Files offers as they arrive; at start, first the offers stored while
/// this task was not listening, then the downloads to resume.
async fn intake(shared: Arc<Shared>, mut rx: broadcast::Receiver<Event>) {
    shared.rescan().await;
    let resume = shared
        .store
        .run(|s| s.transfers())
        .await
        .unwrap_or_default();
    shared.sweep_uploads(resume.clone()).await;
    for t in resume {
        if t.direction == FileDirection::In
            && matches!(t.state, TransferState::Downloading | TransferState::Waiting)
        {
            shared.start(t.id);
        }
    }
    loop {
        let ev = tokio::select! {
            ev = rx.recv() => ev,
            _ = shared.tasks.stopping() => return,
        };
        match ev {
            Ok(Event::Message(m)) if m.content_type == OFFER_TYPE => shared.take_offer(&m).await,
            Ok(Event::Message(m)) if m.content_type == PART_TYPE => shared.take_part(&m).await,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => shared.rescan().await,
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

impl Shared {
    fn part_path(&self, id: &MessageId) -> PathBuf {
        self.dir.join(format!("{id}.part"))
    }

    fn obao_path(&self, id: &MessageId) -> PathBuf {
        self.dir.join(format!("{id}.obao"))
    }

    async fn row(&self, id: MessageId) -> Option<Transfer> {
        self.store
            .run(move |s| s.transfer(&id))
            .await
            .ok()
            .flatten()
    }

    /// Changes a row; a change of state goes out as a progress event.
    async fn update(&self, id: MessageId, f: impl FnOnce(&mut Transfer) + Send + 'static) {
        let r = self
            .store
            .run(move |s| {
                let Some(mut t) = s.transfer(&id)? else {
                    return Ok(None);
                };
                let before = t.state;
                f(&mut t);
                s.put_transfer(&t)?;
                Ok((t.state != before).then_some(t))
            })
            .await;
        match r {
            Ok(Some(t)) => self.progress(t),
            Ok(None) => {}
            Err(e) => tracing::warn!("cannot update a transfer row: {e}"),
        }
    }

    /// Tells the event stream how far transfer `t` is.
    fn progress(&self, t: Transfer) {
        let info = self.info(t);
        let _ = self.events.send(Event::File(progress::FileProgress {
            id: info.transfer.id,
            done: info.done,
            size: info.transfer.size,
            state: info.transfer.state,
        }));
    }

    /// Sets a state; a complete file stays complete (a download task
    /// stopping late must not undo what the mailbox parts finished).
    async fn set_state(&self, id: MessageId, state: TransferState) {
        self.update(id, move |t| {
            if t.state != TransferState::Complete {
                t.state = state;
            }
        })
        .await;
    }

    async fn fail(&self, id: MessageId, why: String) {
        tracing::warn!(%id, "file failed: {why}");
        self.update(id, move |t| {
            if t.state != TransferState::Complete {
                t.state = TransferState::Failed;
                t.error = Some(why);
            }
        })
        .await;
    }

    fn count_served(&self, root: [u8; 32], bytes: u64) {
        if let Ok(mut s) = self.served.lock() {
            *s.entry(root).or_default() += bytes;
        }
    }

    /// Starts downloading `id` unless it already is.
    fn start(self: &Arc<Self>, id: MessageId) {
        let Ok(mut live) = self.live.lock() else {
            return;
        };
        if live.contains_key(&id) {
            return;
        }
        let l = Arc::new(Live {
            done: AtomicU64::new(0),
            verified: Mutex::new(Vec::new()),
            cancel: CancellationToken::new(),
            throttle: Default::default(),
        });
        live.insert(id, l.clone());
        self.tasks.spawn(fetch::download(self.clone(), id, l));
    }

    /// Offers stored in the history but not yet filed as transfers, then
    /// the parts that ride with small files (an offer first, so its parts
    /// find it): one read of the history.
    async fn rescan(self: &Arc<Self>) {
        let (offers, parts): (Vec<_>, Vec<_>) = self
            .store
            .run(|s| {
                Ok(s.incoming(None)?
                    .into_iter()
                    .filter(|m| m.content_type == OFFER_TYPE || m.content_type == PART_TYPE)
                    .collect::<Vec<_>>())
            })
            .await
            .unwrap_or_default()
            .into_iter()
            .partition(|m| m.content_type == OFFER_TYPE);
        for m in offers {
            self.take_offer(&m).await;
        }
        for m in parts {
            self.take_part(&m).await;
        }
    }

    /// Files an offer: a new transfer, or one more source for a file with
    /// the same content. Idempotent.
    async fn take_offer(self: &Arc<Self>, m: &StoredMessage) {
        if m.direction != Direction::In {
            return;
        }
        let Some(from) = m.peer_id() else { return };
        let offer = match Offer::decode(&m.data) {
            Ok(o) => o,
            Err(e) => {
                tracing::debug!(%from, "unreadable file offer: {e}");
                return;
            }
        };
        let me = self.clone();
        let (limits, request) = (self.limits, m.request);
        let dir = self.dir.clone();
        let free = tokio::task::spawn_blocking(move || limits::free_space(&dir))
            .await
            .ok()
            .flatten();
        let dir = self.dir.clone();
        let filed = self
            .store
            .run(move |s| file_offer(s, offer, from, request, limits, (free, &dir)))
            .await;
        match filed {
            Ok(Some((id, state, new))) => {
                if new && let Some(t) = me.row(id).await {
                    me.progress(t);
                }
                if new {
                    me.parts_for(id).await;
                }
                if matches!(state, TransferState::Downloading | TransferState::Waiting) {
                    me.start(id);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("cannot file an offer: {e}"),
        }
    }

    /// Applies the parts of file `id` that arrived before its offer.
    async fn parts_for(self: &Arc<Self>, id: MessageId) {
        let parts = self
            .store
            .run(|s| {
                Ok(s.incoming(None)?
                    .into_iter()
                    .filter(|m| m.content_type == PART_TYPE)
                    .collect::<Vec<_>>())
            })
            .await
            .unwrap_or_default();
        for m in parts {
            if Part::decode(&m.data).is_ok_and(|p| p.file == id) {
                self.take_part(&m).await;
            }
        }
    }

    /// Writes a small file's part that came as a message, verified against
    /// the offer's root; the last one completes the file. Only a buddy's,
    /// only for a file it offered.
    async fn take_part(self: &Arc<Self>, m: &StoredMessage) {
        if m.direction != Direction::In || m.request {
            return;
        }
        let (Some(from), Ok(part)) = (m.peer_id(), Part::decode(&m.data)) else {
            return;
        };
        // No finish moves the file while its part is written.
        let locked = self.file_lock(part.file).await;
        let Some(row) = self.row(part.file).await else {
            tracing::debug!(file = %part.file, "a file part before its offer");
            return;
        };
        let n = bao::chunks(row.size);
        tracing::debug!(file = %part.file, span = ?part.span, state = ?row.state, "a file part");
        if row.direction != FileDirection::In
            || !row.sources.contains(&from.to_bytes())
            || matches!(row.state, TransferState::Complete | TransferState::Failed)
            || row.size > self.limits.inline_bytes
            || part.span.1 > n
        {
            return;
        }
        let (p, o) = (self.part_path(&row.id), self.obao_path(&row.id));
        let (size, root) = (row.size, row.root);
        self.forget_held(&row.id);
        let complete = tokio::task::spawn_blocking(move || -> Result<bool, String> {
            bao::make_partial(&p, size).map_err(|e| e.to_string())?;
            bao::decode(&part.bao[..], &p, &o, size, root, &[part.span])
                .map_err(|e| format!("{e:?}"))?;
            let held = bao::verified(&p, &o, size, root).map_err(|e| e.to_string())?;
            Ok(held == vec![(0, n)])
        })
        .await;
        drop(locked);
        match complete {
            Ok(Ok(true)) => {
                // Held, the rest waits in a task of its own, without
                // holding up the offers, so a download can start meanwhile.
                #[cfg(feature = "test-util")]
                if test_hooks::held(&self.dir, "verified") {
                    let me = self.clone();
                    self.tasks.spawn(async move {
                        test_hooks::lifted(&me.dir, "verified").await;
                        me.stop_download(&row.id);
                        test_hooks::mark(&me.dir, "parts-complete");
                        me.finish(row.id).await;
                    });
                    return;
                }
                self.stop_download(&row.id);
                self.finish(row.id).await;
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::debug!(%from, "a file part was not taken: {e}"),
            Err(e) => tracing::debug!("a file part was not taken: {e}"),
        }
    }

    /// Stops the running download of `id`, if any (a `cancel`, or its
    /// mailbox parts completed the file).
    fn stop_download(&self, id: &MessageId) {
        if let Some(l) = self.live.lock().ok().and_then(|mut l| l.remove(id)) {
            l.cancel.cancel();
        }
    }

    /// The local copy of the file with `root` that `peer` may fetch.
    async fn local_copy(&self, root: [u8; 32], peer: PeerId) -> Result<LocalCopy, Refusal> {
        let (rows, relation) = self
            .store
            .run(move |s| Ok((s.transfers()?, s.relation(&peer)?)))
            .await
            .map_err(|_| Refusal::Missing)?;
        let rows: Vec<Transfer> = rows.into_iter().filter(|t| t.root == root).collect();
        let offered_to = rows.iter().any(|t| {
            t.direction == FileDirection::Out
                && t.peer == peer.to_bytes()
                && t.state != TransferState::Failed
        });
        if !offered_to && relation != Relation::Buddy {
            return Err(Refusal::NotAllowed);
        }
        let pick = |t: &Transfer| -> Option<LocalCopy> {
            let obao = self.obao_path(&t.id);
            match (t.direction, t.state) {
                (_, TransferState::Failed) => None,
                (FileDirection::Out, _) | (FileDirection::In, TransferState::Complete) => {
                    Some(LocalCopy {
                        id: t.id,
                        data: PathBuf::from(t.path.as_ref()?),
                        obao,
                        size: t.size,
                        root,
                        complete: true,
                    })
                }
                (FileDirection::In, _) => Some(LocalCopy {
                    id: t.id,
                    data: self.part_path(&t.id),
                    obao,
                    size: t.size,
                    root,
                    complete: false,
                }),
            }
        };
        let mut copies: Vec<LocalCopy> = rows.iter().filter_map(pick).collect();
        copies.sort_by_key(|c| !c.complete);
        copies.into_iter().next().ok_or(Refusal::Missing)
    }

    fn info(&self, t: Transfer) -> FileInfo {
        let live = self
            .live
            .lock()
            .ok()
            .and_then(|l| l.get(&t.id).map(|l| l.done.load(Ordering::Relaxed)));
        let done = match (t.direction, t.state) {
            (FileDirection::Out, _) | (_, TransferState::Complete) => t.size,
            _ => live.unwrap_or(0),
        };
        let served = self
            .served
            .lock()
            .ok()
            .and_then(|s| s.get(&t.root).copied())
            .unwrap_or(0);
        FileInfo {
            transfer: t,
            done,
            served,
        }
    }
}

/// Files `offer` from `from` in the store: one more source of a transfer
/// with the same content (or the same id), else a new row, downloading at
/// once if it is a buddy's within `auto_accept_mib` and admitted by the
/// quota and the free-space margin (`free`: the data disk's free bytes;
/// `dir`: where the partial files are, whose bytes still to come are not
/// free). Returns the row's id and state and whether it is new; `None` for an id
/// taken by another file.
fn file_offer(
    s: &crate::store::Store,
    offer: Offer,
    from: PeerId,
    request: bool,
    limits: FilesConfig,
    (free, dir): (Option<u64>, &Path),
) -> Result<Option<(MessageId, TransferState, bool)>, crate::store::StoreError> {
    let rows = s.transfers()?;
    let same = rows.iter().find(|t| {
        t.direction == FileDirection::In
            && (t.id == offer.file
                || (t.root == offer.root
                    && t.size == offer.size
                    && t.state != TransferState::Failed))
    });
    if let Some(t) = same {
        let mut t = t.clone();
        if !t.sources.contains(&from.to_bytes()) {
            t.sources.push(from.to_bytes());
            s.put_transfer(&t)?;
        }
        return Ok(Some((t.id, t.state, false)));
    }
    if rows.iter().any(|t| t.id == offer.file) {
        return Ok(None);
    }
    let auto = !request && offer.size <= limits.auto_accept_bytes;
    let refused = auto
        .then(|| {
            let used = limits::in_use(&rows, &offer.file);
            let (quota, margin) = (limits.quota_bytes, limits.free_margin_bytes);
            let coming = limits::to_come(&rows, &offer.file, |t| {
                limits::allocated(&dir.join(format!("{}.part", t.id)))
            });
            let free = limits::free_for_new(free, coming);
            limits::admit(offer.size, used, quota, free, margin)
        })
        .flatten();
    let t = Transfer {
        id: offer.file,
        direction: FileDirection::In,
        peer: from.to_bytes(),
        name: offer.name,
        size: offer.size,
        mime: offer.mime,
        root: offer.root,
        state: if refused.is_some() {
            TransferState::Failed
        } else if auto {
            TransferState::Downloading
        } else {
            TransferState::Offered
        },
        path: None,
        sources: vec![from.to_bytes()],
        dropped: Vec::new(),
        error: refused,
        user_path: false,
    };
    s.put_transfer(&t)?;
    Ok(Some((t.id, t.state, true)))
}
