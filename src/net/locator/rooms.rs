//! The locator machine's rule for public rooms' records (`/roost/room/…`
//! keys, [`crate::wire::room`]): what a DHT node keeps when a peer puts
//! one to it. A valid signature by the record's owner, a key that is its
//! name's; then the first owner of a name keeps it — a record of another
//! owner never replaces a live one — and only a higher seq of that owner
//! replaces its record (a new ban list). First come is not Sybil-proof:
//! whoever reaches the holders first owns the name, and a holder that
//! never saw the owner's record (or whose copy expired) accepts a squatter.

use std::time::Duration;

use libp2p::PeerId;
use libp2p::kad::Record;
use tracing::debug;

use super::{Dht, Machine, Now};
use crate::wire::room::{self, RoomError};

/// How long a holder keeps a room record after its last put: the owner's
/// node puts it again well before ([`crate::node::rooms`]).
pub const ROOM_RECORD_TTL: Duration = Duration::from_secs(24 * 3600);

impl Machine {
    /// Keeps a room record `source` put to us if the rule above allows it;
    /// returns why not otherwise.
    pub(super) fn keep_room(
        &self,
        source: PeerId,
        mut record: Record,
        now: Now,
        dht: &mut impl Dht,
    ) -> Result<(), RoomError> {
        let held = dht.held(&record.key).filter(|r| !r.is_expired(now.at));
        if let Some(mut same) = held.clone().filter(|h| h.value == record.value) {
            // The owner's republication: the record was judged when it
            // landed; only its life is renewed, or it would lapse 24 h
            // after its first put however often the owner puts it again.
            same.expires = Some(now.at + ROOM_RECORD_TTL);
            if let Err(e) = dht.put_from(source, same, now.at) {
                debug!(%source, "room record not renewed: {e}");
            }
            return Ok(());
        }
        let new = room::validate_record(&record.key, &record.value)?;
        let held = held.and_then(|h| room::validate_record(&h.key, &h.value).ok());
        room::may_replace(held.as_ref(), &new)?;
        record.expires = Some(now.at + ROOM_RECORD_TTL);
        if let Err(e) = dht.put_from(source, record, now.at) {
            debug!(%source, "room record not stored: {e}");
        }
        Ok(())
    }
}
