//! Invites on a running node: making ours from the addresses it would
//! publish now, and taking someone's — their addresses go to the network
//! first (so a node that knows nobody joins through them), then they
//! become a buddy. The format and its checks are [`crate::wire::invite`].

use std::time::Duration;

use libp2p::PeerId;

use super::{NodeError, NodeHandle};
use crate::clock::unix_ms;
use crate::wire::invite::{self, Invite, InviteError};

impl NodeHandle {
    /// A signed invite to this node, valid for `lifetime`: its text and
    /// what it says. The addresses are those our locator record would carry
    /// now, relay circuits included.
    pub async fn invite(&self, lifetime: Duration) -> Result<(String, Invite), NodeError> {
        if !(invite::MIN_LIFETIME..=invite::MAX_LIFETIME).contains(&lifetime) {
            return Err(InviteError::Lifetime.into());
        }
        let addrs = self.inner.net.public_addrs().await?;
        let now = unix_ms();
        let expires_at = now + lifetime.as_millis() as u64;
        let text = invite::create(&self.inner.identity, &addrs, expires_at)
            .map_err(|e| InviteError::Malformed(e.to_string()))?;
        let parsed = invite::parse(&text, now)?;
        Ok((text, parsed))
    }

    /// Adds the owner of the invite `text` as a buddy under `name` (or
    /// the start of its ID), once the network has its addresses and is
    /// dialling it: the buddy request and presence subscription that
    /// adding sends then find the owner even when this node knew no other
    /// peer. A refused invite changes nothing. Returns the new buddy's ID.
    pub async fn add_buddy_by_invite(
        &self,
        text: &str,
        name: Option<String>,
    ) -> Result<PeerId, NodeError> {
        let inv = invite::parse(text, unix_ms())?;
        self.inner.net.meet(inv.peer, inv.contacts()).await?;
        let name = name.unwrap_or_else(|| inv.peer.to_string().chars().skip(8).take(8).collect());
        self.add_buddy(inv.peer, name).await?;
        Ok(inv.peer)
    }
}
