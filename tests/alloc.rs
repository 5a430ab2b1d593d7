//! [hardening] Decoding hostile input allocates in proportion to the input
//! (which each decoder caps before parsing), never what a length header
//! claims. Measured with a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use roost::wire::mailbox::MailboxRequest;
use roost::wire::message::{Frame, MAX_FRAME};
use roost::wire::{WireError, decode};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Serialises the measurements (tests run on several threads).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

// SAFETY: forwards to the system allocator, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(now, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Peak bytes allocated (above the level at the start) while running `f`.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    f();
    PEAK.load(Ordering::SeqCst) - base
}

/// CBOR headers that claim 2^63 bytes / elements, followed by `n` bytes.
fn lies(n: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for head in [
        vec![0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // byte string
        vec![0x7b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // text string
        vec![0x9b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // array
        vec![0xbb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // map
        vec![
            0xa1, 0x67, b'D', b'e', b'l', b'i', b'v', b'e', b'r', 0xa5, 0x62, b'i', b'd', 0x5b,
            0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
    ] {
        let mut v = head;
        v.resize(v.len() + n, 0x41);
        out.push(v);
    }
    out
}

#[test]
fn lying_length_headers_cost_at_most_a_few_times_the_input() {
    let _g = ONE_AT_A_TIME.lock().unwrap();
    for input in lies(100_000) {
        let peak = peak_during(|| {
            let _ = decode::<Frame>(&input, MAX_FRAME);
            let _ = decode::<MailboxRequest>(&input, MAX_FRAME);
            let _ = decode::<serde_bytes::ByteBuf>(&input, MAX_FRAME);
            let _ = decode::<Vec<u64>>(&input, MAX_FRAME);
        });
        // serde pre-sizes a sequence from its header but caps that at
        // 1 MiB ("cautious" size hints), so the bound is the input plus a
        // constant — never the 2^63 bytes the header claims.
        assert!(
            peak <= 4 * input.len() + (1 << 20) + 64 * 1024,
            "peak {peak} bytes for {} bytes of input",
            input.len()
        );
    }
}

#[test]
fn input_over_the_limit_is_refused_without_parsing() {
    let _g = ONE_AT_A_TIME.lock().unwrap();
    let big = vec![0x5bu8; MAX_FRAME + 1];
    let peak = peak_during(|| {
        assert!(matches!(
            decode::<Frame>(&big, MAX_FRAME),
            Err(WireError::TooLarge { .. })
        ));
    });
    assert!(peak < 1024, "peak {peak} bytes");
}
