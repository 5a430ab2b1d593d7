//! What a partial copy holds, for serving it: verifying a partial file
//! against its outboard reads the whole file, so it is done once per copy,
//! not per request. A download in progress keeps its own list (what was
//! on disk at its start plus every piece verified since); a copy nobody
//! writes to (a paused download) is verified once and remembered until a
//! download or a mailbox part writes to it again.

use super::{LocalCopy, Shared, bao};
use crate::wire::files::Span;
use crate::wire::message::MessageId;

/// Most partial copies whose verified ranges are remembered; past it the
/// memory starts afresh.
const MAX_REMEMBERED: usize = 256;

/// Adds `s` to the sorted, disjoint `spans`, merging what touches it.
pub(super) fn add_span(spans: &mut Vec<Span>, s: Span) {
    if s.0 >= s.1 {
        return;
    }
    let (mut a, mut b) = s;
    let first = spans.partition_point(|&(_, e)| e < a);
    let mut last = first;
    while last < spans.len() && spans[last].0 <= b {
        a = a.min(spans[last].0);
        b = b.max(spans[last].1);
        last += 1;
    }
    spans.splice(first..last, [(a, b)]);
}

impl Shared {
    /// The chunk ranges `copy` holds, verified.
    pub(super) async fn held(&self, copy: &LocalCopy) -> Vec<Span> {
        if copy.complete {
            return vec![(0, bao::chunks(copy.size))];
        }
        let live = self.live.lock().ok().and_then(|l| l.get(&copy.id).cloned());
        if let Some(l) = live {
            return l.verified.lock().map(|v| v.clone()).unwrap_or_default();
        }
        let known = self.held.lock().ok().and_then(|h| h.get(&copy.id).cloned());
        if let Some(h) = known {
            return h;
        }
        let c = copy.clone();
        let spans =
            tokio::task::spawn_blocking(move || bao::verified(&c.data, &c.obao, c.size, c.root))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
        if let Ok(mut h) = self.held.lock() {
            if h.len() >= MAX_REMEMBERED {
                h.clear();
            }
            h.insert(copy.id, spans.clone());
        }
        spans
    }

    /// Forgets what partial copy `id` holds: something writes to it.
    pub(super) fn forget_held(&self, id: &MessageId) {
        if let Ok(mut h) = self.held.lock() {
            h.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_merge_as_pieces_arrive() {
        let mut v = Vec::new();
        add_span(&mut v, (10, 20));
        add_span(&mut v, (30, 40));
        assert_eq!(v, vec![(10, 20), (30, 40)]);
        add_span(&mut v, (0, 5));
        assert_eq!(v, vec![(0, 5), (10, 20), (30, 40)]);
        add_span(&mut v, (20, 30));
        assert_eq!(v, vec![(0, 5), (10, 40)], "touching spans merge");
        add_span(&mut v, (3, 12));
        assert_eq!(v, vec![(0, 40)]);
        add_span(&mut v, (50, 50));
        assert_eq!(v, vec![(0, 40)], "an empty span adds nothing");
        add_span(&mut v, (45, 60));
        add_span(&mut v, (41, 44));
        assert_eq!(v, vec![(0, 40), (41, 44), (45, 60)]);
    }
}
