//! Presence: who of my buddies is online, and who may see that I am.
//!
//! The rules are pure state machines (no I/O, injected clock):
//! [`Publisher`] (my state and its subscribers) and [`Watcher`] (my
//! buddies' states and my subscriptions to them). [`service`] is the one
//! task that drives them with the network and the buddy list.

use std::time::Duration;

mod publisher;
mod push;
pub mod service;
mod watcher;

pub use crate::wire::presence::{Own, OwnStatus};
pub use publisher::{Permission, Publisher};
pub use push::{MAX_PUSH_STREAMS, MAX_PUSHERS, PUSH_TIMEOUT, READING};
pub use watcher::{FIRST_RETRY, RETRY_MAX, RETRY_MIN, Watcher};

/// How long a subscription lasts before it must be renewed.
pub const SUBSCRIPTION: Duration = Duration::from_secs(600);
