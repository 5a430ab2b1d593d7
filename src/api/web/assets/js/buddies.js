// The buddy list (live presence, markers, unread counts, the latest
// message) and the buddy requests to accept.
import { api, seg } from './api.js';
import { $, el, when, say } from './dom.js';

let app;

export function init(a) {
  app = a;
  $('filter').addEventListener('input', render);
  $('filter').addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown') { e.preventDefault(); focusRow(0); }
    if (e.key === 'Enter') {
      const first = $('buddies').querySelector('button.open');
      if (first) { e.preventDefault(); first.click(); }
    }
  });
  $('buddies').addEventListener('keydown', (e) => {
    const rows = [...$('buddies').querySelectorAll('button.open')];
    const i = rows.indexOf(document.activeElement);
    if (i < 0) return;
    if (e.key === 'ArrowDown') { e.preventDefault(); focusRow(Math.min(i + 1, rows.length - 1)); }
    if (e.key === 'ArrowUp') { e.preventDefault(); if (i === 0) $('filter').focus(); else focusRow(i - 1); }
  });
}

function focusRow(i) {
  const rows = $('buddies').querySelectorAll('button.open');
  if (rows[i]) rows[i].focus();
}

/** The line under a buddy's name: note, activity, location, until. */
export function presenceLine(b) {
  const bits = [];
  if (b.note) bits.push(b.note);
  if (b.activity) bits.push(b.activity);
  if (b.location) bits.push(`@ ${b.location}`);
  if (b.until) bits.push(`until ${b.until}`);
  return bits.join(' · ');
}

/** Everyone to list: buddies, then keys that wrote but are not buddies. */
function entries() {
  const list = [...app.buddies.values()].map((b) => ({ id: b.id, b }));
  for (const id of app.convs.keys()) {
    if (!app.buddies.has(id) && app.convs.get(id).last) list.push({ id, b: null });
  }
  const rank = { online: 0, busy: 1, away: 2, offline: 3 };
  return list.sort((x, y) => {
    const ux = app.conv(x.id).unread > 0 ? 0 : 1;
    const uy = app.conv(y.id).unread > 0 ? 0 : 1;
    const sx = rank[x.b ? x.b.status : 'offline'];
    const sy = rank[y.b ? y.b.status : 'offline'];
    return ux - uy || sx - sy || app.nameOf(x.id).localeCompare(app.nameOf(y.id));
  });
}

function row({ id, b }) {
  const c = app.conv(id);
  const status = b ? b.status : 'offline';
  const last = c.last;
  const said = last && last.file ? `file: ${last.file.name}` : last && last.text;
  const preview = last ? `${last.direction === 'out' ? 'You: ' : ''}${said}` : (b ? presenceLine(b) : '');
  const marks = [];
  if (!b) marks.push(el('span', { class: 'mark', dataset: { mark: 'stranger' }, title: 'Not a buddy: wrote to you' }, 'stranger'));
  if (b && b.hidden) marks.push(el('span', { class: 'mark', dataset: { mark: 'hidden' }, title: 'This buddy sees you offline' }, 'hidden'));
  if (b && b.blocked) marks.push(el('span', { class: 'mark bad', dataset: { mark: 'blocked' }, title: 'Blocked: everything from this key is refused' }, 'blocked'));
  const label = `${app.nameOf(id)}, ${status}${c.unread ? `, ${c.unread} unread` : ''}`;
  return el('li', {
    class: `buddy${app.current === id ? ' current' : ''}`,
    dataset: { id, status },
  },
  el('button', { type: 'button', class: 'open', 'aria-label': label, onclick: () => app.open(id) },
    el('span', { class: `dot ${status}`, title: status, 'aria-hidden': 'true' }),
    el('span', { class: 'body' },
      el('span', { class: 'line1' },
        el('span', { class: 'name' }, app.nameOf(id)),
        marks,
        el('span', { class: 'status' }, status),
        last ? el('time', { class: 'at' }, when(last.sent_at)) : null),
      el('span', { class: 'line2' },
        el('span', { class: 'preview' }, preview),
        c.unread ? el('span', { class: 'unread', title: `${c.unread} unread` }, String(c.unread)) : null),
      b && last && presenceLine(b) ? el('span', { class: 'line3' }, presenceLine(b)) : null)));
}

function requestRow(r) {
  const msg = el('span', { class: 'msg-line' });
  const act = async (f, done) => {
    try { await f(); say(msg, done); await app.reloadAll(); } catch (e) { say(msg, e.message, true); }
  };
  return el('li', { class: 'request', dataset: { id: r.id } },
    el('code', { class: 'id', title: r.id }, r.id),
    el('div', { class: 'row' },
      el('button', { type: 'button', class: 'accept', onclick: () => act(() => api('POST', '/api/v1/buddies', { id: r.id }), 'added') }, 'Accept'),
      el('button', { type: 'button', onclick: () => act(() => api('POST', `/api/v1/buddies/${seg(r.id)}/block`, {}), 'blocked') }, 'Block'),
      msg));
}

/** Draws the list again from `app`'s state. */
export function render() {
  if (!app) return;
  const q = $('filter').value.trim().toLowerCase();
  const focused = document.activeElement && document.activeElement.closest('li.buddy');
  const focusedId = focused ? focused.dataset.id : null;
  const rows = entries().filter(({ id, b }) => !q || app.nameOf(id).toLowerCase().includes(q)
    || id.toLowerCase().includes(q) || (b && presenceLine(b).toLowerCase().includes(q)));
  $('buddies').replaceChildren(...rows.map(row));
  $('no-buddies').hidden = app.buddies.size > 0;
  $('requests').hidden = app.requests.length === 0;
  $('request-list').replaceChildren(...app.requests.map(requestRow));
  if (focusedId) {
    const again = $('buddies').querySelector(`li.buddy[data-id="${CSS.escape(focusedId)}"] button`);
    if (again) again.focus();
  }
  const unread = [...app.convs.values()].reduce((n, c) => n + c.unread, 0);
  document.title = unread ? `(${unread}) roost` : 'roost';
}

/** IDs in list order, for Alt+↑/↓. */
export function order() {
  return [...$('buddies').querySelectorAll('li.buddy')].map((li) => li.dataset.id);
}
