//! Mailbox requests and responses.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| roost::wire::fuzz::mailbox_frames(data));
