// Talking to the daemon: JSON over fetch (the session cookie goes along by
// itself) and the live event stream. Every view goes through here.

/** An answer of the API that was not 2xx: `message` is its `error`. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let onLoggedOut = () => {};

/** What to do when the daemon no longer knows this browser (401). */
export function whenLoggedOut(f) { onLoggedOut = f; }

/** `method path` with an optional JSON body; resolves to the parsed answer. */
export async function api(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  if (r.status === 401) onLoggedOut();
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!r.ok) throw new ApiError(r.status, (data && data.error) || `HTTP ${r.status}`);
  return data;
}

/** A path segment for a peer (an ID, or a name with any characters). */
export const seg = (s) => encodeURIComponent(s);

/**
 * Opens the event stream. `handlers.event(ev)` gets each parsed event,
 * `handlers.status('live'|'reconnecting')` the connection's state; after a
 * reconnect `handlers.resync()` reloads what may have been missed.
 */
export function listen(handlers) {
  let dropped = false;
  const es = new EventSource('/api/v1/events');
  es.onopen = () => {
    handlers.status('live');
    if (dropped) handlers.resync();
    dropped = false;
  };
  es.onerror = () => {
    dropped = true;
    handlers.status('reconnecting');
  };
  es.onmessage = (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch (_) { return; }
    handlers.event(ev);
  };
  return es;
}
