//! Where a node keeps its data, and the checks that keep that place its
//! user's alone.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::ConfigError;

/// The data directory: the flag (which clap also fills from `ROOST_HOME`),
/// else the platform's data directory.
pub fn data_dir(flag: Option<PathBuf>) -> Result<PathBuf, ConfigError> {
    if let Some(dir) = flag {
        return Ok(dir);
    }
    dirs::data_dir()
        .map(|d| d.join("roost"))
        .ok_or(ConfigError::NoDataDir)
}

/// A data directory (or a file in it) we must not use.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Owned by another user, who could read our key, swap it, or write
    /// the `config.toml` we would obey (e.g. a dir made ahead under /tmp).
    #[error(
        "{path} belongs to uid {owner}, not to this user (uid {me}); use a data dir of your own (--data-dir or ROOST_HOME), or `chown -R {me} {path}` if it is yours"
    )]
    NotOwned {
        /// The path.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Our effective uid.
        me: u32,
    },
    /// Creating, reading or tightening it failed (or our uid is unknown).
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Refuses `path` if it exists and is not owned by our effective uid
/// (neither a symlink at `path` nor what it points to). A path that does
/// not exist passes: whatever creates it makes it ours.
pub fn check_owned(path: &Path) -> Result<(), DataDirError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DataDirError::Io { path, source }
    };
    let link = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(path)(e)),
    };
    let me = crate::os::effective_uid().map_err(io(Path::new("/proc/self")))?;
    let mut owners = vec![link.uid()];
    if link.file_type().is_symlink() {
        owners.push(std::fs::metadata(path).map_err(io(path))?.uid());
    }
    match owners.into_iter().find(|o| *o != me) {
        Some(owner) => Err(DataDirError::NotOwned {
            path: path.to_path_buf(),
            owner,
            me,
        }),
        None => Ok(()),
    }
}

/// Creates `dir` (mode 0700) if needed, refuses it if another user owns it
/// ([`check_owned`]), and tightens it to 0700 if it is looser: it holds the
/// secret key and the message history.
pub fn ensure_private_dir(dir: &Path) -> Result<(), DataDirError> {
    let io = |source| DataDirError::Io {
        path: dir.to_path_buf(),
        source,
    };
    // Checked before anything is created in it; a dir that does not exist
    // yet is created by us, and checked again below.
    check_owned(dir)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    check_owned(dir)?;
    let perms = std::fs::metadata(dir).map_err(io)?.permissions();
    if perms.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}
