//! The node's calls about files: offering one, listing, getting and
//! cancelling transfers (see the module above for the design).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use libp2p::PeerId;

use super::{FileError, FileInfo, Shared, bao, limits};
use crate::node::{Content, NodeError, NodeHandle};
use crate::store::{FileDirection, Transfer, TransferState};
use crate::wire::files::{MAX_NAME, OFFER_TYPE, Offer, PART_CHUNKS, PART_TYPE, Part, name_is_safe};
use crate::wire::message::MessageId;

/// The messages that carry a small file after its offer.
fn inline_parts(
    data: &Path,
    obao: &Path,
    file: MessageId,
    size: u64,
    root: [u8; 32],
) -> Result<Vec<Content>, String> {
    let n = bao::chunks(size);
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let span = (start, n.min(start + PART_CHUNKS));
        let mut bao_bytes = Vec::new();
        bao::encode(data, obao, size, root, &[span], &mut bao_bytes)
            .map_err(|e| format!("{e:?}"))?;
        let part = Part {
            file,
            span,
            bao: bao_bytes,
        };
        out.push(Content {
            content_type: PART_TYPE.into(),
            subject: None,
            data: part.encode().map_err(|e| e.to_string())?,
        });
        start = span.1;
    }
    Ok(out)
}

/// A file name an offer may carry, from a path's last component.
fn offer_name(path: &Path) -> String {
    let raw = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    while name.len() > MAX_NAME {
        name.pop();
    }
    if name_is_safe(&name) {
        name
    } else {
        "file".into()
    }
}

/// How many parts of small files a window's history looks past, beyond
/// the lines it asks for: the parts of 16 small files of 4 MiB, at most
/// 64 MiB of bodies read.
const MAX_PARTS_SKIPPED: usize = 1024;

impl NodeHandle {
    fn files_service(&self) -> &Arc<Shared> {
        &self.inner.files.shared
    }

    /// The last `limit` messages exchanged with `peer` that have a line in
    /// a window (not the parts of small files), oldest first; at most
    /// [`MAX_PARTS_SKIPPED`] parts are looked past.
    pub async fn conversation_lines(
        &self,
        peer: PeerId,
        limit: usize,
    ) -> Result<Vec<crate::store::StoredMessage>, NodeError> {
        let scan = limit.saturating_add(MAX_PARTS_SKIPPED);
        self.read(move |s| s.conversation_without(&peer, limit, PART_TYPE, scan))
            .await
    }

    /// Offers the file at `path` to `to`: makes its outboard (reading it
    /// once), records the transfer, then sends the offer as a message, so
    /// it reaches an offline buddy through its mailboxes. Returns the
    /// offer message's id and the transfer.
    pub async fn send_file(
        &self,
        to: PeerId,
        path: PathBuf,
    ) -> Result<(MessageId, Transfer), NodeError> {
        if to == self.peer_id() {
            return Err(NodeError::SelfSend);
        }
        let shared = self.files_service().clone();
        let unreadable = |e: &dyn std::fmt::Display| FileError::Unreadable {
            path: path.display().to_string(),
            error: e.to_string(),
        };
        let abs = std::fs::canonicalize(&path).map_err(|e| unreadable(&e))?;
        if !abs.is_file() {
            return Err(unreadable(&"not a regular file").into());
        }
        let id = MessageId::random();
        let obao = shared.obao_path(&id);
        let src = abs.clone();
        let (root, size) = tokio::task::spawn_blocking(move || bao::create_outboard(&src, &obao))
            .await
            .map_err(|e| unreadable(&e))?
            .map_err(|e| unreadable(&e))?;
        let name = offer_name(&abs);
        let mime = mime_guess::from_path(&abs)
            .first_or_octet_stream()
            .essence_str()
            .to_string();
        let t = Transfer {
            id,
            direction: FileDirection::Out,
            peer: to.to_bytes(),
            name: name.clone(),
            size,
            mime: mime.clone(),
            root,
            state: TransferState::Offered,
            path: Some(abs.display().to_string()),
            sources: Vec::new(),
            dropped: Vec::new(),
            error: None,
            user_path: true,
        };
        let row = t.clone();
        shared.store.run(move |s| s.put_transfer(&row)).await?;
        let offer = Offer {
            file: id,
            name,
            size,
            mime,
            root,
        };
        let data = offer
            .encode()
            .map_err(|e| FileError::Invalid(e.to_string()))?;
        let mut contents = vec![Content {
            content_type: OFFER_TYPE.into(),
            subject: None,
            data,
        }];
        if size > 0 && size <= shared.limits.inline_bytes {
            let obao = shared.obao_path(&id);
            let parts =
                tokio::task::spawn_blocking(move || inline_parts(&abs, &obao, id, size, root))
                    .await
                    .map_err(|e| unreadable(&e))?
                    .map_err(|e| unreadable(&e))?;
            contents.extend(parts);
        }
        let ids = self.send_many(to, contents).await?;
        let msg = ids
            .first()
            .copied()
            .ok_or_else(|| FileError::Invalid("the offer was not sent".into()))?;
        Ok((msg, t))
    }

    /// Every transfer, newest offers last.
    pub async fn files(&self) -> Result<Vec<FileInfo>, NodeError> {
        let shared = self.files_service().clone();
        let rows = shared.store.run(|s| s.transfers()).await?;
        Ok(rows.into_iter().map(|t| shared.info(t)).collect())
    }

    /// One transfer.
    pub async fn file(&self, id: MessageId) -> Result<FileInfo, NodeError> {
        let shared = self.files_service().clone();
        let row = shared
            .row(id)
            .await
            .ok_or_else(|| FileError::Unknown(id.to_string()))?;
        Ok(shared.info(row))
    }

    /// Starts (or resumes) downloading an offered file; it lands at `out`
    /// if given (refused if something is there already), else under
    /// `<data-dir>/files/`.
    pub async fn get_file(
        &self,
        id: MessageId,
        out: Option<PathBuf>,
    ) -> Result<FileInfo, NodeError> {
        let shared = self.files_service().clone();
        let row = shared
            .row(id)
            .await
            .ok_or_else(|| FileError::Unknown(id.to_string()))?;
        if row.direction != FileDirection::In {
            return Err(FileError::Invalid("this file is ours; nothing to get".into()).into());
        }
        if row.state != TransferState::Complete {
            let out = match out {
                Some(p) if p.is_relative() => Some(
                    std::env::current_dir()
                        .map_err(|e| FileError::Invalid(e.to_string()))?
                        .join(p),
                ),
                o => o,
            };
            // A file already there is never replaced by a download.
            let probe = out.clone();
            let taken =
                tokio::task::spawn_blocking(move || probe.filter(|o| o.symlink_metadata().is_ok()))
                    .await
                    .map_err(|e| FileError::Invalid(e.to_string()))?;
            if let Some(o) = taken {
                return Err(FileError::Invalid(format!(
                    "{} already exists; choose another --out",
                    o.display()
                ))
                .into());
            }
            let (quota, margin) = (shared.limits.quota_bytes, shared.limits.free_margin_bytes);
            let rows = shared.store.run(|s| s.transfers()).await?;
            let (dir, part, size) = (shared.dir.clone(), shared.part_path(&id), row.size);
            let refused = tokio::task::spawn_blocking(move || {
                let coming = limits::to_come(&rows, &id, |t| {
                    limits::allocated(&dir.join(format!("{}.part", t.id)))
                });
                let free = limits::free_for_new(limits::room(&dir, &part, size), coming);
                limits::admit(size, limits::in_use(&rows, &id), quota, free, margin)
            })
            .await
            .map_err(|e| FileError::Invalid(e.to_string()))?;
            if let Some(why) = refused {
                shared.fail(id, why).await;
                return self.file(id).await;
            }
            shared
                .update(id, move |t| {
                    if let Some(o) = out {
                        t.path = Some(o.display().to_string());
                        t.user_path = true;
                    }
                    if t.state != TransferState::Downloading {
                        t.state = TransferState::Waiting;
                    }
                    t.error = None;
                })
                .await;
            shared.start(id);
        }
        self.file(id).await
    }

    /// Stops a transfer: a download pauses (its verified bytes stay; `get`
    /// resumes it), an offer of ours is withdrawn (no longer served).
    pub async fn cancel_file(&self, id: MessageId) -> Result<FileInfo, NodeError> {
        let shared = self.files_service().clone();
        let row = shared
            .row(id)
            .await
            .ok_or_else(|| FileError::Unknown(id.to_string()))?;
        shared.stop_download(&id);
        let state = match row.direction {
            FileDirection::In if row.state == TransferState::Complete => TransferState::Complete,
            FileDirection::In => TransferState::Paused,
            FileDirection::Out => TransferState::Failed,
        };
        shared.set_state(id, state).await;
        if row.direction == FileDirection::Out {
            shared.drop_upload(&row).await;
        }
        self.file(id).await
    }
}
