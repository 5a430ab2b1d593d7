//! What the wire formats need to know about an address: whether it is a
//! relay circuit, and whether anyone on the internet could dial it (invites list those first; `net::reach`
//! counts only those as reachability).

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

/// A relay circuit address.
pub(crate) fn is_circuit(a: &Multiaddr) -> bool {
    a.iter().any(|p| p == Protocol::P2pCircuit)
}

/// An address others on the internet could dial: not loopback, link-local,
/// a private range (RFC 1918, RFC 4193) or shared carrier-grade NAT space
/// (100.64/10). A neighbour on the same LAN, or behind the same carrier
/// NAT, can reach such an address and AutoNAT v2 would confirm it, but it
/// says nothing of whether a buddy elsewhere can. DNS names count as
/// global; documentation ranges too (the namespace tests use TEST-NET-2).
pub(crate) fn is_global(a: &Multiaddr) -> bool {
    a.iter().all(|p| match p {
        Protocol::Ip4(ip) => {
            let [a, b, ..] = ip.octets();
            !(ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || (a == 100 && (64..128).contains(&b)))
        }
        Protocol::Ip6(ip) => {
            let first = ip.segments()[0];
            !(ip.is_loopback()
                || ip.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
        _ => true,
    })
}
