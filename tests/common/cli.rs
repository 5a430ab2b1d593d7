//! Reading what the `roost` binary printed, and holding a daemon process
//! that must not outlive the test.

use std::process::{Child, Output};

/// Stdout as the one JSON object a successful `--json` command prints;
/// fails the test (showing stderr) when the command failed.
pub fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

/// Stderr as text, for messages and assertions.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A daemon process, killed and reaped when the test ends however it ends.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
