//! The end of a download: the verified partial file moved to where it
//! lands, and the row marked complete. The destination is recorded (and
//! made durable) before the move, so a crash between the move and the
//! row's update is recognised at the next start: the file is in place,
//! whole and verified, and is not fetched again.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Shared, bao};
use crate::store::{Transfer, TransferState};
use crate::wire::message::MessageId;

impl Shared {
    /// Moves a verified download to where it lands and marks it complete.
    /// The move never replaces a file: a path the node chose that another
    /// file took meanwhile is chosen again; a user's `--out` that is taken
    /// fails the download.
    ///
    /// It runs as a task of its own, to its end even when the caller is
    /// dropped: a download cancelled while it finishes (the file's last
    /// mailbox part verified it meanwhile) must not leave the file moved
    /// but its row not saying so, for the next finish to fail on.
    pub(super) async fn finish(self: &Arc<Self>, id: MessageId) {
        let (done, finished) = tokio::sync::oneshot::channel();
        let me = self.clone();
        self.tasks.spawn(async move {
            me.finish_now(id).await;
            let _ = done.send(());
        });
        let _ = finished.await;
    }

    /// The lock of file `id`: held while the file is moved into place, so
    /// that happens once, and while its partial file is created or a
    /// mailbox part written to it, so neither comes after the move (a new
    /// partial file left behind). One per file, so a large file's move
    /// holds up no other file; an entry lives while someone holds or
    /// awaits it.
    pub(super) async fn file_lock(&self, id: MessageId) -> tokio::sync::OwnedMutexGuard<()> {
        // Nothing panics while the table is held; if something did, the
        // table is still whole.
        let lock = {
            let mut locks = self
                .file_locks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            locks.entry(id).or_default().clone()
        };
        lock.lock_owned().await
    }

    async fn finish_now(&self, id: MessageId) {
        let _once = self.file_lock(id).await;
        for _ in 0..PLACE_TRIES {
            let Some(row) = self.row(id).await else {
                return;
            };
            if row.state == TransferState::Complete {
                return;
            }
            let (dir, recorded) = (self.dir.clone(), row.clone());
            let to = match tokio::task::spawn_blocking(move || destination(&dir, &recorded)).await {
                Ok(to) => to,
                Err(e) => return self.fail(id, e.to_string()).await,
            };
            if let Err(e) = self.record(id, &to).await {
                return self
                    .fail(id, format!("cannot record where the file lands: {e}"))
                    .await;
            }
            let part = self.part_path(&id);
            #[cfg(feature = "test-util")]
            let (crash, hooks) = (
                super::test_hooks::crash_after_move(&self.dir),
                self.dir.clone(),
            );
            let at = to.clone();
            let moved = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                place(&part, &at)?;
                #[cfg(feature = "test-util")]
                {
                    if crash {
                        std::process::abort();
                    }
                    super::test_hooks::hold(&hooks, "moved");
                }
                Ok(())
            })
            .await;
            match moved {
                Ok(Ok(())) => return self.complete(id, to).await,
                Ok(Err(e)) if e.kind() == ErrorKind::AlreadyExists && !row.user_path => continue,
                Ok(Err(e)) => {
                    return self
                        .fail(id, format!("cannot move the file into place: {e}"))
                        .await;
                }
                Err(e) => return self.fail(id, e.to_string()).await,
            }
        }
        self.fail(id, "no free name to move the file to".into())
            .await
    }

    /// Records (durably) where download `id` lands, before it moves there.
    async fn record(&self, id: MessageId, to: &Path) -> Result<(), crate::store::StoreError> {
        let path = to.display().to_string();
        self.store
            .run(move |s| {
                if let Some(mut t) = s.transfer(&id)? {
                    t.path = Some(path);
                    s.put_transfer(&t)?;
                }
                s.flush()
            })
            .await
    }

    async fn complete(&self, id: MessageId, to: PathBuf) {
        let path = to.display().to_string();
        self.update(id, move |t| {
            t.state = TransferState::Complete;
            t.path = Some(path);
            t.error = None;
        })
        .await;
        tracing::info!(%id, "file complete");
    }

    /// Whether download `row` already ended on disk: its partial file is
    /// gone and the file at its recorded destination is whole and verifies
    /// against the root (a crash came between the move and the row's
    /// update). If so, the row is marked complete.
    pub(super) async fn landed(&self, row: &Transfer) -> bool {
        let Some(to) = row.path.as_ref().map(PathBuf::from) else {
            return false;
        };
        let (part, obao) = (self.part_path(&row.id), self.obao_path(&row.id));
        let (size, root) = (row.size, row.root);
        let at = to.clone();
        let whole = tokio::task::spawn_blocking(move || {
            if part.exists() || std::fs::metadata(&at).map(|m| m.len()).ok() != Some(size) {
                return false;
            }
            let n = bao::chunks(size);
            n == 0 || bao::verified(&at, &obao, size, root).is_ok_and(|v| v == vec![(0, n)])
        })
        .await
        .unwrap_or(false);
        if whole {
            tracing::info!(id = %row.id, "a finished download found in place");
            self.complete(row.id, to).await;
        }
        whole
    }
}

/// How many times a download whose chosen name was taken meanwhile
/// chooses again before it fails.
const PLACE_TRIES: usize = 8;

/// Where download `row` lands: the user's `--out`; the path the node chose
/// earlier if nothing took it since; else a free name in `dir`.
fn destination(dir: &Path, row: &Transfer) -> PathBuf {
    match &row.path {
        Some(p) if row.user_path || Path::new(p).symlink_metadata().is_err() => PathBuf::from(p),
        _ => unique(dir, &row.name),
    }
}

/// Moves the verified partial file `part` to `to` without ever replacing
/// a file there (`AlreadyExists` then): a hard link and an unlink, or a
/// copy into a new file where links do not work (another disk); the
/// directory is synced so the move survives a crash.
fn place(part: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::File::open(part)?.sync_all()?;
    match std::fs::hard_link(part, to) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(e),
        Err(_) => {
            let mut from = std::fs::File::open(part)?;
            let mut into = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(to)?;
            std::io::copy(&mut from, &mut into)?;
            into.sync_all()?;
        }
    }
    std::fs::remove_file(part)?;
    if let Some(parent) = to.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// `dir/name`, or `dir/name (n)` for the first `n` that is free.
fn unique(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|n| dir.join(format!("{name} ({n})")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FileDirection;

    fn row(name: &str, path: Option<PathBuf>, user_path: bool) -> Transfer {
        Transfer {
            id: MessageId::random(),
            direction: FileDirection::In,
            peer: Vec::new(),
            name: name.into(),
            size: 1,
            mime: "text/plain".into(),
            root: [0; 32],
            state: TransferState::Downloading,
            path: path.map(|p| p.display().to_string()),
            sources: Vec::new(),
            dropped: Vec::new(),
            error: None,
            user_path,
        }
    }

    /// Download A recorded `a.txt` and was interrupted before its move;
    /// download B of another `a.txt` landed there first. A's retry lands
    /// beside it and B's file is untouched.
    #[test]
    fn a_recorded_name_taken_meanwhile_is_chosen_again_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let a = row("a.txt", Some(d.join("a.txt")), false);
        let b = row("a.txt", None, false);
        std::fs::write(d.join("b.part"), b"B").unwrap();
        let b_to = destination(d, &b);
        assert_eq!(b_to, d.join("a.txt"));
        place(&d.join("b.part"), &b_to).unwrap();
        std::fs::write(d.join("a.part"), b"A").unwrap();
        let a_to = destination(d, &a);
        assert_eq!(a_to, d.join("a.txt (1)"), "A must not reuse the taken name");
        place(&d.join("a.part"), &a_to).unwrap();
        assert_eq!(std::fs::read(d.join("a.txt")).unwrap(), b"B");
        assert_eq!(std::fs::read(d.join("a.txt (1)")).unwrap(), b"A");
    }

    /// Whatever chose the destination, the move itself never replaces a
    /// file there (a user's `--out` created meanwhile).
    #[test]
    fn the_move_never_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let to = destination(d, &row("x", Some(d.join("out")), true));
        std::fs::write(&to, b"theirs").unwrap();
        std::fs::write(d.join("x.part"), b"ours").unwrap();
        let e = place(&d.join("x.part"), &to).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        assert_eq!(
            std::fs::read(&to).unwrap(),
            b"theirs",
            "the file there was replaced"
        );
        assert!(d.join("x.part").exists(), "the download was lost");
    }
}
