//! What `net::reach` needs to know about an address.

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

pub(crate) use crate::wire::addr::{is_circuit, is_global};

/// An IP or DNS address that is not a relay circuit.
pub(super) fn is_direct(a: &Multiaddr) -> bool {
    use Protocol::{Dns, Dns4, Dns6, Ip4, Ip6};
    !is_circuit(a)
        && a.iter()
            .any(|p| matches!(p, Ip4(_) | Ip6(_) | Dns(_) | Dns4(_) | Dns6(_)))
}

/// An address on 0.0.0.0 or ::, which nobody can dial.
pub(super) fn is_unspecified(a: &Multiaddr) -> bool {
    a.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

/// Splits `…/p2p/R` into R and the transport address.
pub(crate) fn split_peer(a: &Multiaddr) -> Option<(PeerId, Multiaddr)> {
    let mut plain = a.clone();
    match plain.pop()? {
        Protocol::P2p(peer) => Some((peer, plain)),
        _ => None,
    }
}

/// How widely an address of ours can be dialled: by anyone on the
/// internet, by machines on our LAN (or behind the same carrier NAT), or
/// only on this host. Ordered: a greater scope reaches more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Scope {
    /// Loopback: this host only.
    Host,
    /// Private range, link-local, carrier-grade NAT space.
    Lan,
    /// Anything else (DNS names too).
    Global,
}

/// The [`Scope`] of `a`.
pub(super) fn scope(a: &Multiaddr) -> Scope {
    let loopback = a.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    });
    if loopback {
        Scope::Host
    } else if is_global(a) {
        Scope::Global
    } else {
        Scope::Lan
    }
}
