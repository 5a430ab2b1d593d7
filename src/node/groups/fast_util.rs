//! What tests and benchmarks see of the large-group fast path: a group's
//! topic and the members gossipsub knows on it, and the means to put
//! chosen bytes on a topic (what a misbehaving member or stranger would
//! publish).

use super::{GroupOpError, NodeError, NodeHandle, fast, resolve};

impl NodeHandle {
    /// The gossipsub topic of `group`'s current epoch.
    pub async fn group_topic(&self, group: &str) -> Result<String, NodeError> {
        let group = group.to_string();
        let res = self
            .read(move |s| {
                Ok(resolve(s, &group).and_then(|id| {
                    let row = s.group(&id)?.ok_or(GroupOpError::UnknownGroup)?;
                    let epoch = row.state.open().map_err(super::GroupError::from)?.epoch;
                    let secret = row.secret.ok_or(super::GroupError::NotMember)?;
                    Ok(fast::topic(&secret, &id, epoch))
                }))
            })
            .await?;
        Ok(res?)
    }

    /// How many peers gossipsub knows to follow `group`'s current topic.
    pub async fn group_gossip_peers(&self, group: &str) -> Result<usize, NodeError> {
        let topic = self.group_topic(group).await?;
        Ok(self.inner.net.topic_peers(topic).await?.len())
    }

    /// How many catch-up questions this node has sent to other members of
    /// its large groups.
    #[cfg(feature = "test-util")]
    pub fn group_catch_ups(&self) -> usize {
        self.inner
            .groups
            .asks
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// How many group messages this node filed from catch-up answers
    /// (new ones only).
    #[cfg(feature = "test-util")]
    pub fn group_relayed(&self) -> usize {
        self.inner
            .groups
            .relayed
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// How many peers gossipsub knows to follow `topic`.
    #[cfg(feature = "test-util")]
    pub async fn gossip_topic_peers(&self, topic: String) -> Result<usize, NodeError> {
        Ok(self.inner.net.topic_peers(topic).await?.len())
    }

    /// Publishes `data` on `topic` as this node; whether a peer took it.
    #[cfg(feature = "test-util")]
    pub async fn gossip_publish(&self, topic: String, data: Vec<u8>) -> Result<bool, NodeError> {
        Ok(self.inner.net.publish(topic, data).await?.unwrap_or(false))
    }

    /// Seals a message to `group` claiming `claimed` as its sender, under
    /// `claimed`'s chain of the current epoch, unsigned: what a stranger
    /// who learnt the epoch secret could seal and sign as itself.
    #[cfg(feature = "test-util")]
    pub async fn group_seal_as(
        &self,
        group: &str,
        claimed: libp2p::PeerId,
        text: &str,
    ) -> Result<crate::wire::group::MsgBody, NodeError> {
        let (group, text) = (group.to_string(), text.to_string());
        let now = crate::clock::unix_ms();
        let res = self
            .read(move |s| {
                Ok(resolve(s, &group)
                    .and_then(|id| super::ops::seal_as(s, &id, &claimed, &text, now)))
            })
            .await?;
        Ok(res?)
    }
}
