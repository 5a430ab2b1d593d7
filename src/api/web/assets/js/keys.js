// Keyboard shortcuts for the whole page (listed in the help dialog).
import { $ } from './dom.js';
import { order } from './buddies.js';

let app;

const typing = (t) => t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT');

function step(by) {
  const ids = order();
  if (!ids.length) return;
  const i = ids.indexOf(app.current);
  const next = i < 0 ? (by > 0 ? 0 : ids.length - 1) : Math.min(Math.max(i + by, 0), ids.length - 1);
  app.open(ids[next]);
}

export function init(a) {
  app = a;
  $('help-btn').addEventListener('click', () => $('help-dialog').showModal());
  document.addEventListener('keydown', (e) => {
    if (document.querySelector('dialog[open]')) return; // Esc closes it natively
    if (e.altKey && !e.ctrlKey && !e.metaKey) {
      const k = e.key.toLowerCase();
      const act = {
        arrowup: () => step(-1),
        arrowdown: () => step(1),
        s: () => { if (app.current) $('search').focus(); },
        p: () => $('my-status').focus(),
        a: () => $('add-id').focus(),
        g: () => $('new-group-name').focus(),
        f: () => $('files-btn').click(),
        i: () => $('me-btn').click(),
      }[k] || (e.code === 'KeyS' ? () => app.current && $('search').focus() : null);
      if (act) { e.preventDefault(); act(); }
      return;
    }
    if (e.key === 'Escape') {
      if (app.current || app.group || app.filesOpen()) { e.preventDefault(); app.close(); }
      else if (typing(e.target)) e.target.blur();
      return;
    }
    if (typing(e.target) || e.ctrlKey || e.metaKey) return;
    if (e.key === '/') { e.preventDefault(); $('filter').focus(); }
    if (e.key === '?') { e.preventDefault(); $('help-dialog').showModal(); }
  });
}
