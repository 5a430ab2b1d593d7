//! The messaging service's side of group operations: it runs their store
//! jobs, queues the 1:1 messages they write, and publishes a large
//! group's message on its topic (`node::groups::fast`).

use std::time::Instant;

use super::{Event, Service};
use crate::store::{Flush, StoreError};

impl Service {
    /// Runs a group operation's store job (flushed before the caller is
    /// answered), then queues the 1:1 messages it wrote to the outbox and
    /// publishes a large group's message.
    pub(super) async fn group(
        &mut self,
        job: crate::node::groups::Job,
    ) -> Result<crate::node::groups::Answer, crate::node::groups::GroupOpError> {
        let done = self
            .inbound
            .queue
            .reply(Flush::Now, move |s| Ok(job(s)))
            .await
            .map_err(|_| StoreError::Failed("store thread stopped".into()))??;
        let done = done?;
        let now = Instant::now();
        if let Some(f) = done.fast {
            // Nobody to give it to now (no member in our mesh yet) is no
            // loss: it is in our log, and members catch up from it.
            if !matches!(self.net.publish(f.topic, f.data).await, Ok(Ok(true))) {
                tracing::debug!("a large group's message reached nobody on gossip yet");
            }
        }
        for (peer, env) in done.out {
            self.queue(peer, env, None, now);
        }
        for e in done.events {
            let _ = self.inbound.events.send(Event::Group(e));
        }
        Ok(done.answer)
    }
}
