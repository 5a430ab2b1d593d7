//! The store worker's thread: what it owns, whether one runs, and how a
//! new one takes over what the last parked (see the module doc of
//! `store::worker`, "Idle").

use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::{Msg, Timing, serve};
use crate::store::Store;

/// What a thread owns while it serves, and what waits for the next one
/// while none does.
pub(super) struct Parked {
    /// Boxed: a `Store` is some 600 bytes of tree handles, and a parked
    /// one sits in every [`Thread`] state.
    pub(super) store: Box<Store>,
    pub(super) rx: mpsc::Receiver<Msg>,
    /// Told `true` once the store is released for good
    /// ([`Worker::close`](super::Worker::close)).
    pub(super) released: watch::Sender<bool>,
}

/// Whether a thread serves the queue.
pub(super) enum Thread {
    /// One does (or is opening the database).
    Running,
    /// None does; `starting` once one has been spawned to take over.
    Parked { parked: Parked, starting: bool },
    /// Closed, or the database could not be opened: jobs are refused.
    Gone,
}

/// The shared [`Thread`] state; its lock orders a submitter's check for a
/// thread after its send against an ending thread's last look at the queue.
pub(super) type Slot = Arc<Mutex<Thread>>;

/// Takes the slot's lock.
pub(super) fn lock(slot: &Mutex<Thread>) -> MutexGuard<'_, Thread> {
    // Nothing panics while holding it; a poisoned lock still holds a
    // consistent state.
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts a store thread running `f`.
pub(super) fn spawn(f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("roost-store".into())
        .spawn(f)
        .map(drop)
}

/// A new thread's start: takes what the last one parked and serves it.
pub(super) fn take_over(slot: &Mutex<Thread>, timing: Timing) {
    let taken = std::mem::replace(&mut *lock(slot), Thread::Running);
    let parked = match taken {
        Thread::Parked { parked, .. } => parked,
        // Only a submitter that saw it parked spawns a thread, and only
        // this thread takes what is parked; nothing else to serve.
        other => {
            *lock(slot) = other;
            return;
        }
    };
    serve_then_park(parked, slot, timing);
}

/// Serves until the queue is closed, then releases the store; or until
/// idle, then parks it for the next thread.
pub(super) fn serve_then_park(parked: Parked, slot: &Mutex<Thread>, timing: Timing) {
    match serve(&parked.store, &parked.rx, timing, slot) {
        Some(mut thread) => {
            *thread = Thread::Parked {
                parked,
                starting: false,
            }
        }
        None => {
            let Parked {
                store,
                rx,
                released,
            } = parked;
            *lock(slot) = Thread::Gone;
            // Refuse later jobs before anyone hears of the close.
            drop(rx);
            drop(store);
            let _ = released.send(true);
        }
    }
}
