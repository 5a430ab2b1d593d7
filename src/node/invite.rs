//! Invites on a running node: making ours from the addresses it would
//! publish now, and taking someone's — their addresses go to the network
//! first (so a node that knows nobody joins through them), then they
//! become a buddy. The format and its checks are [`crate::wire::invite`].

use std::time::Duration;

use libp2p::{Multiaddr, PeerId};

use super::{NodeError, NodeHandle};
use crate::clock::unix_ms;
use crate::config::Config;
use crate::wire::invite::{self, Invite, InviteError};

/// The addresses a node starting with `config` joins through at
/// `now_ms`: the configured ones, and those of each configured invite
/// ([`Invite::bootstrap_addrs`]: its owner's and its relays'). One invite
/// refused refuses them all: a node that quietly joined through fewer
/// peers than it was told would leave the user guessing why it knows
/// no one.
pub(super) fn bootstrap(config: &Config, now_ms: u64) -> Result<Vec<Multiaddr>, InviteError> {
    let mut addrs = config.bootstrap.clone();
    for text in &config.bootstrap_invites {
        addrs.extend(invite::parse(text, now_ms)?.bootstrap_addrs());
    }
    Ok(addrs)
}

impl NodeHandle {
    /// A signed invite to this node, valid for `lifetime`: its text and
    /// what it says. The addresses are those our locator record would carry
    /// now, relay circuits included.
    pub async fn invite(&self, lifetime: Duration) -> Result<(String, Invite), NodeError> {
        if !(invite::MIN_LIFETIME..=invite::MAX_LIFETIME).contains(&lifetime) {
            return Err(InviteError::Lifetime.into());
        }
        let addrs = self.inner.net.public_addrs().await?;
        let expires_at = unix_ms() + lifetime.as_millis() as u64;
        invite::make(&self.inner.identity, &addrs, expires_at)
            .map_err(|e| InviteError::Malformed(e.to_string()).into())
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
        let name = name.unwrap_or_else(|| crate::identity::default_name(&inv.peer));
        self.add_buddy(inv.peer, name).await?;
        Ok(inv.peer)
    }
}

#[cfg(test)]
mod tests {
    use libp2p::multiaddr::Protocol;

    use super::*;
    use crate::Identity;

    #[test]
    fn invites_stand_for_their_addresses_and_a_bad_one_stops_the_start() {
        const NOW: u64 = 1_800_000_000_000;
        let owner = Identity::generate().unwrap();
        let at: Multiaddr = "/ip4/192.0.2.1/tcp/7117".parse().unwrap();
        let peer: Multiaddr = format!("/ip4/10.0.0.1/tcp/7117/p2p/{}", owner.peer_id())
            .parse()
            .unwrap();
        let mut config = Config::new("/nonexistent".into());
        config.bootstrap.push(peer.clone());
        let at_list = std::slice::from_ref(&at);
        let good = invite::create(&owner, at_list, NOW + 1).unwrap();
        config.bootstrap_invites.push(good);
        let owner_at = at.clone().with(Protocol::P2p(owner.peer_id()));
        assert_eq!(bootstrap(&config, NOW), Ok(vec![peer, owner_at]));

        let expired = invite::create(&owner, at_list, NOW).unwrap();
        for (bad, says) in [
            (expired, "this invite expired on"),
            ("hello".to_string(), "not a roost invite"),
            ("roost:HELLO".to_string(), "damaged or incomplete"),
        ] {
            let mut c = config.clone();
            c.bootstrap_invites.push(bad);
            let err = bootstrap(&c, NOW).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }
}
