//! The one way a task asks another for something: a request carrying a
//! reply channel, sent to the task's queue, and its answer awaited. The
//! network client and the node's handles all ask their tasks this way.

use tokio::sync::{mpsc, oneshot};

/// The task asked is gone (its queue or the reply channel closed): the
/// part of the node it ran has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gone;

/// Sends the request `make` builds around a reply channel to `to` and
/// awaits the reply.
pub(crate) async fn call<R, T>(
    to: &mpsc::Sender<R>,
    make: impl FnOnce(oneshot::Sender<T>) -> R,
) -> Result<T, Gone> {
    let (tx, rx) = oneshot::channel();
    to.send(make(tx)).await.map_err(|_| Gone)?;
    rx.await.map_err(|_| Gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answered_request_returns_the_reply_and_a_gone_task_is_gone() {
        let (tx, mut rx) = mpsc::channel::<oneshot::Sender<u32>>(1);
        let server = tokio::spawn(async move {
            if let Some(reply) = rx.recv().await {
                let _ = reply.send(7);
            }
            // Takes the next request and drops it unanswered, then stops.
            let _ = rx.recv().await;
        });
        assert_eq!(call(&tx, |r| r).await, Ok(7));
        assert_eq!(call(&tx, |r| r).await, Err(Gone), "dropped unanswered");
        server.await.unwrap();
        assert_eq!(call(&tx, |r| r).await, Err(Gone), "the task stopped");
    }
}
