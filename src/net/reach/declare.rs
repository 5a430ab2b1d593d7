//! Which of our listen addresses a node under `dht_mode = "server"`
//! declares reachable.

use libp2p::Multiaddr;

use super::addr::scope;
use super::{MAX_ADDRS, Output, Reach};

impl Reach {
    /// Under `dht_mode = "server"` a listen address is declared reachable
    /// (the relay server hands our declared addresses out in reservations,
    /// and a client refuses a reservation without any). Only those of the
    /// widest scope among our listen addresses: a relay on the internet
    /// that declared its loopback or LAN (docker0…) addresses would hand
    /// out circuits through addresses nobody else can dial. A node on a LAN
    /// with no way out, or on loopback only (the tests), declares what it
    /// has; a wider address coming up later retracts the narrower ones.
    pub(super) fn declare_listen_addr(&mut self, addr: Multiaddr, out: &mut Vec<Output>) {
        let s = scope(&addr);
        if self.server_scope.is_some_and(|best| s < best) {
            return;
        }
        if self.server_scope.is_some_and(|best| s > best) {
            // (A user's own declaration is never among them: it was in
            // `declared` from the start.)
            for narrower in std::mem::take(&mut self.server_declared) {
                self.declared.remove(&narrower);
                out.push(Output::Retract(narrower));
            }
        }
        self.server_scope = Some(s);
        if self.declared.len() < MAX_ADDRS && self.declared.insert(addr.clone()) {
            self.server_declared.push(addr.clone());
            out.push(Output::Declare(addr));
        }
    }
}
