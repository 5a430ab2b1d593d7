// Files: every transfer (GET /api/v1/files) with live progress from
// `file_progress` events — in a pane of its own (opened from the side list,
// Alt+F) and as lines in conversations (an offer message carries `file`).
// *Get* starts or resumes a download, *Cancel* pauses it (or withdraws an
// offer of ours), a received file that completed is saved through
// GET /api/v1/files/{id}/content (an attachment the daemon sandboxes); the
// clip button of a conversation sends a file to its buddy (an upload).
import { api, seg } from './api.js';
import { $, el, say } from './dom.js';

/** The content types of file offers and of the parts of small files. */
export const OFFER = 'application/vnd.roost.file-offer';
export const PART = 'application/vnd.roost.file-part';

let app;
/** transfer rows by file id */
let rows = new Map();
/** whether the files pane is open */
let shown = false;
let reloading = null;

const RUNNING = ['downloading', 'waiting'];

export function init(a) {
  app = a;
  $('files-btn').addEventListener('click', () => open());
  $('fback').addEventListener('click', () => close());
  $('attach-btn').addEventListener('click', () => $('attach').click());
  $('attach').addEventListener('change', () => upload());
}

/** Sends the picked file to the open conversation's buddy: the browser
 * streams it to the daemon (POST /api/v1/files/upload), which offers it;
 * its line comes back as a `message_sent` event. */
async function upload() {
  const input = $('attach');
  const file = input.files && input.files[0];
  const to = app.current;
  input.value = '';
  if (!file || !to) return;
  say($('send-msg'), `sending ${file.name}…`);
  try {
    const q = `to=${encodeURIComponent(to)}&name=${encodeURIComponent(file.name)}`;
    const r = await fetch(`/api/v1/files/upload?${q}`, {
      method: 'POST', credentials: 'same-origin', body: file,
      headers: { 'Content-Type': 'application/octet-stream' },
    });
    const data = await r.json().catch(() => null);
    if (!r.ok) throw new Error((data && data.error) || `HTTP ${r.status}`);
    say($('send-msg'), `offered ${data.file.name}`);
    reloadSoon();
  } catch (e) { say($('send-msg'), `not sent: ${e.message}`, true); }
}

/** Whether the files pane is open. */
export const isOpen = () => shown;

/** A byte count for people: 1.2 MiB. */
export function size(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

const percent = (r) => (r.size ? Math.floor((r.done * 100) / r.size) : 100);

/** The state as a line says it: `downloading 40 %`, `complete`… */
function stateText(r) {
  if (!r) return 'offered';
  if (RUNNING.includes(r.state) || r.state === 'paused') return `${r.state} ${percent(r)} %`;
  return r.state;
}

/**
 * What a conversation's line says of an offered file `f` ({id, name, size})
 * whose transfer row is `r` (none: not known, or not this message's).
 */
export function summary(f, r) {
  return `${f.name} · ${size(f.size)} · ${stateText(r)}`;
}

/** The paper-clip icon before a file's name (an image: no emoji font needed). */
export const clip = () => el('img', { class: 'clip', src: '/assets/clip.svg', alt: 'file', width: '14', height: '14' });

async function act(id, what, line) {
  try {
    const r = await api('POST', `/api/v1/files/${seg(id)}/${what}`, {});
    rows.set(r.id, r);
    refresh(r.id);
  } catch (e) { if (line) say(line, e.message, true); }
}

/** The buttons a transfer has now: Get, Cancel, Save. */
function actions(r, line) {
  const out = [];
  if (r.direction === 'in' && ['offered', 'paused', 'failed'].includes(r.state)) {
    out.push(el('button', { type: 'button', class: 'get', onclick: () => act(r.id, 'get', line) }, 'Get'));
  }
  if (RUNNING.includes(r.state) || (r.direction === 'out' && r.state === 'offered')) {
    out.push(el('button', { type: 'button', class: 'cancel', onclick: () => act(r.id, 'cancel', line) }, 'Cancel'));
  }
  if (r.direction === 'in' && r.state === 'complete') {
    out.push(el('a', { class: 'save', href: `/api/v1/files/${seg(r.id)}/content`, download: r.name }, 'Save'));
  }
  return out;
}

function progress(r) {
  return r && (RUNNING.includes(r.state) || r.state === 'paused')
    ? el('progress', { max: String(r.size || 1), value: String(r.done) }) : null;
}

/**
 * The transfer row of offer `f` shown in a message of `from` (peer and
 * direction): only a row with that same peer and direction, so an offer
 * naming another transfer's id gets no buttons for it.
 */
function rowFor(f, from) {
  const r = rows.get(f.id);
  return r && from && r.peer === from.peer && r.direction === from.direction ? r : undefined;
}

/** Fills a conversation's file line for offer `f`. */
function fill(line, f) {
  const r = rowFor(f, line.from);
  line.dataset.state = r ? r.state : 'offered';
  const msg = el('span', { class: 'msg-line' });
  line.replaceChildren(...[
    clip(),
    el('span', { class: 'ftext' }, summary(f, r)),
    progress(r),
    el('span', { class: 'factions' }, r ? actions(r, msg) : []),
    msg,
  ].filter(Boolean));
}

/** The line of a conversation that shows the file offer `f`, sent in message `m`. */
export function fileLine(f, m) {
  const line = el('div', { class: 'file', dataset: { file: f.id } });
  line.offer = f;
  line.from = { peer: m.peer, direction: m.direction };
  fill(line, f);
  if (!rows.has(f.id)) reloadSoon();
  return line;
}

/** Redraws every line and row of transfer `id`. */
function refresh(id) {
  for (const line of document.querySelectorAll(`.file[data-file="${CSS.escape(id)}"]`)) {
    if (line.offer) fill(line, line.offer);
  }
  render();
}

function peerText(r) {
  const who = app.nameOf(r.peer);
  return r.direction === 'in' ? `from ${who}` : `to ${who}`;
}

function fileRow(r) {
  const msg = el('span', { class: 'msg-line' });
  return el('li', { class: 'frow', dataset: { id: r.id, state: r.state, direction: r.direction } },
    el('div', { class: 'line1' },
      el('span', { class: 'fdir', 'aria-hidden': 'true' }, r.direction === 'in' ? '↓' : '↑'),
      el('span', { class: 'name', title: r.name }, r.name),
      el('span', { class: 'status' }, size(r.size))),
    el('div', { class: 'line2' },
      el('span', { class: 'fstate' }, `${r.state} · ${percent(r)} %`),
      el('span', { class: 'preview' }, peerText(r)),
      el('span', { class: 'factions' }, actions(r, msg))),
    progress(r),
    r.error ? el('div', { class: 'hint' }, r.error) : null,
    msg);
}

/** Draws the pane's list and the side list's count. */
export function render() {
  if (!app) return;
  const list = [...rows.values()].reverse();
  const busy = list.filter((r) => RUNNING.includes(r.state)).length;
  $('files-count').textContent = busy ? `${busy} running` : `${list.length}`;
  if (!shown) return;
  $('file-list').replaceChildren(...list.map(fileRow));
  $('no-files').hidden = list.length > 0;
}

/** Progress events that arrived while the list was being fetched. */
let during = null;

/** Applies a progress event to its row; `late`: one the fetched list may
 * already be past (it is not applied over a further or finished row). */
function apply(ev, late) {
  const r = rows.get(ev.id);
  if (!r) return false;
  if (late && (r.done > ev.done || r.state === 'complete')) return true;
  Object.assign(r, { done: ev.done, size: ev.size, state: ev.state });
  return true;
}

/** Loads every transfer again (then the progress that came meanwhile). */
export async function reload() {
  during = [];
  let got;
  try { got = await api('GET', '/api/v1/files'); } catch (e) { during = null; throw e; }
  rows = new Map(got.map((r) => [r.id, r]));
  for (const ev of during) apply(ev, true);
  during = null;
  for (const line of document.querySelectorAll('.file[data-file]')) {
    if (line.offer) fill(line, line.offer);
  }
  render();
}

/** A reload, once, for a transfer this page does not know yet. */
function reloadSoon() {
  if (reloading) return;
  reloading = setTimeout(() => {
    reload().catch(() => {}).finally(() => { reloading = null; });
  }, 100);
}

/** Opens the files pane (closing a conversation or a group). */
export async function open() {
  if (app.current || app.group) app.close();
  shown = true;
  $('empty').hidden = true;
  $('fconv').hidden = false;
  $('files-row').classList.add('current');
  $('layout').classList.add('in-conv');
  render();
  await reload();
  $('fback').focus();
}

/** Back to the list, the Files button focused. */
export function close() {
  hide();
  $('empty').hidden = false;
  $('layout').classList.remove('in-conv');
  $('files-btn').focus();
}

/** Hides the pane without moving focus (a conversation or group opens). */
export function hide() {
  if (!shown) return;
  shown = false;
  $('fconv').hidden = true;
  $('files-row').classList.remove('current');
}

/** Applies a live event: progress, or an offer of a file not known yet. */
export function event(ev) {
  if (ev.type === 'file_progress') {
    if (during) during.push(ev);
    if (!apply(ev, false)) { reloadSoon(); return; }
    refresh(ev.id);
  } else if ((ev.type === 'message' || ev.type === 'message_sent') && ev.file && !rows.has(ev.file.id)) {
    reloadSoon();
  }
}
