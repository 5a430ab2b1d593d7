//! What goes in and out of the holder machine ([`super::Holder`]): the
//! holder task turns requests, routing changes and store results into
//! [`Input`]s and runs the [`Output`]s.

use libp2p::PeerId;

use crate::store::{Admitted, HeldItem};
use crate::wire::mailbox::{Encoding, ItemHash, MailboxRequest, MailboxResponse};
use crate::wire::message::{Envelope, MessageId};

/// Names one deposit batch between [`Output::Hold`] and [`Input::Held`].
pub type DepositId = u64;
/// Names one hand-off pass between its outputs and their results.
pub type PassId = u64;

/// What the holder task tells the machine.
#[derive(Debug)]
pub enum Input {
    /// The items found in the store at start (to rebuild the ledger).
    Loaded(Vec<HeldItem>),
    /// A mailbox request from `peer` (authenticated by its connection).
    Request {
        /// Who asks.
        peer: PeerId,
        /// What it asks.
        request: MailboxRequest,
    },
    /// [`Output::Encode`] ran: the deposit's envelopes, each with its
    /// encoding (`None` if it has none).
    Encoded {
        /// Who deposits.
        peer: PeerId,
        /// The envelopes, in their order.
        batch: Vec<(Envelope, Option<Encoding>)>,
    },
    /// The store ran [`Output::Hold`]: per item whether it was new, or
    /// `None` if nothing could be written.
    Held {
        /// Which batch.
        deposit: DepositId,
        /// Per admitted item, `true` unless these exact bytes were held.
        fresh: Option<Vec<bool>>,
    },
    /// The store ran [`Output::Release`] (the recipient's ack): what went,
    /// or `None` if it failed.
    Acked(Option<Vec<HeldItem>>),
    /// Items went otherwise (a purge, a hand-off's release).
    Removed(Vec<HeldItem>),
    /// `peer` entered our routing table.
    NewPeer(PeerId),
    /// The store ran [`Output::ReadHeld`]: every item held for
    /// `recipient`, with its hash.
    HeldFor {
        /// Whose mailbox.
        recipient: PeerId,
        /// Its items.
        items: Vec<(ItemHash, Envelope)>,
    },
    /// The lookup of [`Output::Lookup`] found these peers (none if it
    /// failed).
    Found {
        /// Which pass.
        pass: PassId,
        /// The closest peers found.
        peers: Vec<PeerId>,
    },
    /// [`Output::Copy`] ended: whether `peer` confirmed every item.
    Copied {
        /// Which pass.
        pass: PassId,
        /// The target.
        peer: PeerId,
        /// Whether it answered `Stored` for all of them.
        confirmed: bool,
    },
    /// The time in [`super::Holder::poll_timeout`] has come.
    Tick,
}

/// What the machine asks the holder task to do.
#[derive(Debug)]
pub enum Output {
    /// Answer the request being served with this.
    Respond(MailboxResponse),
    /// Encode and hash a deposit's envelopes with [`super::encode_deposit`] (CPU
    /// work, off the async tasks), then report [`Input::Encoded`].
    Encode {
        /// Who deposits.
        peer: PeerId,
        /// At most [`crate::wire::mailbox::DEPOSIT_BATCH`] envelopes.
        envelopes: Vec<Envelope>,
    },
    /// Write these items durably (`fdatasync` before returning), then
    /// report [`Input::Held`]; the answer follows it.
    Hold {
        /// Which batch, for [`Input::Held`].
        deposit: DepositId,
        /// What to write (moved, not copied, into the store job).
        items: Vec<Admitted>,
    },
    /// Answer with the page of `recipient`'s items from `cursor`.
    Page {
        /// Whose mailbox (the asker itself).
        recipient: PeerId,
        /// Where the page starts.
        cursor: u64,
    },
    /// Delete `recipient`'s items under these ids, then report
    /// [`Input::Acked`]; the answer follows it.
    Release {
        /// Whose mailbox (the asker itself).
        recipient: PeerId,
        /// What it acknowledged.
        ids: Vec<MessageId>,
    },
    /// Delete the items expired at `wall_ms`, then report [`Input::Removed`].
    Purge {
        /// Unix ms.
        wall_ms: u64,
    },
    /// Read every item held for this recipient, then report
    /// [`Input::HeldFor`] (a hand-off pass starts).
    ReadHeld(PeerId),
    /// Look up the peers closest to `key`, then report [`Input::Found`].
    Lookup {
        /// Which pass.
        pass: PassId,
        /// The mailbox key.
        key: Vec<u8>,
    },
    /// Deposit these envelopes with `peer`, then report [`Input::Copied`].
    Copy {
        /// Which pass.
        pass: PassId,
        /// The target.
        peer: PeerId,
        /// The items it is not known to hold.
        envelopes: Vec<Envelope>,
    },
    /// Delete exactly these items of `recipient` (handed on), then report
    /// [`Input::Removed`].
    ReleaseItems {
        /// Whose mailbox.
        recipient: PeerId,
        /// The items.
        items: Vec<(MessageId, ItemHash)>,
    },
}
