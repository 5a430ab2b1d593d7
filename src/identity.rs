//! Who this node is: one ed25519 key, used both as the user's identity and as
//! the libp2p keypair, so a user's ID *is* their PeerId and every libp2p
//! connection is already authenticated to it.
//!
//! The key file is 64 hex characters (the 32-byte secret seed) and must not
//! be readable by anyone but its owner, as ssh insists for its keys.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey};

/// Name of the key file inside the data directory.
pub const KEY_FILE: &str = "identity.key";

/// Errors about the identity key and about IDs typed by users.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// `init` must never silently replace a key: that would orphan every buddy.
    #[error(
        "a key already exists at {0}; refusing to overwrite it (move it away first if you really want a new identity)"
    )]
    AlreadyExists(PathBuf),
    /// No key yet: the user has to run `roost init` first.
    #[error("no identity at {0}; run `roost init` first")]
    Missing(PathBuf),
    /// Like ssh, refuse a secret that others can read.
    #[error(
        "key file {path} has mode {mode:04o} and is readable by others; fix it with `chmod 600 {path}`"
    )]
    InsecurePermissions {
        /// The offending file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file exists but does not hold a key we wrote.
    #[error("key file {0} is damaged: expected 64 hex characters")]
    Corrupt(PathBuf),
    /// A user typed something that is not a roost ID.
    #[error(
        "invalid ID {0:?}: expected an ed25519 peer ID such as 12D3KooW… (52 base58 characters)"
    )]
    BadId(String),
    /// The OS random number generator failed; nothing sensible can go on.
    #[error("the OS random number generator failed: {0}")]
    Rng(String),
    /// The data directory or the key file belongs to another user.
    #[error(transparent)]
    DataDir(#[from] crate::config::DataDirError),
    /// Reading or writing the key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// The node's secret identity. Cheap to clone; never printed.
#[derive(Clone)]
pub struct Identity {
    signing: SigningKey,
    keypair: Keypair,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.peer_id())
    }
}

impl Identity {
    /// A fresh identity from the OS random number generator.
    pub fn generate() -> Result<Self, IdentityError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| IdentityError::Rng(e.to_string()))?;
        Ok(Self::from_seed(seed))
    }

    /// Rebuilds an identity from its 32-byte secret seed.
    pub fn from_seed(mut seed: [u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(&seed);
        let keypair = Keypair::ed25519_from_bytes(&mut seed)
            .expect("any 32 bytes are a valid ed25519 secret seed");
        Self { signing, keypair }
    }

    /// The user's ID: the PeerId of the public key.
    pub fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    /// The same key in libp2p's form, for building the Swarm.
    pub fn keypair(&self) -> &Keypair {
        &self.keypair
    }

    /// The public half, for checking our own signatures in tests and tools.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The secret seed; only for deriving other keys from the identity.
    pub(crate) fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// Signs `msg`; callers prefix a domain string so a signature for one
    /// purpose can never be replayed as another.
    pub fn sign(&self, msg: &[u8]) -> Signature {
        self.signing.sign(msg)
    }

    /// Creates a new key file in `dir`; refuses to overwrite an existing one.
    pub fn create_in(dir: &Path) -> Result<Self, IdentityError> {
        let id = Self::generate()?;
        id.save_new_in(dir)?;
        Ok(id)
    }

    /// Writes this identity as the key file of `dir` (mode 0600, the
    /// directory 0700); refuses to overwrite an existing one.
    pub fn save_new_in(&self, dir: &Path) -> Result<(), IdentityError> {
        let path = dir.join(KEY_FILE);
        // Another user's dir is refused before anything is looked at or
        // written in it.
        crate::config::ensure_private_dir(dir)?;
        if path.exists() {
            return Err(IdentityError::AlreadyExists(path));
        }
        let io = |source| IdentityError::Io {
            path: path.clone(),
            source,
        };
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => IdentityError::AlreadyExists(path.clone()),
                _ => io(e),
            })?;
        writeln!(file, "{}", hex::encode(self.seed())).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(())
    }

    /// Loads the key file from `dir`, refusing one that others can read.
    pub fn load_from(dir: &Path) -> Result<Self, IdentityError> {
        let path = dir.join(KEY_FILE);
        let io = |source| IdentityError::Io {
            path: path.clone(),
            source,
        };
        // A key another user owns is one that user can read or swap.
        crate::config::check_owned(&path)?;
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(IdentityError::Missing(path));
            }
            Err(e) => return Err(io(e)),
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::InsecurePermissions { path, mode });
        }
        let text = fs::read_to_string(&path).map_err(io)?;
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut seed)
            .map_err(|_| IdentityError::Corrupt(path.clone()))?;
        Ok(Self::from_seed(seed))
    }
}

/// The name a buddy gets when the user gives none: eight characters of
/// its ID past the `12D3KooW` every ed25519 ID starts with.
pub fn default_name(peer: &PeerId) -> String {
    peer.to_string().chars().skip(8).take(8).collect()
}

/// Parses a user-typed ID, accepting only ed25519 PeerIds (the only kind a
/// roost identity can be), so a typo fails here with a clear message rather
/// than as an unreachable buddy later.
pub fn parse_id(text: &str) -> Result<PeerId, IdentityError> {
    let bad = || IdentityError::BadId(text.to_string());
    let peer: PeerId = text.trim().parse().map_err(|_| bad())?;
    ed25519_key(&peer).ok_or_else(bad)?;
    Ok(peer)
}

/// The ed25519 public key inside a PeerId, if it is an ed25519 PeerId.
/// ed25519 PeerIds embed the key itself (identity multihash), so no lookup is
/// needed to verify a signature by any roost user.
pub fn ed25519_key(peer: &PeerId) -> Option<VerifyingKey> {
    let mh = multihash_digest(peer)?;
    let public = PublicKey::try_decode_protobuf(&mh).ok()?;
    let ed = public.try_into_ed25519().ok()?;
    VerifyingKey::from_bytes(&ed.to_bytes()).ok()
}

/// The PeerId of a raw ed25519 public key.
pub fn peer_id_of(key: &VerifyingKey) -> Option<PeerId> {
    let ed = libp2p::identity::ed25519::PublicKey::try_from_bytes(key.as_bytes()).ok()?;
    Some(PublicKey::from(ed).to_peer_id())
}

fn multihash_digest(peer: &PeerId) -> Option<Vec<u8>> {
    // An identity multihash (code 0x00) carries the protobuf-encoded key.
    let mh = libp2p::multihash::Multihash::<64>::from_bytes(&peer.to_bytes()).ok()?;
    (mh.code() == 0).then(|| mh.digest().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trips_through_the_file_and_refuses_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let a = Identity::create_in(dir.path()).unwrap();
        let b = Identity::load_from(dir.path()).unwrap();
        assert_eq!(a.peer_id(), b.peer_id());
        assert!(matches!(
            Identity::create_in(dir.path()),
            Err(IdentityError::AlreadyExists(_))
        ));
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn world_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Identity::create_in(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = Identity::load_from(dir.path()).unwrap_err();
        assert!(matches!(
            err,
            IdentityError::InsecurePermissions { mode: 0o644, .. }
        ));
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn ids_parse_only_when_ed25519() {
        let id = Identity::generate().unwrap();
        let text = id.peer_id().to_string();
        assert_eq!(parse_id(&text).unwrap(), id.peer_id());
        assert_eq!(ed25519_key(&id.peer_id()).unwrap(), id.verifying_key());
        assert_eq!(peer_id_of(&id.verifying_key()).unwrap(), id.peer_id());
        assert!(parse_id("bob").is_err());
        assert!(parse_id("").is_err());
        // A valid PeerId that is a sha256 multihash (non-ed25519 key types).
        let sha = PeerId::random();
        assert!(parse_id(&sha.to_string()).is_err());
        let msg = parse_id("12D3KooWnope").unwrap_err().to_string();
        assert!(msg.contains("expected an ed25519 peer ID"), "{msg}");
    }
}
