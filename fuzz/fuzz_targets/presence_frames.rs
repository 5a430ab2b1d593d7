//! Presence requests and responses.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| roost::wire::fuzz::presence_frames(data));
