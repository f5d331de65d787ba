/* The chat page (templates/conversations/chat.html), the browser side of docs/protocol.md.
 * ES modules, no build step. Rules kept on purpose:
 *  - innerHTML is used in exactly one place (renderMessageBody, messages.js) with the
 *    server's nh3-sanitized `html`; everything else is textContent / DOM nodes.
 *  - no inline styles or handlers, so a strict Content-Security-Policy works.
 * This module wires the modules together, then opens the conversation of the URL.
 *
 * What the split relies on:
 *  - Imports may be circular (a message frame touches messages, runs, the sidebar and the
 *    composer, which call back). ES modules allow that as long as nothing runs an import
 *    before its module is evaluated: the chat modules only declare functions and
 *    constants (elements.js and models.js call byId of dom.js, which imports nothing and
 *    so is evaluated first), and this one runs start() once all of them are evaluated.
 *  - Relative imports ('./store.js') resolve because static files are served under their
 *    own names (WhiteNoise, Django's default storage). A manifest storage that hashes file
 *    names would have to rewrite import paths too. */
import { initApprovalLinks } from './approvals.js';
import { autosize, initComposer, updateComposerState } from './composer.js';
import { idFromPath, markNotFound, openConversation } from './conversation.js';
import { el } from './elements.js';
import { onFrame } from './frames.js';
import { initModelPicker, loadModels } from './models.js';
import { clearNotice } from './notices.js';
import { initOlder } from './older.js';
import { renderOutbox } from './outbox.js';
import { cancelRun } from './runs.js';
import { initScrolling } from './scroll.js';
import { closeSidebar, initSidebar, loadConversations } from './sidebar.js';
import { connect, setConnection, setSocketHandlers, showOfflineNotice, teardownSocket } from './socket.js';
import { runIsActive, state } from './store.js';

function initNavigation() {
  window.addEventListener('popstate', () => {
    openConversation(idFromPath(location.pathname));
  });
}

// Esc closes the phone's sidebar, else stops the run being written.
function initEscape() {
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape' || e.defaultPrevented) return;
    if (el.app.dataset.sidebarOpen === 'true') {
      closeSidebar();
      return;
    }
    if (runIsActive()) {
      e.preventDefault();
      cancelRun();
    }
  });
}

function initConnectivity() {
  window.addEventListener('offline', () => {
    setConnection('offline');
    showOfflineNotice();
    // Drop the socket now; reconnect as soon as the browser is back online.
    teardownSocket();
    renderOutbox();
  });

  window.addEventListener('online', () => {
    clearNotice('offline');
    state.attempts = 0;
    if (state.conversationId && !state.notFound) connect();
    else setConnection('online');
    if (!state.listLoaded) loadConversations({ reset: true });
  });

  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState !== 'visible') return;
    if (state.conversationId && !state.notFound && !state.ws && navigator.onLine) {
      state.attempts = 0;
      connect();
    }
  });
}

function start() {
  setSocketHandlers({ frame: onFrame, notFound: markNotFound, closed: renderOutbox });
  initModelPicker();
  initSidebar();
  initApprovalLinks();
  initNavigation();
  initComposer();
  initEscape();
  initScrolling();
  initOlder();
  initConnectivity();

  const initial = el.app.dataset.conversationId || '';
  state.conversationId = null; // openConversation does its work only for another conversation
  history.replaceState({ conversationId: initial }, '', location.href);
  openConversation(initial);
  loadConversations({ reset: true });
  loadModels();
  autosize();
  updateComposerState();
  // The handlers are in place. chat.html keeps the page inert until now: the composer is
  // painted before the modules arrive, and a click or key before this would be lost.
  el.app.inert = false;
  if (el.menuToggle) el.menuToggle.inert = false;
  document.body.dataset.ready = 'true';
}

start();
