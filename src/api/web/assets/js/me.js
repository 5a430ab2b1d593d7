// Me: my presence and note, my ID as text and QR code, invites, adding a
// buddy by ID or invite.
import { api } from './api.js';
import { $, say } from './dom.js';

let app;

export function init(a) {
  app = a;
  $('my-status').addEventListener('change', save);
  $('presence').addEventListener('submit', (e) => { e.preventDefault(); save(); $('my-note').blur(); });
  $('me-btn').addEventListener('click', showMe);
  $('copy-id').addEventListener('click', () => navigator.clipboard && navigator.clipboard.writeText(app.me));
  $('make-invite').addEventListener('click', invite);
  $('add-buddy').addEventListener('submit', (e) => { e.preventDefault(); add(); });
  window.addEventListener('focus', () => { reload().catch(() => {}); });
}

let saved = null;

export async function reload() {
  saved = await api('GET', '/api/v1/presence');
  $('my-status').value = saved.status;
  if (document.activeElement !== $('my-note')) $('my-note').value = saved.note || '';
}

async function save() {
  const note = $('my-note').value.trim();
  const body = { ...(saved || {}), status: $('my-status').value, note: note || null };
  try {
    saved = await api('POST', '/api/v1/presence', body);
    $('my-note').classList.remove('bad');
    $('my-note').title = 'Saved';
  } catch (e) {
    $('my-note').classList.add('bad');
    $('my-note').title = e.message;
  }
}

function qr(img, text) {
  img.src = `/api/v1/qr?text=${encodeURIComponent(text)}`;
}

function showMe() {
  $('my-id').textContent = app.me;
  qr($('my-qr'), app.me);
  $('me-dialog').showModal();
}

async function invite() {
  try {
    const inv = await api('GET', '/api/v1/invite?expires=7d');
    $('invite').hidden = false;
    $('invite-uri').textContent = inv.uri;
    $('invite-exp').textContent = inv.expires;
    qr($('invite-qr'), inv.uri);
  } catch (e) {
    $('invite').hidden = false;
    $('invite-uri').textContent = e.message;
  }
}

async function add() {
  const what = $('add-id').value.trim();
  const name = $('add-name').value.trim() || undefined;
  const body = what.startsWith('roost:') ? { invite: what, name } : { id: what, name };
  try {
    const row = await api('POST', '/api/v1/buddies', body);
    $('add-id').value = '';
    $('add-name').value = '';
    say($('add-msg'), `added ${row.name}`);
    await app.reloadAll();
  } catch (e) {
    say($('add-msg'), e.message, true);
  }
}
