//! Presence: who of my buddies is online, and who may see that I am.
//!
//! The rules are pure state machines (no I/O, injected clock):
//! [`Publisher`] (my state and its subscribers) and [`Watcher`] (my
//! buddies' states and my subscriptions to them). [`service`] is the one
//! task that drives them with the network and the buddy list.

mod publisher;
pub mod service;

pub use publisher::{
    Own, OwnStatus, Permission, Publisher, RETRY_MAX, RETRY_MIN, SUBSCRIPTION, Watcher,
};
