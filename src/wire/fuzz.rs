//! Entry points for the fuzz targets in `fuzz/` and for the regression
//! test that replays their findings (`tests/fuzz_regressions.rs`). Each
//! feeds untrusted bytes to the decoders exactly as the network side does;
//! any panic is a bug.

use std::sync::OnceLock;

use super::frame::{ReadFrame, read_frame};
use super::mailbox::{MAX_REQUEST, MAX_RESPONSE, MailboxRequest, MailboxResponse};
use super::message::{Frame, MAX_FRAME, open};
use super::presence::{MAX_PRESENCE_FRAME, PresenceRequest, PresenceResponse};
use super::{decode, locator};
use crate::crypto::Sealer;
use crate::identity::Identity;

/// A fixed identity, so a run is reproducible.
fn me() -> &'static (Identity, Sealer) {
    static ME: OnceLock<(Identity, Sealer)> = OnceLock::new();
    ME.get_or_init(|| {
        let id = Identity::from_seed([7; 32]);
        let sealer = Sealer::new(&id);
        (id, sealer)
    })
}

/// Decode a message frame and try to open it.
pub fn message_frame(data: &[u8]) {
    if let Ok(Frame::Deliver(env)) = decode::<Frame>(data, MAX_FRAME) {
        let _ = open(&me().1, &env);
    }
}

/// Validate bytes as the locator record of a fixed key (its own and
/// another's), with and without a held seq.
pub fn locator_record(data: &[u8]) {
    let key = locator::record_key(&me().0.peer_id());
    let _ = locator::validate(&key, data, 1_800_000_000_000, None);
    let _ = locator::validate(&key, data, 0, Some(5));
    let _ = locator::seq_of(data);
}

/// Decode mailbox requests and responses.
pub fn mailbox_frames(data: &[u8]) {
    let _ = decode::<MailboxRequest>(data, MAX_REQUEST);
    let _ = decode::<MailboxResponse>(data, MAX_RESPONSE);
}

/// Decode presence requests and responses, and check their limits.
pub fn presence_frames(data: &[u8]) {
    if let Ok(PresenceRequest::Notify(info)) = decode::<PresenceRequest>(data, MAX_PRESENCE_FRAME) {
        let _ = info.is_within_limits();
    }
    let _ = decode::<PresenceResponse>(data, MAX_PRESENCE_FRAME);
}

/// Read frames from a byte stream until it ends, decoding each.
pub fn framing(data: &[u8]) {
    futures::executor::block_on(async {
        let mut r = futures::io::Cursor::new(data);
        while let Ok(ReadFrame::Frame(f)) = read_frame(&mut r, 4096).await {
            message_frame(&f);
        }
    });
}
