/* Older messages: a snapshot holds the latest messages of the line shown; the older ones
 * come a page at a time from GET .../messages/?before=<cursor>, when the user scrolls to
 * the top or presses "Load earlier messages". */
import { upsertApproval } from './approvals.js';
import { el } from './elements.js';
import { buildMessage } from './messages.js';
import { clearNotice, showNotice } from './notices.js';
import { learnMessage, learnRun } from './runs.js';
import { state } from './store.js';
import { api } from '../http.js';

const OLDER_PAGE_SIZE = 50;
const OLDER_SCROLL_MARGIN_PX = 200;

// From a snapshot (or {} for none): an answer fetched for an earlier one is dropped.
export function setOlderCursor(frame) {
  state.olderCursor = frame.has_older && typeof frame.older_cursor === 'string' ? frame.older_cursor : null;
  state.olderLoading = null;
  updateLoadOlder();
}

// Not disabled while loading: a focused button that is disabled loses the focus.
function updateLoadOlder() {
  el.loadOlder.hidden = !state.olderCursor;
  el.loadOlder.setAttribute('aria-busy', state.olderLoading ? 'true' : 'false');
  el.loadOlder.textContent = state.olderLoading ? 'Loading earlier messages…' : 'Load earlier messages';
}

// The page before the oldest message shown, put above it; resolves true if it came.
function loadOlder() {
  if (state.olderLoading) return state.olderLoading;
  if (!state.olderCursor || !state.conversationId) return Promise.resolve(false);
  const gen = state.snapshotGen;
  const id = state.conversationId;
  const query = `before=${encodeURIComponent(state.olderCursor)}&limit=${OLDER_PAGE_SIZE}`;
  const loading = api('GET', `/api/conversations/${encodeURIComponent(id)}/messages/?${query}`).then(
    (page) => {
      if (gen !== state.snapshotGen || id !== state.conversationId) return false;
      clearNotice('older');
      state.olderCursor = page && page.has_older && typeof page.older_cursor === 'string' ? page.older_cursor : null;
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
    if (state.olderLoading !== loading) return;
    state.olderLoading = null;
    updateLoadOlder();
  });
  state.olderLoading = loading;
  updateLoadOlder();
  return loading;
}

// Older messages and their approvals above those shown, the view kept where it was.
function prependOlder(page) {
  const s = el.scroller;
  const fromBottom = s.scrollHeight - s.scrollTop;
  const buttonHadFocus = document.activeElement === el.loadOlder;
  const before = el.messages.firstChild;
  let oldest = null;
  for (const run of Array.isArray(page.runs) ? page.runs : []) if (run && run.id !== undefined) learnRun(run);
  for (const m of Array.isArray(page.results) ? page.results : []) {
    if (!m || m.id === undefined || m.id === null || state.messages.has(String(m.id))) continue;
    const id = String(m.id);
    state.messages.set(id, m);
    learnMessage(m);
    const node = buildMessage(m);
    el.messages.insertBefore(node, before);
    state.messageEls.set(id, node);
    oldest = oldest || node;
  }
  for (const a of Array.isArray(page.approvals) ? page.approvals : []) upsertApproval(a, { place: 'time' });
  s.scrollTop = s.scrollHeight - fromBottom;
  updateLoadOlder();
  if (buttonHadFocus && !state.olderCursor && oldest) {
    // The button is gone: the focus goes to the first message of the conversation.
    oldest.tabIndex = -1;
    oldest.focus({ preventScroll: true });
  }
}

// Older pages until `found()`, or none is left; resolves found() (false after a new snapshot).
export async function loadOlderUntil(found) {
  const gen = state.snapshotGen;
  while (!found() && state.olderCursor && gen === state.snapshotGen) {
    if (!(await loadOlder())) break;
  }
  return gen === state.snapshotGen && found();
}

function loadOlderAtTop() {
  if (state.olderCursor && !state.olderLoading && el.scroller.scrollTop < OLDER_SCROLL_MARGIN_PX) loadOlder();
}

export function initOlder() {
  el.scroller.addEventListener('scroll', loadOlderAtTop, { passive: true });
  el.loadOlder.addEventListener('click', () => loadOlder());
}
