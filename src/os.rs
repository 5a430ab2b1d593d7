//! Facts about this process that the file system tells, so the library
//! needs neither `unsafe` nor a libc binding: shared by the data-dir checks
//! (config) and the CLI's checks of the daemon it talks to (api).

use std::os::unix::fs::MetadataExt;

/// Our effective uid, from the owner of `/proc/self` (the kernel gives a
/// process's proc directory its effective uid). Callers fail closed on an
/// error: a process that cannot read it trusts nothing, and a non-dumpable
/// one (whose proc directory is root's) trusts only root's.
pub fn effective_uid() -> std::io::Result<u32> {
    std::fs::metadata("/proc/self").map(|m| m.uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_uid_is_the_owner_of_what_we_create() {
        // A file we create is owned by our effective uid.
        let f = tempfile::NamedTempFile::new().unwrap();
        let made = std::fs::metadata(f.path()).unwrap().uid();
        assert_eq!(effective_uid().unwrap(), made);
    }
}
