/* The conversation shown: opening one (the URL /c/<id>/), its title, and one that is not
 * found. */
import { hashedApprovalId, resetDecisions } from './approvals.js';
import { clearBranchPending } from './branches.js';
import { updateControls } from './composer.js';
import { el } from './elements.js';
import { syncModel } from './models.js';
import { clearConversationNotices, showNotice } from './notices.js';
import { setOlderCursor } from './older.js';
import { renderOutbox } from './outbox.js';
import { forgetRuns } from './runs.js';
import { closeSidebar, findConversation, renderSidebar, upsertConversation } from './sidebar.js';
import { connect, setConnection, teardownSocket } from './socket.js';
import { state } from './store.js';

const APP_NAME = 'Agent Chat';

export function conversationPath(id) {
  return id ? `/c/${encodeURIComponent(id)}/` : '/';
}

export function idFromPath(pathname) {
  const m = /^\/c\/([^/]+)\/?$/.exec(pathname);
  if (!m) return '';
  try {
    return decodeURIComponent(m[1]);
  } catch (_) {
    return '';
  }
}

export function displayTitle(conv) {
  const t = conv && typeof conv.title === 'string' ? conv.title.trim() : '';
  return t || 'New chat';
}

export function titleFromMessage(content) {
  const line = content.split('\n').map((s) => s.trim()).find(Boolean) || '';
  return line.length > 60 ? line.slice(0, 57).trimEnd() + '…' : line;
}

function showTitle(title) {
  el.title.textContent = title;
  document.title = `${title} · ${APP_NAME}`;
}

export function markNotFound() {
  teardownSocket();
  state.notFound = true;
  setConnection('offline', 'Not found');
  el.title.textContent = 'Conversation not found';
  document.title = `Not found · ${APP_NAME}`;
  showNotice('Conversation not found. It may have been deleted. Start a new chat from the sidebar.', { key: 'not-found' });
  state.conversations = state.conversations.filter((c) => String(c.id) !== state.conversationId);
  renderSidebar();
  updateControls();
}

export function applyConversation(conv) {
  if (!conv || String(conv.id) !== state.conversationId) {
    if (conv) upsertConversation(conv);
    return;
  }
  state.conversation = conv;
  showTitle(displayTitle(conv));
  upsertConversation(conv, { onlyIfListed: !!state.query });
  syncModel();
}

export function applyTitle(conv) {
  if (state.conversation && String(state.conversation.id) === String(conv.id)) state.conversation.title = conv.title;
  showTitle(displayTitle(conv));
}

export function updateEmptyState() {
  const none = !state.conversationId;
  el.empty.hidden = !none;
  el.exportLinks.hidden = none || state.notFound;
  if (!none) {
    const base = `/api/conversations/${encodeURIComponent(state.conversationId)}/export`;
    el.exportMarkdown.href = `${base}?format=markdown`;
    el.exportJson.href = `${base}?format=json`;
  }
}

export function navigate(id, { push = true } = {}) {
  const path = conversationPath(id);
  if (push && location.pathname !== path) history.pushState({ conversationId: id }, '', path);
  openConversation(id);
}

export function openConversation(id) {
  closeSidebar(false);
  if (id === state.conversationId && (state.ws || state.reconnectTimer || !id) && !state.notFound) {
    renderSidebar();
    return;
  }
  teardownSocket();
  state.conversationId = id;
  state.conversation = findConversation(id) || null;
  state.notFound = false;
  state.attempts = 0;
  state.activeRun = null;
  state.cancelling = null;
  state.branchId = null;
  state.editing = null;
  clearBranchPending();
  forgetRuns();
  state.messages.clear();
  state.messageEls.clear();
  resetDecisions();
  state.approvals.clear();
  state.revealApproval = hashedApprovalId();
  state.stick = true;
  el.app.dataset.conversationId = id;
  el.messages.replaceChildren();
  setOlderCursor({});
  el.messages.setAttribute('aria-busy', 'false');
  clearConversationNotices();

  const title = id ? (state.conversation ? displayTitle(state.conversation) : 'Conversation') : 'New chat';
  el.title.textContent = title;
  document.title = id ? `${title} · ${APP_NAME}` : APP_NAME;

  updateEmptyState();
  updateControls();
  renderOutbox();
  renderSidebar();
  syncModel();
  if (id) {
    connect();
  } else {
    setConnection(navigator.onLine ? 'online' : 'offline');
  }
}
