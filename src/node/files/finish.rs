//! The end of a download: the verified partial file moved to where it
//! lands, and the row marked complete. The destination is recorded (and
//! made durable) before the move, so a crash between the move and the
//! row's update is recognised at the next start: the file is in place,
//! whole and verified, and is not fetched again.

use std::path::{Path, PathBuf};

use super::{Shared, bao};
use crate::store::{Transfer, TransferState};
use crate::wire::message::MessageId;

impl Shared {
    /// Moves a verified download to where it lands and marks it complete.
    pub(super) async fn finish(&self, id: MessageId) {
        let _once = self.finishing.lock().await;
        let Some(row) = self.row(id).await else {
            return;
        };
        if row.state == TransferState::Complete {
            return;
        }
        let to = match &row.path {
            Some(p) => PathBuf::from(p),
            None => {
                let (dir, name) = (self.dir.clone(), row.name.clone());
                let Ok(to) = tokio::task::spawn_blocking(move || unique(&dir, &name)).await else {
                    return;
                };
                to
            }
        };
        let path = to.display().to_string();
        let recorded = self
            .store
            .run(move |s| {
                if let Some(mut t) = s.transfer(&id)? {
                    t.path = Some(path);
                    s.put_transfer(&t)?;
                }
                s.flush()
            })
            .await;
        if let Err(e) = recorded {
            return self
                .fail(id, format!("cannot record where the file lands: {e}"))
                .await;
        }
        let part = self.part_path(&id);
        #[cfg(feature = "test-util")]
        let crash = super::test_hooks::crash_after_move(&self.dir);
        let moved = tokio::task::spawn_blocking(move || -> std::io::Result<PathBuf> {
            std::fs::File::open(&part)?.sync_all()?;
            if std::fs::rename(&part, &to).is_err() {
                std::fs::copy(&part, &to)?;
                std::fs::File::open(&to)?.sync_all()?;
                std::fs::remove_file(&part)?;
            }
            #[cfg(feature = "test-util")]
            if crash {
                std::process::abort();
            }
            Ok(to)
        })
        .await;
        match moved {
            Ok(Ok(to)) => self.complete(id, to).await,
            Ok(Err(e)) => {
                self.fail(id, format!("cannot move the file into place: {e}"))
                    .await
            }
            Err(e) => self.fail(id, e.to_string()).await,
        }
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
