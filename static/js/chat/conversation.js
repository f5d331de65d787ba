/* The conversation shown: opening one (the URL /c/<id>/), its title, and one that is not
 * found. */
import { el } from './elements.js';
import { clearConversationNotices, showNotice } from './notices.js';
import { setOlderCursor } from './older.js';
import { renderOutbox } from './outbox.js';
import { stickToBottom } from './scroll.js';
import { closeSidebar, renderSidebar } from './sidebar.js';
import { connect, resetBackoff, setConnection, socketAlive, teardownSocket } from './socket.js';
import { on, openConversationState, setNotFound, state } from './store.js';
import { clearItems } from './turns.js';
import { conversationPath, displayTitle } from '../links.js';

const APP_NAME = 'Agent Chat';

export function idFromPath(pathname) {
  const m = /^\/c\/([^/]+)\/?$/.exec(pathname);
  if (!m) return '';
  try {
    return decodeURIComponent(m[1]);
  } catch (_) {
    return '';
  }
}

function showTitle(title) {
  el.title.textContent = title;
  document.title = `${title} · ${APP_NAME}`;
}

export function markNotFound() {
  teardownSocket();
  setNotFound();
  setConnection('offline', 'Not found');
  el.title.textContent = 'Conversation not found';
  document.title = `Not found · ${APP_NAME}`;
  showNotice('Conversation not found. It may have been deleted. Start a new chat from the sidebar.', { key: 'not-found' });
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
  if (id === state.conversationId && (socketAlive() || !id) && !state.notFound) {
    renderSidebar();
    return;
  }
  teardownSocket();
  resetBackoff();
  clearItems();
  setOlderCursor({});
  stickToBottom();
  el.app.dataset.conversationId = id;
  openConversationState(id);
  el.messages.setAttribute('aria-busy', 'false');
  clearConversationNotices();

  const title = id ? (state.conversation ? displayTitle(state.conversation) : 'Conversation') : 'New chat';
  el.title.textContent = title;
  document.title = id ? `${title} · ${APP_NAME}` : APP_NAME;

  updateEmptyState();
  renderOutbox();
  if (id) {
    connect();
  } else {
    setConnection(navigator.onLine ? 'online' : 'offline');
  }
}

export function initConversation() {
  on('conversation', (conv) => showTitle(displayTitle(conv)));
}
