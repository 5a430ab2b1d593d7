// The app's entry: shared state, loading, the event stream, and the views.
// Each view is one module with `init(app)` and optionally `event(ev)` (a
// live event) and `reload()` (after loading everything again). Groups,
// rooms and files join as further modules in `views` with a pane in #panes
// (groups.js and files.js are such: their lists sit in #panes, their panes
// in #chat).
import { api, listen, whenLoggedOut } from './api.js';
import { $, shortId } from './dom.js';
import * as buddies from './buddies.js';
import * as conversation from './conversation.js';
import * as me from './me.js';
import * as keys from './keys.js';
import * as groups from './groups.js';
import * as files from './files.js';

const views = [buddies, conversation, me, keys, groups, files];

/** What every view shares. */
const app = {
  me: '',
  /** buddy rows by ID */
  buddies: new Map(),
  /** by peer ID: {unread, last} */
  convs: new Map(),
  /** pending buddy requests [{id, at}] */
  requests: [],
  /** the open conversation's peer ID, or null */
  current: null,
  /** the open group's id, or null (set by groups.js) */
  group: null,

  /** The name to show for a key. */
  nameOf(id) {
    const b = this.buddies.get(id);
    return b ? b.name : shortId(id);
  },
  /** Opens the conversation with `id` (a buddy or a key that wrote). */
  open(id) { groups.hide(); files.hide(); conversation.open(id); },
  /** Back to the list (on a narrow screen the list and chat alternate). */
  close() {
    if (this.current) conversation.close();
    else if (this.group) groups.close();
    else if (files.isOpen()) files.close();
  },
  /** Whether the files pane is open. */
  filesOpen() { return files.isOpen(); },
  /** Hides the files pane (a group opens). */
  hideFiles() { files.hide(); },
  /** Redraws the buddy list. */
  renderList() { buddies.render(); },
  /** Reloads the buddy rows (after a presence event or a change). */
  async reloadBuddies() {
    const rows = await api('GET', '/api/v1/buddies');
    this.buddies = new Map(rows.map((b) => [b.id, b]));
    this.renderList();
    conversation.header();
  },
  async reloadRequests() {
    this.requests = await api('GET', '/api/v1/requests');
    this.renderList();
  },
  async reloadAll() {
    const [id, rows, convs, reqs] = await Promise.all([
      api('GET', '/api/v1/id'),
      api('GET', '/api/v1/buddies'),
      api('GET', '/api/v1/conversations'),
      api('GET', '/api/v1/requests'),
    ]);
    this.me = id.id;
    this.buddies = new Map(rows.map((b) => [b.id, b]));
    this.convs = new Map(convs.map((c) => [c.peer, { unread: c.unread, last: c.last }]));
    this.requests = reqs;
    for (const v of views) if (v.reload) await v.reload();
    this.renderList();
  },
  conv(id) {
    if (!this.convs.has(id)) this.convs.set(id, { unread: 0, last: null });
    return this.convs.get(id);
  },
};

function onEvent(ev) {
  if ((ev.type === 'message' || ev.type === 'message_sent') && ev.content_type === files.PART) {
    // A piece of a small file: no line of its own, not counted unread.
  } else if (ev.type === 'message' || ev.type === 'message_sent') {
    const c = app.conv(ev.peer);
    c.last = ev;
    if (ev.type === 'message' && ev.direction === 'in' && ev.state === 'unread') c.unread += 1;
    notify(ev);
  } else if (ev.type === 'state') {
    const c = app.convs.get(ev.peer);
    if (c && c.last && c.last.id === ev.id) c.last.state = ev.state;
  } else if (ev.type === 'presence') {
    app.reloadBuddies().catch(() => {});
  } else if (ev.type === 'buddy_request') {
    app.reloadRequests().catch(() => {});
  }
  for (const v of views) if (v.event) v.event(ev);
  app.renderList();
}

/** A desktop notification for a message that arrives while the tab is hidden. */
function notify(ev) {
  if (ev.direction !== 'in' || !document.hidden) return;
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  const body = ev.file ? `📎 ${files.summary(ev.file)}` : ev.text.slice(0, 200);
  const n = new Notification(app.nameOf(ev.peer), { body, tag: ev.peer });
  n.onclick = () => { window.focus(); app.open(ev.peer); n.close(); };
}

function setupNotifications() {
  const btn = $('notify-btn');
  const show = () => {
    const p = 'Notification' in window ? Notification.permission : 'unsupported';
    btn.dataset.state = p;
    btn.title = {
      granted: 'Desktop notifications are on for messages that arrive while this tab is hidden',
      denied: 'Desktop notifications are blocked in the browser settings',
      unsupported: 'This browser has no desktop notifications',
    }[p] || 'Turn on desktop notifications for new messages';
  };
  btn.addEventListener('click', async () => {
    if ('Notification' in window) await Notification.requestPermission();
    show();
  });
  show();
}

function loggedOut() {
  $('gone').hidden = false;
  $('layout').inert = true;
}

async function start() {
  whenLoggedOut(loggedOut);
  for (const v of views) v.init(app);
  setupNotifications();
  try {
    await app.reloadAll();
  } catch (e) {
    if (e.status !== 401) $('conn').textContent = `error: ${e.message}`;
    return;
  }
  listen({
    event: onEvent,
    status: (s) => {
      $('conn').dataset.state = s;
      $('conn').textContent = s === 'live' ? 'live' : 'reconnecting…';
      // A daemon that restarted has forgotten this session: a 401 here
      // shows the "run roost open" notice instead of retrying forever.
      if (s !== 'live') api('GET', '/api/v1/id').catch(() => {});
    },
    resync: () => app.reloadAll().catch(() => {}),
  });
}

start();
