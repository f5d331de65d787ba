/* Older messages: a snapshot holds the latest messages of the line shown; the older ones
 * come a page at a time from GET .../messages/?before=<cursor>, when the user scrolls to
 * the top or presses "Load earlier messages". The messages and approvals views show a
 * page (store.js, topic 'older'); this module fetches it and keeps the view in place. */
import { el } from './elements.js';
import { clearNotice, showNotice } from './notices.js';
import { learnOlderPage, state } from './store.js';
import { shownMessage } from './turns.js';
import { api } from '../http.js';

const OLDER_PAGE_SIZE = 50;
const OLDER_SCROLL_MARGIN_PX = 200;

let cursor = null; // where the page before the oldest message shown starts (null: none)
let loading = null; // the promise of that page while it is fetched

export function hasOlder() {
  return !!cursor;
}

// From a snapshot (or {} for none): an answer fetched for an earlier one is dropped.
export function setOlderCursor(frame) {
  cursor = frame.has_older && typeof frame.older_cursor === 'string' ? frame.older_cursor : null;
  loading = null;
  updateLoadOlder();
}

// Not disabled while loading: a focused button that is disabled loses the focus.
function updateLoadOlder() {
  el.loadOlder.hidden = !cursor;
  el.loadOlder.setAttribute('aria-busy', loading ? 'true' : 'false');
  el.loadOlder.textContent = loading ? 'Loading earlier messages…' : 'Load earlier messages';
}

// The page before the oldest message shown, put above it; resolves true if it came.
function loadOlder() {
  if (loading) return loading;
  if (!cursor || !state.conversationId) return Promise.resolve(false);
  const gen = state.snapshotGen;
  const id = state.conversationId;
  const query = `before=${encodeURIComponent(cursor)}&limit=${OLDER_PAGE_SIZE}`;
  const request = api('GET', `/api/conversations/${encodeURIComponent(id)}/messages/?${query}`).then(
    (page) => {
      if (gen !== state.snapshotGen || id !== state.conversationId) return false;
      clearNotice('older');
      cursor = page && page.has_older && typeof page.older_cursor === 'string' ? page.older_cursor : null;
      prependOlder(page || {});
      return true;
    },
    (err) => {
      if (gen === state.snapshotGen && err.status !== 401) {
        showNotice(`Could not load earlier messages: ${err.message}`, { key: 'older' });
      }
      return false;
    },
  ).finally(() => {
    if (loading !== request) return;
    loading = null;
    updateLoadOlder();
  });
  loading = request;
  updateLoadOlder();
  return request;
}

// Older messages and their approvals above those shown, the view kept where it was.
function prependOlder(page) {
  const s = el.scroller;
  const fromBottom = s.scrollHeight - s.scrollTop;
  const buttonHadFocus = document.activeElement === el.loadOlder;
  const added = learnOlderPage(page);
  s.scrollTop = s.scrollHeight - fromBottom;
  updateLoadOlder();
  const oldest = added.length ? shownMessage(String(added[0].id)) : null;
  if (buttonHadFocus && !cursor && oldest) {
    // The button is gone: the focus goes to the first message of the conversation.
    oldest.tabIndex = -1;
    oldest.focus({ preventScroll: true });
  }
}

// Older pages until `found()`, or none is left; resolves found() (false after a new snapshot).
export async function loadOlderUntil(found) {
  const gen = state.snapshotGen;
  while (!found() && cursor && gen === state.snapshotGen) {
    if (!(await loadOlder())) break;
  }
  return gen === state.snapshotGen && found();
}

function loadOlderAtTop() {
  if (cursor && !loading && el.scroller.scrollTop < OLDER_SCROLL_MARGIN_PX) loadOlder();
}

export function initOlder() {
  el.scroller.addEventListener('scroll', loadOlderAtTop, { passive: true });
  el.loadOlder.addEventListener('click', () => loadOlder());
}
