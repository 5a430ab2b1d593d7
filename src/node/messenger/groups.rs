//! The messaging service's side of group operations: it runs their store
//! jobs and queues the 1:1 copies they write, held back for confirmations
//! when a large group's message went out on gossip
//! (`node::groups::fast`).

use std::time::{Duration, Instant};

use super::{Event, Outgoing, Service};
use crate::store::{Flush, StoreError};

impl Service {
    /// Runs a group operation's store job (flushed before the caller is
    /// answered), then queues the 1:1 messages it wrote to the outbox.
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
        let hold = self.publish_fast(done.fast).await;
        for (peer, env) in done.out {
            match hold {
                Some(hold) => {
                    self.outbox.enqueue_held(env.id, peer, now + hold);
                    self.envelopes.insert(
                        env.id,
                        Outgoing {
                            envelope: env,
                            message: None,
                        },
                    );
                }
                None => self.queue(peer, env, None, now),
            }
        }
        for e in done.events {
            let _ = self.inbound.events.send(Event::Group(e));
        }
        Ok(done.answer)
    }

    /// Publishes a large group's message on its topic; how long its 1:1
    /// copies are held back for confirmations (`None`: nobody took the
    /// publication, so they go now).
    async fn publish_fast(
        &self,
        fast: Option<crate::node::groups::fast::Publish>,
    ) -> Option<Duration> {
        let f = fast?;
        match self.net.publish(f.topic, f.data).await {
            Ok(Ok(true)) => Some(f.hold),
            _ => None,
        }
    }
}
