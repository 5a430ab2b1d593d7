// Trades the one-time token of `roost open`'s link (after '#', or in
// ?token=) for the session cookie, then opens the app. The token leaves
// the address bar and history at once.
const msg = document.getElementById('msg');
const fromHash = location.hash.slice(1);
const fromQuery = new URLSearchParams(location.search).get('token') || '';
const token = fromHash || fromQuery;
history.replaceState(null, '', '/login');

async function login() {
  if (!token) {
    msg.textContent = 'No login token in this link: run `roost open` to get one.';
    return;
  }
  const r = await fetch('/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ token }),
    credentials: 'same-origin',
  });
  if (r.ok) {
    location.replace('/');
    return;
  }
  let why = `refused (${r.status})`;
  try { why = (await r.json()).error || why; } catch (_) { /* not JSON */ }
  msg.textContent = why;
}
login().catch((e) => { msg.textContent = `cannot reach the daemon: ${e}`; });
