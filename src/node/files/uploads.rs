//! Files handed to the daemon to send (the web app's uploads): each is
//! kept in `<data-dir>/uploads/<random>/<name>`, outside the folder that
//! received files land in (so no received name can take its place), for
//! as long as its offer is served. A withdrawn offer's upload is deleted
//! at once; at start, upload folders no transfer names are deleted.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::Shared;
use crate::node::NodeHandle;
use crate::store::{FileDirection, Transfer, TransferState};

/// Subdirectory of the data dir holding uploads.
pub const UPLOADS_DIR: &str = "uploads";

impl Shared {
    /// Where uploads are kept: beside, not inside, the received files.
    pub(super) fn uploads_dir(&self) -> PathBuf {
        self.dir.with_file_name(UPLOADS_DIR)
    }

    /// Deletes the upload that `row` (an offer of ours) serves, if it is
    /// one: called once the offer is withdrawn.
    pub(super) async fn drop_upload(&self, row: &Transfer) {
        let (root, row) = (self.uploads_dir(), row.clone());
        let gone = tokio::task::spawn_blocking(move || {
            // An offer's path is canonical: so is the root it is matched to.
            let root = std::fs::canonicalize(&root).unwrap_or(root);
            match upload_of(&root, &row) {
                Some(dir) => std::fs::remove_dir_all(&dir),
                None => Ok(()),
            }
        })
        .await;
        if let Ok(Err(e)) = gone {
            tracing::warn!("cannot delete an upload: {e}");
        }
    }

    /// Deletes the upload folders no served offer names (what a crash or
    /// a withdrawn offer left).
    pub(super) async fn sweep_uploads(&self, rows: Vec<Transfer>) {
        let root = self.uploads_dir();
        let swept = tokio::task::spawn_blocking(move || {
            let root = std::fs::canonicalize(&root)?;
            let listed = std::fs::read_dir(&root)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect::<Vec<_>>();
            for dir in orphans(&root, &listed, &rows) {
                tracing::info!("deleting the upload {} (no offer serves it)", dir.display());
                std::fs::remove_dir_all(&dir)?;
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        if let Ok(Err(e)) = swept
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot sweep the uploads: {e}");
        }
    }
}

/// The upload folder (`root/<random>`) that offer `row` serves from, if
/// its file is an upload.
fn upload_of(root: &Path, row: &Transfer) -> Option<PathBuf> {
    if row.direction != FileDirection::Out {
        return None;
    }
    let path = PathBuf::from(row.path.as_ref()?);
    let dir = path.parent()?;
    (dir.parent() == Some(root)).then(|| dir.to_path_buf())
}

/// Of the entries `listed` in `root`, those no offer still served (not
/// withdrawn) uploads from.
fn orphans(root: &Path, listed: &[PathBuf], rows: &[Transfer]) -> Vec<PathBuf> {
    let kept: HashSet<PathBuf> = rows
        .iter()
        .filter(|t| t.state != TransferState::Failed)
        .filter_map(|t| upload_of(root, t))
        .collect();
    listed
        .iter()
        .filter(|p| !kept.contains(*p))
        .cloned()
        .collect()
}

impl NodeHandle {
    /// Where files handed to the daemon to send (the web app's uploads)
    /// are kept: an offer is served from its file's path, so the bytes
    /// must stay somewhere the daemon owns, and outside the received
    /// files, whose names peers choose.
    pub fn upload_dir(&self) -> PathBuf {
        self.inner.files.shared.uploads_dir()
    }

    /// Bytes an upload may take: the free space on the uploads' disk less
    /// `[files] free_margin_mib` (`None`: unknown, not checked).
    pub async fn upload_room(&self) -> Option<u64> {
        let shared = self.inner.files.shared.clone();
        let margin = shared.limits.free_margin_bytes;
        let dir = shared.dir.clone();
        tokio::task::spawn_blocking(move || super::limits::free_space(&dir))
            .await
            .ok()
            .flatten()
            .map(|f| f.saturating_sub(margin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::message::MessageId;

    fn ours(path: &Path, state: TransferState) -> Transfer {
        Transfer {
            id: MessageId::random(),
            direction: FileDirection::Out,
            peer: Vec::new(),
            name: "x".into(),
            size: 1,
            mime: "text/plain".into(),
            root: [0; 32],
            state,
            path: Some(path.display().to_string()),
            sources: Vec::new(),
            dropped: Vec::new(),
            error: None,
            user_path: true,
        }
    }

    #[test]
    fn only_uploads_no_served_offer_names_are_swept() {
        let root = Path::new("/data/uploads");
        let (a, b, c) = (root.join("a"), root.join("b"), root.join("c"));
        let rows = vec![
            ours(&a.join("kept.txt"), TransferState::Offered),
            ours(&b.join("withdrawn.txt"), TransferState::Failed),
            // A file sent from elsewhere on disk is never an upload.
            ours(Path::new("/home/me/c/c.txt"), TransferState::Offered),
        ];
        let listed = vec![a.clone(), b.clone(), c.clone()];
        assert_eq!(orphans(root, &listed, &rows), vec![b, c]);
        assert_eq!(upload_of(root, &rows[2]), None);
        assert_eq!(upload_of(root, &rows[0]), Some(a));
    }
}
