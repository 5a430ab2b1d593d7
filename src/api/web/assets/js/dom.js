// Small DOM helpers. Text always goes in as text nodes (never as HTML):
// names, notes and messages come from other people.

/** `el('li', {class: 'x', dataset: {id}}, child, 'text', …)` */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return e;
}

export const $ = (id) => document.getElementById(id);

/** A time for a message: the clock time today, else the date and time. */
export function when(ms) {
  const d = new Date(ms);
  const now = new Date();
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (d.toDateString() === now.toDateString()) return time;
  return `${d.toLocaleDateString([], { day: 'numeric', month: 'short' })} ${time}`;
}

/** The first and last characters of an ID, for a name-less key. */
export const shortId = (id) => (id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-6)}` : id);

/** Says `text` in a status line for a few seconds. */
export function say(line, text, bad = false) {
  line.textContent = text;
  line.classList.toggle('bad', bad);
  clearTimeout(line._t);
  line._t = setTimeout(() => { line.textContent = ''; }, 6000);
}
