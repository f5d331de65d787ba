/* The chat page (templates/conversations/chat.html), the browser side of docs/protocol.md.
 * ES modules, no build step. Rules kept on purpose:
 *  - innerHTML is used in exactly one place (renderMessageBody, messages.js) with the
 *    server's nh3-sanitized `html`; everything else is textContent / DOM nodes.
 *  - no inline styles or handlers, so a strict Content-Security-Policy works.
 * This module wires the modules together, then opens the conversation of the URL.
 *
 * What the split relies on:
 *  - Imports go one way, from this module down to store.js and the shared modules of
 *    static/js (docs/architecture.md; tests/e2e/test_module_graph.py fails on a cycle). A
 *    view learns of a change by subscribing to the store (the init* calls below), not by
 *    being called by the module that made it.
 *  - Relative imports ('./store.js') resolve because static files are served under their
 *    own names (WhiteNoise, Django's default storage). A manifest storage that hashes file
 *    names would have to rewrite import paths too. */
import { initApprovals } from './approvals.js';
import { initBranches } from './branches.js';
import { autosize, initComposer, updateComposerState } from './composer.js';
import { idFromPath, initConversation, markNotFound, navigate, openConversation } from './conversation.js';
import { el } from './elements.js';
import { onFrame } from './frames.js';
import { initMessages } from './messages.js';
import { initModelPicker, loadModels } from './models.js';
import { clearNotice } from './notices.js';
import { initOlder } from './older.js';
import { renderOutbox } from './outbox.js';
import { cancelRun, initRuns } from './runs.js';
import { initScrolling } from './scroll.js';
import { closeSidebar, initSidebar, loadConversations } from './sidebar.js';
import { connect, resetBackoff, setConnection, setSocketHandlers, showOfflineNotice, teardownSocket } from './socket.js';
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
    resetBackoff();
    if (state.conversationId && !state.notFound) connect();
    else setConnection('online');
    if (!state.listLoaded) loadConversations({ reset: true });
  });

  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState !== 'visible') return;
    if (state.conversationId && !state.notFound && !state.ws && navigator.onLine) {
      resetBackoff();
      connect();
    }
  });
}

function start() {
  setSocketHandlers({ frame: onFrame, notFound: markNotFound, closed: renderOutbox });
  // The store's listeners run in the order they are added here: Send and Stop first, then
  // the indicators under the messages, then the branch buttons; a stopped reply settled
  // before its run's usage is shown; an older page's messages before its approvals, which
  // go among them by time.
  initComposer();
  initMessages();
  initRuns();
  initBranches();
  initApprovals();
  initConversation();
  initModelPicker();
  initSidebar({ navigate });
  initNavigation();
  initEscape();
  initScrolling();
  initOlder();
  initConnectivity();

  const initial = el.app.dataset.conversationId || '';
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
