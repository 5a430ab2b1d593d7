// Groups: the list of my groups (unread counts, a public marker), pending
// invitations to accept, creating a group, and the open group's pane — its
// log with sender names and membership changes, live messages, the input
// line, members with roles, inviting a buddy (picked or pasted) and leaving.
// Everything goes through /api/v1/groups…; a row's `public` flag is only
// shown. `room_message` events count as messages of the group `room`.
import { api, seg } from './api.js';
import { $, el, when, say } from './dom.js';

let app;
/** my groups [{id, name, members, public}] */
let groups = [];
/** pending invitations [{id, name, from}] */
let invites = [];
/** unread counts by group id, counted in this page since it loaded */
const unread = new Map();
/** the open group's log rows, oldest first */
let rows = [];
/** the open group's members [{id, name, role}] */
let members = [];

/** A peer ID in a membership line (base58, as the daemon writes them). */
const ID_RE = /\b[1-9A-HJ-NP-Za-km-z]{46,60}\b/g;

export function init(a) {
  app = a;
  app.group = null;
  $('new-group').addEventListener('submit', (e) => { e.preventDefault(); create(); });
  $('gcompose').addEventListener('submit', (e) => { e.preventDefault(); send(); });
  $('gtext').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  $('gback').addEventListener('click', () => close());
  $('gmembers-btn').addEventListener('click', () => showMembers($('gmembers').hidden));
  $('ginvite').addEventListener('submit', (e) => { e.preventDefault(); invite(); });
  $('gleave-btn').addEventListener('click', leave);
  $('group-list').addEventListener('keydown', (e) => {
    const list = [...$('group-list').querySelectorAll('button.open')];
    const i = list.indexOf(document.activeElement);
    if (i < 0) return;
    if (e.key === 'ArrowDown' && list[i + 1]) { e.preventDefault(); list[i + 1].focus(); }
    if (e.key === 'ArrowUp' && list[i - 1]) { e.preventDefault(); list[i - 1].focus(); }
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && app.group) { unread.delete(app.group); render(); }
  });
}

/** Loads my groups and the invitations again (and the open group's log). */
export async function reload() {
  const [g, inv] = await Promise.all([
    api('GET', '/api/v1/groups'),
    api('GET', '/api/v1/groups/invitations'),
  ]);
  groups = g;
  invites = inv;
  render();
  if (app.group) {
    if (!groups.some((x) => x.id === app.group)) {
      $('gconv-sub').textContent = 'You are no longer in this group.';
      $('gcompose').hidden = true;
      return;
    }
    await load();
    if (!$('gmembers').hidden) await loadMembers();
  }
}

const groupOf = (id) => groups.find((g) => g.id === id);

/** The display of a membership line: known IDs as names. */
function named(text) {
  return text.replace(ID_RE, (id) => (id === app.me ? 'you' : app.nameOf(id)));
}

function groupRow(g) {
  const n = unread.get(g.id) || 0;
  const label = `${g.name}, ${g.members} member${g.members === 1 ? '' : 's'}${g.public ? ', public' : ''}${n ? `, ${n} unread` : ''}`;
  return el('li', { class: `buddy group${app.group === g.id ? ' current' : ''}`, dataset: { id: g.id, public: g.public ? '1' : '0' } },
    el('button', { type: 'button', class: 'open', 'aria-label': label, onclick: () => open(g.id) },
      el('span', { class: 'gicon', 'aria-hidden': 'true' }, '#'),
      el('span', { class: 'body' },
        el('span', { class: 'line1' },
          el('span', { class: 'name' }, g.name),
          g.public ? el('span', { class: 'mark', dataset: { mark: 'public' }, title: 'A public room: anyone may join by its name' }, 'public') : null,
          el('span', { class: 'status' }, `${g.members} member${g.members === 1 ? '' : 's'}`)),
        n ? el('span', { class: 'line2' },
          el('span', { class: 'preview' }, ''),
          el('span', { class: 'unread', title: `${n} unread` }, String(n))) : null)));
}

function inviteRow(inv) {
  const msg = el('span', { class: 'msg-line' });
  const accept = async () => {
    try {
      await api('POST', `/api/v1/groups/${seg(inv.id)}/join`, {});
      say(msg, 'joined');
      await reload();
    } catch (e) { say(msg, e.message, true); }
  };
  return el('li', { class: 'request ginvite', dataset: { id: inv.id } },
    el('span', { class: 'name' }, inv.name),
    el('span', { class: 'hint' }, ` from ${app.nameOf(inv.from)}`),
    el('div', { class: 'row' },
      el('button', { type: 'button', class: 'accept', onclick: accept }, 'Accept'),
      msg));
}

/** Draws the group list and the invitations. */
export function render() {
  if (!app) return;
  const focused = document.activeElement && document.activeElement.closest('li.group');
  const focusedId = focused ? focused.dataset.id : null;
  const sorted = [...groups].sort((x, y) => ((unread.get(y.id) || 0) > 0) - ((unread.get(x.id) || 0) > 0)
    || x.name.localeCompare(y.name));
  $('group-list').replaceChildren(...sorted.map(groupRow));
  $('no-groups').hidden = groups.length > 0;
  $('group-list').hidden = groups.length === 0;
  $('group-invites').hidden = invites.length === 0;
  $('ginvite-list').replaceChildren(...invites.map(inviteRow));
  if (focusedId) {
    const again = $('group-list').querySelector(`li.group[data-id="${CSS.escape(focusedId)}"] button`);
    if (again) again.focus();
  }
}

/** Opens the group `id` in the chat pane (closing a buddy's conversation). */
export async function open(id) {
  if (app.current) app.close();
  app.hideFiles();
  app.group = id;
  unread.delete(id);
  $('empty').hidden = true;
  $('conv').hidden = true;
  $('gconv').hidden = false;
  $('gcompose').hidden = false;
  $('layout').classList.add('in-conv');
  showMembers(false);
  header();
  rows = [];
  draw();
  render();
  await load();
  $('gtext').focus();
}

/** Back to the list, the group's row focused. */
export function close() {
  const was = app.group;
  app.group = null;
  $('gconv').hidden = true;
  $('empty').hidden = false;
  $('layout').classList.remove('in-conv');
  render();
  const row = was && $('group-list').querySelector(`li.group[data-id="${CSS.escape(was)}"] button`);
  if (row) row.focus();
}

/** Hides the group pane without moving focus (a buddy's conversation opens). */
export function hide() {
  if (!app.group) return;
  app.group = null;
  $('gconv').hidden = true;
  render();
}

function header() {
  const g = groupOf(app.group);
  $('gconv-name').textContent = g ? g.name : '';
  $('gconv-name').title = app.group || '';
  $('gconv-sub').textContent = g
    ? `${g.public ? 'public room' : 'private group'} · ${g.members} member${g.members === 1 ? '' : 's'}`
    : '';
}

async function load() {
  const id = app.group;
  if (!id) return;
  const got = await api('GET', `/api/v1/groups/${seg(id)}/log?limit=200`);
  if (app.group !== id) return;
  rows = got;
  header();
  draw();
}

function msgRow(m) {
  if (m.id.startsWith('state-') || m.system) {
    const text = m.text.startsWith('* ') ? m.text.slice(2) : m.text;
    return el('li', { class: 'sys', dataset: { id: m.id } },
      el('span', {}, named(text)),
      m.sent_at ? el('time', { class: 'at' }, ` · ${when(m.sent_at)}`) : null);
  }
  const mine = m.from === app.me;
  return el('li', { class: `msg gmsg ${mine ? 'out' : 'in'}`, dataset: { id: m.id, from: m.from } },
    el('div', { class: 'bubble' },
      mine ? null : el('div', { class: 'from', title: m.from }, m.from_name || app.nameOf(m.from)),
      el('div', { class: 'text' }, m.text),
      el('div', { class: 'meta' },
        el('time', { datetime: new Date(m.sent_at).toISOString(), title: new Date(m.sent_at).toString() }, when(m.sent_at)))));
}

function draw() {
  const list = $('gmessages');
  const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.replaceChildren(...rows.map(msgRow));
  if (atEnd || list.dataset.group !== app.group) list.scrollTop = list.scrollHeight;
  list.dataset.group = app.group || '';
}

async function create() {
  const input = $('new-group-name');
  const name = input.value.trim();
  if (!name) return;
  try {
    const g = await api('POST', '/api/v1/groups', { name });
    input.value = '';
    say($('group-msg'), `created ${g.name}`);
    await reload();
    await open(g.id);
  } catch (e) { say($('group-msg'), e.message, true); }
}

async function send() {
  const id = app.group;
  const box = $('gtext');
  const text = box.value;
  if (!id || !text.trim()) return;
  box.value = '';
  try {
    const r = await api('POST', `/api/v1/groups/${seg(id)}/send`, { text });
    if (app.group === id && !rows.some((x) => x.id === r.id)) {
      rows.push({ id: r.id, from: app.me, from_name: 'you', sent_at: Date.now(), text });
      draw();
    }
  } catch (e) {
    box.value = text;
    say($('gsend-msg'), `not sent: ${e.message}`, true);
  }
}

async function showMembers(on) {
  $('gmembers').hidden = !on;
  $('gmembers-btn').setAttribute('aria-expanded', on ? 'true' : 'false');
  if (on) {
    await loadMembers();
    $('ginvite-pick').focus();
  }
}

async function loadMembers() {
  const id = app.group;
  if (!id) return;
  const got = await api('GET', `/api/v1/groups/${seg(id)}/members`);
  if (app.group !== id) return;
  members = got;
  $('gmember-list').replaceChildren(...members.map((m) => el('li', { class: 'member', dataset: { id: m.id, role: m.role } },
    el('span', { class: 'name', title: m.id }, m.id === app.me ? `${m.name} (you)` : m.name),
    el('span', { class: `mark${m.role === 'admin' ? ' admin' : ''}` }, m.role))));
  const inside = new Set(members.map((m) => m.id));
  const pick = $('ginvite-pick');
  const keep = pick.value;
  const buddies = [...app.buddies.values()].filter((b) => !inside.has(b.id))
    .sort((x, y) => x.name.localeCompare(y.name));
  pick.replaceChildren(el('option', { value: '' }, buddies.length ? 'Pick a buddy…' : 'No buddy to invite'),
    ...buddies.map((b) => el('option', { value: b.id }, b.name)));
  if (buddies.some((b) => b.id === keep)) pick.value = keep;
}

async function invite() {
  const id = app.group;
  const pasted = $('ginvite-id').value.trim();
  const who = pasted || $('ginvite-pick').value;
  if (!id || !who) { say($('ginvite-msg'), 'pick a buddy or paste an ID', true); return; }
  try {
    const r = await api('POST', `/api/v1/groups/${seg(id)}/invite`, { ids: [who] });
    $('ginvite-id').value = '';
    say($('ginvite-msg'), r.state === 'requested'
      ? `asked the group's creator to add ${app.nameOf(who)}`
      : `invited ${app.nameOf(who)}`);
    await reload();
  } catch (e) { say($('ginvite-msg'), e.message, true); }
}

async function leave() {
  const id = app.group;
  const g = groupOf(id);
  if (!id || !window.confirm(`Leave ${g ? g.name : 'this group'}?`)) return;
  try {
    await api('POST', `/api/v1/groups/${seg(id)}/leave`, {});
    close();
    await reload();
  } catch (e) { say($('gsend-msg'), e.message, true); }
}

/** A message for group `gid`: shown if open, else counted unread. */
function message(gid, m) {
  if (gid === app.group) {
    if (!rows.some((x) => x.id === m.id)) rows.push(m);
    draw();
    if (!document.hidden) return;
  }
  if (m.from === app.me) return;
  unread.set(gid, (unread.get(gid) || 0) + 1);
  render();
}

/** Applies a live event. */
export function event(ev) {
  if (ev.type === 'group_message') {
    message(ev.group, { id: ev.id, from: ev.from, sent_at: ev.sent_at, text: ev.text });
  } else if (ev.type === 'room_message') {
    message(ev.room, { id: ev.id, from: ev.from, sent_at: ev.sent_at, text: ev.text });
  } else if (ev.type === 'group_change' || ev.type === 'group_invitation') {
    reload().catch(() => {});
  }
}
