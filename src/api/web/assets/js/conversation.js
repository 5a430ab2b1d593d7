// The open conversation: history, live messages and their states (ours
// too when sent from elsewhere: `message_sent`), file offers as file lines
// (files.js; the parts of small files are not shown), search, the input
// line, marking read.
import { api, seg } from './api.js';
import { $, el, when, say } from './dom.js';
import { presenceLine } from './buddies.js';
import { PART, fileLine } from './files.js';

let app;
/** the open conversation's rows, oldest first */
let rows = [];
/** states that arrived before the send answered: id → state */
const early = new Map();
/** the whole history, loaded when searching */
let searchRows = null;

const RANK = { queued: 0, stored: 1, delivered: 2, read: 3, failed: 4 };
const LABEL = { queued: 'queued', stored: 'stored', delivered: 'delivered', read: 'read', failed: 'failed' };
const ICON = { queued: '◷', stored: '✓', delivered: '✓✓', read: '✓✓', failed: '✕' };

export function init(a) {
  app = a;
  $('compose').addEventListener('submit', (e) => { e.preventDefault(); send(); });
  $('text').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  $('back').addEventListener('click', () => close());
  $('search').addEventListener('input', search);
  $('search').addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && $('search').value) { e.stopPropagation(); $('search').value = ''; search(); }
  });
  $('hide-btn').addEventListener('click', () => toggle('hidden', 'hide', 'show'));
  $('block-btn').addEventListener('click', () => toggle('blocked', 'block', 'unblock'));
  document.addEventListener('visibilitychange', () => { if (!document.hidden) markRead(); });
}

export async function open(id) {
  app.current = id;
  $('empty').hidden = true;
  $('conv').hidden = false;
  $('layout').classList.add('in-conv');
  $('search').value = '';
  searchRows = null;
  header();
  rows = [];
  draw();
  app.renderList();
  await load();
  markRead();
  $('text').focus();
}

export function close() {
  const was = app.current;
  app.current = null;
  $('conv').hidden = true;
  $('empty').hidden = false;
  $('layout').classList.remove('in-conv');
  app.renderList();
  const row = was && $('buddies').querySelector(`li.buddy[data-id="${CSS.escape(was)}"] button`);
  if (row) row.focus(); else $('filter').focus();
}

async function load() {
  const id = app.current;
  if (!id) return;
  const got = await api('GET', `/api/v1/log/${seg(id)}?limit=200&parts=false`);
  if (app.current !== id) return;
  // Messages that arrived live while the history was on its way stay.
  const have = new Set(got.map((m) => m.id));
  const live = rows.filter((m) => !have.has(m.id) && m.peer === id);
  rows = got.concat(live).sort((x, y) => x.sent_at - y.sent_at || (x.id < y.id ? -1 : 1));
  draw();
}

export async function reload() {
  if (app.current) { await load(); markRead(); }
}

/** The header: name, presence, the hide and block buttons. */
export function header() {
  const id = app.current;
  if (!id) return;
  const b = app.buddies.get(id);
  $('conv-name').textContent = app.nameOf(id);
  $('conv-name').title = id;
  const status = b ? b.status : 'not a buddy';
  const line = b ? presenceLine(b) : '';
  $('conv-presence').textContent = line ? `${status} — ${line}` : status;
  $('conv-presence').dataset.status = b ? b.status : 'offline';
  $('hide-btn').hidden = !b;
  $('hide-btn').textContent = b && b.hidden ? 'Show me' : 'Hide me';
  $('block-btn').textContent = b && b.blocked ? 'Unblock' : 'Block';
}

async function toggle(field, on, off) {
  const id = app.current;
  const b = app.buddies.get(id);
  const action = b && b[field] ? off : on;
  try {
    await api('POST', `/api/v1/buddies/${seg(id)}/${action}`, {});
    await app.reloadBuddies();
  } catch (e) { say($('send-msg'), e.message, true); }
}

function stateOf(m) {
  if (m.direction === 'in') return null;
  const s = m.state;
  return el('span', { class: `state ${s}`, dataset: { state: s }, title: LABEL[s] || s },
    el('span', { 'aria-hidden': 'true' }, ICON[s] || ''), ` ${LABEL[s] || s}`);
}

function highlight(text, q) {
  if (!q) return [text];
  const out = [];
  const low = text.toLowerCase();
  let i = 0;
  for (;;) {
    const j = low.indexOf(q, i);
    if (j < 0) { out.push(text.slice(i)); break; }
    out.push(text.slice(i, j), el('mark', {}, text.slice(j, j + q.length)));
    i = j + q.length;
  }
  return out;
}

function msgRow(m, q) {
  return el('li', { class: `msg ${m.direction}`, dataset: { id: m.id, state: m.state } },
    el('div', { class: 'bubble' },
      m.subject ? el('div', { class: 'subject' }, m.subject) : null,
      m.file ? fileLine(m.file, m) : el('div', { class: 'text' }, highlight(m.text, q)),
      el('div', { class: 'meta' },
        el('time', { datetime: new Date(m.sent_at).toISOString(), title: new Date(m.sent_at).toString() }, when(m.sent_at)),
        stateOf(m))));
}

/** Whether a message has a line: a part of a small file has none. */
const visible = (m) => m.content_type !== PART;

function draw() {
  const q = $('search').value.trim().toLowerCase();
  const list = $('messages');
  const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  let shown = rows.filter(visible);
  if (q) {
    shown = (searchRows || rows).filter(visible).filter((m) => m.text.toLowerCase().includes(q)
      || (m.subject || '').toLowerCase().includes(q));
    $('search-info').hidden = false;
    $('search-info').textContent = `${shown.length} message${shown.length === 1 ? '' : 's'} with “${q}” — Esc clears`;
  } else {
    $('search-info').hidden = true;
  }
  list.replaceChildren(...shown.map((m) => msgRow(m, q)));
  if (!q && (atEnd || list.dataset.peer !== app.current)) list.scrollTop = list.scrollHeight;
  list.dataset.peer = app.current || '';
}

async function search() {
  const id = app.current;
  if ($('search').value.trim() && !searchRows && id) {
    const all = await api('GET', `/api/v1/log/${seg(id)}?limit=10000&parts=false`);
    if (app.current === id) searchRows = all;
  }
  draw();
}

async function markRead() {
  const id = app.current;
  if (!id || document.hidden) return;
  const c = app.conv(id);
  const unread = rows.some((m) => m.direction === 'in' && m.state === 'unread');
  if (!c.unread && !unread) return;
  try {
    await api('POST', `/api/v1/read/${seg(id)}`, {});
    c.unread = 0;
    for (const m of rows) if (m.direction === 'in') m.state = 'read';
    app.renderList();
  } catch (_) { /* shown on the next reload */ }
}

async function send() {
  const id = app.current;
  const box = $('text');
  const text = box.value;
  if (!id || !text.trim()) return;
  box.value = '';
  try {
    const r = await api('POST', '/api/v1/send', { to: id, text });
    const m = { id: r.id, direction: 'out', state: early.get(r.id) || r.state, peer: id, from: app.me, sent_at: Date.now(), content_type: 'text/plain', text, request: false };
    early.delete(r.id);
    if (!rows.some((x) => x.id === m.id)) rows.push(m);
    if (searchRows) searchRows.push(m);
    const c = app.conv(id);
    c.last = m;
    draw();
    app.renderList();
  } catch (e) {
    box.value = text;
    say($('send-msg'), `not sent: ${e.message}`, true);
  }
}

/** Applies a live event to the open conversation. */
export function event(ev) {
  if ((ev.type === 'message' || ev.type === 'message_sent') && ev.peer === app.current) {
    // A receipt can overtake the event of the message it is about.
    const st = early.get(ev.id);
    if (st && (RANK[st] ?? 0) > (RANK[ev.state] ?? 0)) ev.state = st;
    early.delete(ev.id);
    if (!rows.some((m) => m.id === ev.id)) rows.push(ev);
    if (searchRows && !searchRows.some((m) => m.id === ev.id)) searchRows.push(ev);
    draw();
    markRead();
  } else if (ev.type === 'state') {
    let found = false;
    for (const list of [rows, searchRows || []]) {
      for (const m of list) {
        if (m.id === ev.id) {
          found = true;
          if ((RANK[ev.state] ?? 0) >= (RANK[m.state] ?? 0)) m.state = ev.state;
        }
      }
    }
    if (!found) early.set(ev.id, ev.state);
    if (early.size > 256) early.delete(early.keys().next().value);
    if (ev.peer === app.current) draw();
  } else if (ev.type === 'presence' && ev.id === app.current) {
    header();
  }
}
