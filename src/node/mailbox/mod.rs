//! The mailbox protocol's rules, with no I/O — sockets, sled and tokio stay
//! in the tasks that drive these machines (`node::messenger::{holder,
//! fetch, deposit}`):
//!
//! - [`placement`]: who holds a recipient's mailbox, how many
//!   acknowledgements make a deposit safe, to whom held items are handed
//!   on, which new peers may hold our own mail;
//! - [`ledger`]: the quota counts a holder keeps;
//! - [`react`]: when both machines react to a new peer in the routing
//!   table (a settle, at most every `REACT_EVERY`);
//! - [`holder`]: the holder machine — admission, quotas, expiry, hand-off,
//!   release — behind `/roost/mailbox/1`;
//! - [`fetcher`]: the fetcher machines — when to fetch our own mailbox,
//!   whom to ask, the bounds and acks of a fetch from one holder;
//! - [`receipted`]: which fetched messages still owe a delivery receipt.
//!
//! Each machine takes inputs with the time (`handle(input, now)`) and
//! returns what to do; its unit tests drive it through simulated time.

pub mod fetcher;
pub mod holder;
pub mod ledger;
pub mod placement;
pub mod react;
pub mod receipted;

pub use crate::config::{PAIR_ITEMS, Quotas};
pub use ledger::Ledger;
pub use placement::{Handed, Handoff, Reach, handoff, holders, outranks, quorum};
