//! roost: a peer-to-peer instant messenger.
//!
//! Every user runs a node. Nodes find each other through a Kademlia DHT on
//! a private protocol and publish signed *locator records* saying where they
//! can be reached. A user's ID is their ed25519 public key in PeerId form,
//! so finding a buddy needs nothing but that ID.
//!
//! Start at [`node::Node::start`]; it returns a [`node::NodeHandle`] that the
//! daemon, the local API, tests and the demo (in the binary) all use.

pub mod api;
pub mod backoff;
mod call;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod identity;
pub mod net;
pub mod node;
pub mod os;
pub mod store;
pub mod wire;

pub use config::Config;
pub use identity::Identity;
pub use node::{Content, Event, Node, NodeError, NodeHandle};
pub use wire::locator::Locator;
