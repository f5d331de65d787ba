/* The approvals inbox (/approvals/): the user's approvals from GET /api/approvals/?status=…,
 * newest first, each linking to its card in the conversation
 * (/c/<conversation_id>/#approval-<id>). Text only through textContent. */
import { buildDecision, statusChip } from './approval-card.js';
import { announceApprovalsChanged } from './approvals-changed.js';
import { byId, make, timeElement, timeOf } from './dom.js';
import { goToLogin } from './http.js';
import { approvalPath, displayTitle } from './links.js';

// Loaded by templates/conversations/approvals.html only, which has these elements.
const el = {
  list: byId('approvals-list'),
  empty: byId('approvals-empty'),
  emptyText: byId('approvals-empty-text'),
  status: byId('approvals-status'),
  filter: byId('approvals-filter'),
  refresh: byId('approvals-refresh'),
};

const FILTERS = ['pending', 'all', 'approved', 'rejected', 'edited'];
const EMPTY_TEXT = {
  pending: 'No approvals are waiting for you.',
  all: 'You have no approvals yet.',
  approved: 'No approved requests.',
  rejected: 'No rejected requests.',
  edited: 'No edited requests.',
};
const POLL_MS = 30000;

const state = {
  filter: 'pending',
  request: 0,
  loaded: false,
};

function conversationTitle(a) {
  return displayTitle({ title: a.conversation_title });
}

function filterFromUrl() {
  const value = new URLSearchParams(location.search).get('status') || 'pending';
  return FILTERS.includes(value) ? value : 'pending';
}

function buildItem(a) {
  const id = String(a.id);
  const status = a.status || 'pending';
  const li = make('li', 'approval-item');
  li.dataset.approvalId = id;
  li.dataset.status = status;
  if (a.conversation_id !== undefined && a.conversation_id !== null) li.dataset.conversationId = String(a.conversation_id);

  const head = make('div', 'approval-item-head');
  const headingId = `approval-item-${id.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  const tool = make('h2', 'approval-item-tool', a.tool || 'tool');
  tool.id = headingId;
  head.append(tool, statusChip(status));
  li.append(head);
  li.setAttribute('aria-labelledby', headingId);

  if (a.description) li.append(make('p', 'approval-item-description', a.description));

  const meta = make('p', 'approval-item-meta');
  meta.append(document.createTextNode('In “'));
  meta.append(make('span', 'approval-item-conversation', conversationTitle(a)));
  meta.append(document.createTextNode('”'));
  if (timeOf(a.created_at)) {
    meta.append(document.createTextNode(' · requested '));
    meta.append(timeElement(a.created_at, 'approval-item-created'));
  }
  li.append(meta);

  if (status !== 'pending') li.append(buildDecision(a));

  if (a.conversation_id !== undefined && a.conversation_id !== null) {
    const link = make('a', 'btn btn-small approval-link');
    link.href = approvalPath(String(a.conversation_id), id);
    link.append(document.createTextNode(status === 'pending' ? 'Review' : 'Open'));
    link.append(make('span', 'visually-hidden', ` ${a.tool || 'tool'} in “${conversationTitle(a)}”`));
    if (status === 'pending') link.classList.add('btn-primary');
    const actions = make('div', 'approval-item-actions');
    actions.append(link);
    li.append(actions);
  }
  return li;
}

function render(results) {
  const focusedId = (() => {
    const item = document.activeElement && document.activeElement.closest ? document.activeElement.closest('.approval-item') : null;
    return item ? item.dataset.approvalId : null;
  })();
  const frag = document.createDocumentFragment();
  for (const a of results) frag.append(buildItem(a));
  el.list.replaceChildren(frag);
  el.list.hidden = results.length === 0;
  el.empty.hidden = results.length !== 0;
  el.emptyText.textContent = EMPTY_TEXT[state.filter] || EMPTY_TEXT.pending;
  if (focusedId) {
    const link = el.list.querySelector(`.approval-item[data-approval-id="${CSS.escape(focusedId)}"] .approval-link`);
    if (link) link.focus();
  }
}

async function load({ quiet = false } = {}) {
  const mine = ++state.request;
  const filter = state.filter;
  el.list.setAttribute('aria-busy', 'true');
  el.status.dataset.kind = 'info';
  if (!quiet || !state.loaded) {
    el.status.hidden = false;
    el.status.textContent = 'Loading…';
  }
  let res;
  let data = null;
  try {
    res = await fetch(`/api/approvals/?status=${encodeURIComponent(filter)}`, {
      credentials: 'same-origin',
      headers: { Accept: 'application/json' },
    });
    if (res.ok) data = await res.json();
  } catch (_) {
    res = null;
  }
  if (mine !== state.request) return;
  el.list.setAttribute('aria-busy', 'false');
  if (res && res.status === 401) {
    goToLogin();
    return;
  }
  if (!res || !res.ok || !data) {
    el.status.hidden = false;
    el.status.dataset.kind = 'error';
    el.status.textContent = res
      ? `Could not load approvals (${res.status}). Try again with Refresh.`
      : 'Network error: the server could not be reached. Try again with Refresh.';
    return;
  }
  const results = (Array.isArray(data.results) ? data.results : []).filter((a) => a && a.id !== undefined && a.id !== null);
  results.sort((a, b) => timeOf(b.created_at) - timeOf(a.created_at));
  state.loaded = true;
  el.status.hidden = true;
  el.status.textContent = '';
  delete el.status.dataset.kind;
  render(results);
  if (filter === 'pending') {
    announceApprovalsChanged(results.length);
  }
}

state.filter = filterFromUrl();
if (el.filter) {
  el.filter.value = state.filter;
  el.filter.addEventListener('change', () => {
    const value = FILTERS.includes(el.filter.value) ? el.filter.value : 'pending';
    state.filter = value;
    const url = new URL(location.href);
    if (value === 'pending') url.searchParams.delete('status');
    else url.searchParams.set('status', value);
    history.replaceState(null, '', url.pathname + url.search + url.hash);
    load();
  });
}
if (el.refresh) el.refresh.addEventListener('click', () => load());

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') load({ quiet: true });
});
window.addEventListener('online', () => load({ quiet: true }));
window.addEventListener('pageshow', (event) => {
  if (event.persisted) load({ quiet: true }); // back from a conversation: the list may have changed
});
setInterval(() => {
  if (document.visibilityState === 'visible' && navigator.onLine !== false) load({ quiet: true });
}, POLL_MS);

load();
