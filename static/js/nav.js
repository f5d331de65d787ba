/* The top bar's approvals link and its count of pending approvals.
 *
 * Loaded on every page for a logged-in user. Other scripts ask for a refresh, or hand over
 * a count they already know, with announceApprovalsChanged (approvals-changed.js).
 */
import { onApprovalsChanged } from './approvals-changed.js';
import { byId } from './dom.js';

// base.html renders both, and loads this module, only for a logged-in user.
const link = byId('approvals-link');
const badge = byId('approvals-count');

const URL_PENDING = '/api/approvals/?status=pending';
const DEBOUNCE_MS = 250;
const POLL_MS = 60000;
let timer = null;
let request = 0;

if (location.pathname === new URL(link.href, location.href).pathname) link.setAttribute('aria-current', 'page');

function setCount(value) {
  const n = Number.isFinite(value) && value > 0 ? Math.floor(value) : 0;
  badge.textContent = n > 99 ? '99+' : String(n);
  badge.hidden = n === 0;
  badge.dataset.count = String(n);
  link.dataset.count = String(n);
  const label = n === 0 ? 'Approvals' : `Approvals, ${n} waiting for you`;
  link.setAttribute('aria-label', label);
  link.title = n === 0 ? 'No approvals are waiting for you' : label;
}

async function refresh() {
  const mine = ++request;
  let data = null;
  try {
    const res = await fetch(URL_PENDING, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (!res.ok) return; // 401 and friends: the page itself deals with the session
    data = await res.json();
  } catch (_) {
    return; // offline, or not JSON: keep what is shown
  }
  if (mine !== request) return;
  const results = data && Array.isArray(data.results) ? data.results : [];
  setCount(results.filter((a) => a && (!a.status || a.status === 'pending')).length);
}

function schedule(delay = DEBOUNCE_MS) {
  clearTimeout(timer);
  timer = setTimeout(() => {
    timer = null;
    refresh();
  }, delay);
}

onApprovalsChanged((count) => {
  if (typeof count === 'number') {
    clearTimeout(timer);
    timer = null;
    request += 1; // an answer still on its way is older than this count
    setCount(count);
  } else {
    schedule();
  }
});

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') schedule(0);
});
window.addEventListener('online', () => schedule(0));
setInterval(() => {
  if (document.visibilityState === 'visible' && navigator.onLine !== false) refresh();
}, POLL_MS);

refresh();
