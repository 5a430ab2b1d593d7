//! How a node stops: one cancellation token for its services, a task
//! tracker to know when they have ended, and a supervisor that then stops
//! the network and closes the store, in that order.
//!
//! 1. The services token is cancelled — by [`super::NodeHandle::shutdown`],
//!    or by dropping the last handle (its drop guard). The presence service
//!    tells its watchers `offline`; the messaging service, the mailbox
//!    holder (which closes its own store worker) and the event router end.
//! 2. Once the tracker has seen them all end, the network's token is
//!    cancelled: the event loop puts the locator's "offline" record (and
//!    waits for it to be stored, or a grace period), queues its last
//!    peer-book writes and drops the swarm.
//! 3. The store worker is closed: everything queued runs, is flushed, and
//!    the database is released, so the same data dir opens again at once.
//!
//! The order is the supervisor's, not the services': each only watches
//! its token. Short tasks the services spawn (links, sessions, lookups) are
//! not tracked: they end with their streams once the swarm is gone, and
//! they hold no store — only a worker handle, which refuses jobs once the
//! worker is closed.

use std::future::Future;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;

use crate::store::Worker;

/// What a node's services share to stop together: cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Tasks {
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl Tasks {
    /// Runs a service on the tracker: the node's shutdown waits for it.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(task);
    }

    /// Resolves once the services are told to stop.
    pub(crate) fn stopping(&self) -> WaitForCancellationFuture<'_> {
        self.stop.cancelled()
    }

    /// Cancels the services' token when dropped: held by the node's
    /// handles, so dropping the last one stops the node.
    pub(crate) fn drop_guard(&self) -> DropGuard {
        self.stop.clone().drop_guard()
    }

    /// Tells the services to stop.
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }
}

/// Resolves once the node has stopped entirely: services ended, network
/// left, store closed.
#[derive(Clone)]
pub(crate) struct Stopped(watch::Receiver<bool>);

impl Stopped {
    /// Waits for the node to have stopped.
    pub(crate) async fn wait(&self) {
        let mut rx = self.0.clone();
        // An error means the supervisor is gone, which only happens when
        // the runtime shuts down: nothing is left to wait for.
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// Starts the supervisor that runs the shutdown order above once the
/// services are told to stop.
pub(crate) fn supervise(
    tasks: Tasks,
    net_stop: CancellationToken,
    net: JoinHandle<()>,
    store: Worker,
) -> Stopped {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tasks.stopping().await;
        tasks.tracker.close();
        tasks.tracker.wait().await;
        net_stop.cancel();
        let _ = net.await;
        store.close().await;
        tracing::info!("node stopped");
        let _ = tx.send(true);
    });
    Stopped(rx)
}
