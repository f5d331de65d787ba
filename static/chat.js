/* Agent Chat: the browser side of PROTOCOL.md. Plain ES, no build step.
 *
 * Rules kept on purpose:
 *  - innerHTML is used in exactly one place (renderMessageBody) with the server's
 *    nh3-sanitized `html`; everything else is textContent / DOM nodes.
 *  - no inline styles or handlers, so a strict Content-Security-Policy works.
 */
'use strict';

(() => {
  const MAX_CHARS = 32000;
  const COUNTER_FROM = 30000;
  const MAX_FRAME_BYTES = 64 * 1024;
  const PING_MS = 25000;
  const STALE_MS = 2 * PING_MS + 15000;
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const SEARCH_DEBOUNCE_MS = 250;
  const ACTIVE_RUN = new Set(['queued', 'running']);
  const BRANCH_FRAMES = new Set(['message.edit', 'message.regenerate', 'branch.switch']);
  const BRANCH_TIMEOUT_MS = 20000;
  const OPEN_RUN = new Set(['queued', 'running', 'waiting']);
  const ROLES = new Set(['user', 'assistant', 'tool']);
  const APP_NAME = 'Agent Chat';

  const byId = (id) => document.getElementById(id);
  const app = byId('app');
  if (!app) return;

  const el = {
    app,
    menuToggle: byId('menu-toggle'),
    sidebar: byId('sidebar'),
    backdrop: byId('sidebar-backdrop'),
    newChat: byId('new-chat'),
    search: byId('conversation-search'),
    list: byId('conversation-list'),
    groups: byId('conversation-groups'),
    listEmpty: byId('conversation-list-empty'),
    loadMore: byId('load-more'),
    title: byId('conversation-title'),
    exportLinks: byId('export-links'),
    exportMarkdown: byId('export-markdown'),
    exportJson: byId('export-json'),
    status: byId('connection-status'),
    scroller: byId('message-scroller'),
    loadOlder: byId('load-older'),
    empty: byId('empty-state'),
    messages: byId('messages'),
    outbox: byId('outbox'),
    typing: byId('typing-indicator'),
    waiting: byId('waiting-indicator'),
    waitingJump: byId('waiting-jump'),
    scrollBottom: byId('scroll-bottom'),
    notices: byId('notices'),
    form: byId('composer-form'),
    composer: byId('composer'),
    counter: byId('char-counter'),
    send: byId('send'),
    stop: byId('stop'),
  };

  const state = {
    username: app.dataset.username || '',
    conversationId: app.dataset.conversationId || '',
    conversation: null,
    notFound: false,
    creating: false,
    // sidebar
    conversations: [],
    nextCursor: null,
    query: '',
    listRequest: 0,
    loadingMore: false,
    listLoaded: false,
    renamingId: null,
    sidebarDirty: false,
    // socket
    ws: null,
    wsOpened: false,
    synced: false,
    lastSeq: null,
    attempts: 0,
    reconnectTimer: null,
    pingTimer: null,
    lastFrameAt: 0,
    // view
    messages: new Map(), // id -> Message
    messageEls: new Map(), // id -> element
    approvals: new Map(), // id -> Approval
    deciding: new Map(), // approval id -> {decision, timer}: a decision in flight
    reuseCards: null, // approval cards kept across a snapshot (open forms, typed text)
    revealApproval: '', // approval id from #approval-<id>, to scroll to once shown
    lastSent: null, // {type, approvalId?}: the last frame sent that the server may refuse
    activeRun: null,
    cancelling: null,
    // runs of the shown turns (run frames, snapshot.runs): their turns, models, usage, failures
    runs: new Map(), // run id -> Run
    runTurns: new Map(), // run id -> its turn (microseconds of its user message's turn_at)
    latestRuns: new Map(), // user message id -> the latest Run that answers it
    lastReplies: new Map(), // run id -> id of its last assistant message shown
    retrying: '', // id of the failed run whose run.retry is unanswered
    // model picker (GET /api/models/)
    models: null, // {default, ids}
    newChatModel: '', // the model chosen before the conversation exists
    modelRequest: 0,
    outbox: [], // {convId, content, clientId, sentCount, knownIds, sentOn}
    stick: true,
    // branches (edit / regenerate / switch versions)
    branchId: null, // the shown branch (snapshot.branch_id), null if never forked
    snapshotGen: 0, // grows with each snapshot: drops stale HTTP answers
    olderCursor: null, // where the page before the oldest message shown starts (null: none)
    olderLoading: null, // the promise of that page while it is fetched
    editing: null, // {messageId, draft, clientId}: a user message being edited inline
    branchPending: null, // {type, messageId, ws, timer, focus}: a fork or switch sent, not yet answered
  };

  /* ------------------------------------------------------------------ utils */

  function getCookie(name) {
    const prefix = name + '=';
    for (const part of document.cookie ? document.cookie.split(';') : []) {
      const item = part.trim();
      if (item.startsWith(prefix)) return decodeURIComponent(item.slice(prefix.length));
    }
    return '';
  }

  function csrfToken() {
    const fromCookie = getCookie('csrftoken');
    if (fromCookie) return fromCookie;
    const input = document.querySelector('input[name="csrfmiddlewaretoken"]');
    return input ? input.value : '';
  }

  function uuid() {
    if (window.crypto && typeof window.crypto.randomUUID === 'function') {
      return window.crypto.randomUUID();
    }
    // crypto.randomUUID needs a secure context; getRandomValues does not.
    const b = window.crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function charCount(text) {
    // The server counts code points; a UTF-16 length is never smaller.
    return text.length <= MAX_CHARS ? text.length : Array.from(text).length;
  }

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function button(className, label, opts = {}) {
    const b = make('button', className, opts.ariaOnly ? undefined : label);
    b.type = 'button';
    if (opts.ariaOnly) {
      b.setAttribute('aria-label', label);
      b.title = label;
    }
    return b;
  }

  function formatJSON(value) {
    if (value === undefined) return '';
    if (typeof value === 'string') {
      try {
        return JSON.stringify(JSON.parse(value), null, 2);
      } catch (_) {
        return value;
      }
    }
    try {
      return JSON.stringify(value, null, 2);
    } catch (_) {
      return String(value);
    }
  }

  function conversationPath(id) {
    return id ? `/c/${encodeURIComponent(id)}/` : '/';
  }

  function idFromPath(pathname) {
    const m = /^\/c\/([^/]+)\/?$/.exec(pathname);
    if (!m) return '';
    try {
      return decodeURIComponent(m[1]);
    } catch (_) {
      return '';
    }
  }

  function loginUrl() {
    return '/accounts/login/?next=' + encodeURIComponent(location.pathname + location.search);
  }

  function goToLogin() {
    location.assign(loginUrl());
  }

  function displayTitle(conv) {
    const t = conv && typeof conv.title === 'string' ? conv.title.trim() : '';
    return t || 'New chat';
  }

  function titleFromMessage(content) {
    const line = content.split('\n').map((s) => s.trim()).find(Boolean) || '';
    return line.length > 60 ? line.slice(0, 57).trimEnd() + '…' : line;
  }

  function timeOf(iso) {
    const t = Date.parse(iso || '');
    return Number.isNaN(t) ? 0 : t;
  }

  /* -------------------------------------------------------------------- HTTP */

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, url, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (!['GET', 'HEAD', 'OPTIONS'].includes(method)) headers['X-CSRFToken'] = csrfToken();
    let res;
    try {
      res = await fetch(url, {
        method,
        headers,
        credentials: 'same-origin',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (_) {
      throw new ApiError(0, 'Network error: the server could not be reached.');
    }
    if (res.status === 401) {
      goToLogin();
      throw new ApiError(401, 'You are not logged in.');
    }
    if (res.status === 204) return null;
    let data = null;
    const type = res.headers.get('Content-Type') || '';
    if (type.includes('json')) {
      try {
        data = await res.json();
      } catch (_) {
        data = null;
      }
    }
    if (!res.ok) {
      let msg = `Request failed (${res.status}).`;
      if (data && typeof data === 'object') {
        msg = data.message || data.detail || (typeof data.error === 'string' ? data.error : '') || msg;
        if (data.error && typeof data.error === 'object' && data.error.message) msg = data.error.message;
      }
      if (res.status === 404) msg = 'Conversation not found.';
      throw new ApiError(res.status, String(msg));
    }
    return data;
  }

  /* ----------------------------------------------------------------- notices */

  function showNotice(text, { kind = 'error', key = '', global = false } = {}) {
    if (key) {
      const existing = el.notices.querySelector(`.notice[data-key="${CSS.escape(key)}"]`);
      if (existing) {
        existing.querySelector('.notice-text').textContent = text;
        return existing;
      }
    }
    const notice = make('div', `notice ${kind}`);
    notice.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    notice.dataset.kind = kind;
    if (key) notice.dataset.key = key;
    if (global) notice.dataset.global = 'true';
    const span = make('span', 'notice-text', text);
    const dismiss = button('notice-dismiss', 'Dismiss', { ariaOnly: true });
    dismiss.textContent = '×';
    dismiss.addEventListener('click', () => {
      const focusComposer = notice.contains(document.activeElement);
      notice.remove();
      if (focusComposer) el.composer.focus();
    });
    notice.append(span, dismiss);
    el.notices.append(notice);
    return notice;
  }

  function clearNotice(key) {
    const n = el.notices.querySelector(`.notice[data-key="${CSS.escape(key)}"]`);
    if (n) n.remove();
  }

  function clearConversationNotices() {
    for (const n of Array.from(el.notices.children)) {
      if (n.dataset.global !== 'true') n.remove();
    }
  }

  /* ----------------------------------------------------------------- copying */

  async function copyText(text, btn) {
    let ok = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        ok = true;
      }
    } catch (_) {
      ok = false;
    }
    if (!ok) {
      const ta = make('textarea', 'clipboard-helper');
      ta.value = text;
      ta.setAttribute('readonly', '');
      document.body.append(ta);
      ta.select();
      try {
        ok = document.execCommand('copy');
      } catch (_) {
        ok = false;
      }
      ta.remove();
      if (btn) btn.focus();
    }
    if (btn) {
      btn.dataset.copied = ok ? 'true' : 'false';
      const label = btn.getAttribute('aria-label') || '';
      btn.setAttribute('aria-label', ok ? 'Copied' : 'Copy failed');
      setTimeout(() => {
        delete btn.dataset.copied;
        btn.setAttribute('aria-label', label);
      }, 1500);
    }
  }

  /* --------------------------------------------------------------- messages */

  function renderMessageBody(body, message) {
    if (typeof message.html === 'string') {
      // The one innerHTML: Markdown rendered and sanitized (nh3) by the server.
      body.innerHTML = message.html;
    } else {
      body.textContent = message.content || '';
    }
    for (const a of body.querySelectorAll('a[href]')) {
      a.target = '_blank';
      a.rel = 'noopener noreferrer nofollow';
    }
    // A wide table scrolls sideways in its box: the keyboard must reach it to scroll it.
    for (const table of body.querySelectorAll('table')) table.tabIndex = 0;
    enhanceCodeBlocks(body);
  }

  function enhanceCodeBlocks(root) {
    for (const pre of root.querySelectorAll('pre')) {
      if (pre.parentElement && pre.parentElement.classList.contains('code-block')) continue;
      const wrap = make('div', 'code-block');
      pre.tabIndex = 0; // a long line scrolls sideways: keyboard reachable
      pre.replaceWith(wrap);
      wrap.append(pre);
      const copy = button('copy-btn copy-code', 'Copy code', { ariaOnly: true });
      copy.addEventListener('click', () => copyText(pre.textContent || '', copy));
      wrap.append(copy);
    }
  }

  function buildMessage(message) {
    const role = ROLES.has(message.role) ? message.role : 'other';
    const node = make('article', `message ${role}`);
    node.dataset.messageId = String(message.id);
    if (message.run_id) node.dataset.runId = String(message.run_id);
    const labels = { user: 'You', assistant: 'Assistant', tool: 'Tool result' };
    node.setAttribute('aria-label', labels[role] || 'Message');

    if (role === 'tool') {
      const head = make('div', 'message-meta', message.tool_name ? `Tool result · ${message.tool_name}` : 'Tool result');
      node.append(head);
    }
    const body = make('div', 'message-body');
    renderMessageBody(body, message);
    node.append(body);

    if (message.stopped) {
      node.dataset.stopped = 'true';
      node.append(make('div', 'message-note', 'Stopped'));
    }
    const hasText = typeof message.content === 'string' ? !!message.content.trim() : !!body.textContent.trim();
    const versions = versionsOf(message);
    // e.g. an assistant turn that only calls a tool (unless it is one version of several: show its switcher)
    if (!hasText && !versions) node.dataset.empty = 'true';
    if (versions) node.dataset.versions = `${versions.index + 1}/${versions.count}`;

    const editing = role === 'user' && state.editing && state.editing.messageId === String(message.id);
    if (editing) {
      node.dataset.editing = 'true';
      body.hidden = true;
      node.append(buildEditor(node, message));
    }

    const actions = make('div', 'message-actions');
    if (versions) actions.append(buildVersionSwitcher(message, versions));
    if (role === 'user' && !editing && typeof message.content === 'string') {
      const edit = button('msg-action edit-message branch-control', 'Edit message', { ariaOnly: true });
      edit.textContent = 'Edit';
      edit.addEventListener('click', () => startEdit(String(message.id)));
      actions.append(edit);
    }
    if (role === 'assistant' && hasText) {
      const copy = button('copy-btn copy-message', 'Copy message', { ariaOnly: true });
      copy.addEventListener('click', () => {
        const m = state.messages.get(node.dataset.messageId);
        copyText(m ? m.content || '' : body.textContent || '', copy);
      });
      actions.append(copy);
      const again = button('msg-action regenerate-message branch-control', 'Regenerate response', { ariaOnly: true });
      again.textContent = 'Regenerate';
      again.addEventListener('click', () => regenerate(String(message.id)));
      actions.append(again);
    }
    if (actions.childElementCount) node.append(actions);
    const error = make('p', 'message-error');
    error.setAttribute('role', 'alert');
    error.hidden = true;
    node.append(error);
    decorateMessage(node, message, body);
    applyBranchControlState(node);
    return node;
  }

  /* ------------------------------------------- branches: edit / regenerate / versions */

  function versionsOf(message) {
    const v = message && message.versions;
    if (!v || !Array.isArray(v.choices) || v.choices.length < 2) return null;
    const count = v.choices.length;
    const index = Number.isInteger(v.index) && v.index >= 0 && v.index < count ? v.index : 0;
    return { index, count, choices: v.choices };
  }

  // "‹ 2 / 3 ›": real buttons; the ends are disabled.
  function buildVersionSwitcher(message, versions) {
    const group = make('div', 'version-switcher');
    group.setAttribute('role', 'group');
    group.setAttribute('aria-label', 'Versions');
    const prev = button('version-btn version-prev branch-control', 'Previous version', { ariaOnly: true });
    prev.textContent = '‹';
    prev.dataset.atEnd = versions.index <= 0 ? 'true' : 'false';
    prev.addEventListener('click', () => switchVersion(String(message.id), -1));
    const label = make('span', 'version-label', `${versions.index + 1} / ${versions.count}`);
    label.setAttribute('aria-label', `Version ${versions.index + 1} of ${versions.count}`);
    const next = button('version-btn version-next branch-control', 'Next version', { ariaOnly: true });
    next.textContent = '›';
    next.dataset.atEnd = versions.index >= versions.count - 1 ? 'true' : 'false';
    next.addEventListener('click', () => switchVersion(String(message.id), 1));
    group.append(prev, label, next);
    return group;
  }

  function buildEditor(node, message) {
    const id = String(message.id);
    const form = make('form', 'message-editor');
    form.noValidate = true;
    const inputId = uid('edit-input');
    const label = make('label', 'visually-hidden', 'Edit your message');
    label.htmlFor = inputId;
    const input = make('textarea', 'edit-input');
    input.id = inputId;
    input.rows = 2;
    input.value = state.editing.draft;
    const row = make('div', 'editor-actions');
    const cancel = button('btn btn-quiet btn-small edit-cancel', 'Cancel');
    const save = make('button', 'btn btn-primary btn-small edit-save', 'Save');
    save.type = 'submit';
    row.append(cancel, save);
    form.append(label, input, row);

    const refresh = () => {
      const text = input.value.trim();
      save.dataset.invalid = !text || text === (message.content || '').trim() || charCount(text) > MAX_CHARS ? 'true' : 'false';
      applyBranchControlState(node);
    };
    input.addEventListener('input', () => {
      if (state.editing && state.editing.messageId === id) state.editing.draft = input.value;
      refresh();
    });
    // As in the composer: Enter saves, Shift+Enter is a new line. Esc cancels.
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        saveEdit(id, input.value);
      }
    });
    form.addEventListener('keydown', (e) => {
      if (e.key !== 'Escape' || e.isComposing) return;
      // Esc leaves the editor; it must not also stop a run (the document's Esc handler).
      e.preventDefault();
      e.stopPropagation();
      cancelEdit();
    });
    cancel.addEventListener('click', () => cancelEdit());
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      saveEdit(id, input.value);
    });
    refresh();
    return form;
  }

  // A fork or a switch is refused while a run is open, or while one of ours is unanswered.
  function branchBlocked() {
    return !!(state.activeRun && OPEN_RUN.has(state.activeRun.status)) || !!state.branchPending || state.notFound;
  }

  function applyBranchControlState(root) {
    const blocked = branchBlocked();
    const hint = blocked && state.activeRun ? 'Stop the current reply first' : '';
    for (const b of root.querySelectorAll('.branch-control, .edit-save')) {
      const off = blocked || b.dataset.atEnd === 'true' || b.dataset.invalid === 'true';
      if (off && document.activeElement === b) {
        // Keep the focus nearby instead of losing it to <body>.
        const other = b.closest('.version-switcher')?.querySelector('.version-btn:not([data-at-end="true"])');
        if (other && other !== b && !blocked) other.focus();
      }
      b.disabled = off;
      if (b.classList.contains('edit-message') || b.classList.contains('regenerate-message') || b.classList.contains('edit-save')) {
        if (hint) b.title = hint;
        else if (b.getAttribute('aria-label')) b.title = b.getAttribute('aria-label');
        else b.removeAttribute('title');
      }
    }
    const pending = state.branchPending;
    if (root.classList && root.classList.contains('message')) {
      if (pending && pending.messageId === root.dataset.messageId) root.setAttribute('aria-busy', 'true');
      else if (root.dataset.streaming !== 'true') root.removeAttribute('aria-busy');
    }
  }

  function updateBranchControls() {
    el.app.dataset.branchBlocked = branchBlocked() ? 'true' : 'false';
    for (const node of el.messages.querySelectorAll('.message')) applyBranchControlState(node);
  }

  function messageError(id, text) {
    const node = state.messageEls.get(id) || findMessageEl(id);
    const error = node && node.isConnected ? node.querySelector(':scope > .message-error') : null;
    if (!error) {
      showNotice(text, { kind: 'error' });
      return;
    }
    error.textContent = text;
    error.hidden = false;
  }

  function clearMessageErrors() {
    for (const e of el.messages.querySelectorAll('.message-error:not([hidden])')) {
      e.textContent = '';
      e.hidden = true;
    }
  }

  function rerender(id) {
    const m = state.messages.get(id);
    if (m) upsertMessage(m);
    return state.messageEls.get(id) || null;
  }

  function startEdit(id) {
    const m = state.messages.get(id);
    if (!m || m.role !== 'user' || branchBlocked()) return;
    if (state.editing && state.editing.messageId !== id) {
      const before = state.editing.messageId;
      state.editing = null;
      rerender(before);
    }
    state.editing = { messageId: id, draft: m.content || '', clientId: null };
    const node = rerender(id);
    const input = node && node.querySelector('.edit-input');
    if (input) {
      input.focus();
      input.setSelectionRange(input.value.length, input.value.length);
    }
  }

  function cancelEdit() {
    if (!state.editing) return;
    const id = state.editing.messageId;
    if (state.branchPending && state.branchPending.messageId === id) return; // saving: wait for the answer
    state.editing = null;
    const node = rerender(id);
    const edit = node && node.querySelector('.edit-message');
    if (edit) edit.focus();
  }

  function saveEdit(id, value) {
    const m = state.messages.get(id);
    const content = String(value || '').trim();
    if (!m || !state.editing || state.editing.messageId !== id || branchBlocked()) return;
    if (!content || content === (m.content || '').trim()) return;
    if (charCount(content) > MAX_CHARS) {
      messageError(id, `Your message is too long: the limit is ${MAX_CHARS.toLocaleString('en-US')} characters.`);
      return;
    }
    // The same client_id if Save is pressed again after a lost answer: the server creates nothing twice.
    if (!state.editing.clientId) state.editing.clientId = uuid();
    const frame = { type: 'message.edit', message_id: id, content, client_id: state.editing.clientId };
    if (new TextEncoder().encode(JSON.stringify(frame)).length > MAX_FRAME_BYTES) {
      messageError(id, 'Your message is too large to send (64 KiB limit). Please shorten it.');
      return;
    }
    sendBranchFrame(frame, id, { kind: 'composer' });
  }

  function regenerate(id) {
    const m = state.messages.get(id);
    if (!m || m.role !== 'assistant' || branchBlocked()) return;
    sendBranchFrame({ type: 'message.regenerate', message_id: id, client_id: uuid() }, id, { kind: 'composer' });
  }

  function switchVersion(id, delta) {
    const m = state.messages.get(id);
    const versions = versionsOf(m);
    if (!versions || branchBlocked()) return;
    const k = versions.index + delta;
    if (k < 0 || k >= versions.count) return;
    const choice = versions.choices[k] || {};
    let frame;
    if (choice.message_id !== null && choice.message_id !== undefined) {
      frame = { type: 'branch.switch', message_id: String(choice.message_id) };
    } else if (choice.branch_id !== null && choice.branch_id !== undefined) {
      frame = { type: 'branch.switch', branch_id: String(choice.branch_id) };
    } else {
      return;
    }
    // After the new snapshot: the message at the same place (the version chosen), the same button.
    const nodes = Array.from(el.messages.querySelectorAll('.message'));
    const node = state.messageEls.get(id);
    sendBranchFrame(frame, id, {
      kind: 'switch', messageId: frame.message_id || null, index: nodes.indexOf(node), which: delta < 0 ? 'prev' : 'next',
    });
  }

  function sendBranchFrame(frame, messageId, focus) {
    clearMessageErrors();
    if (!state.synced || !sendFrame(frame)) {
      messageError(messageId, 'Not connected. Try again when the connection is back.');
      return false;
    }
    const pending = { type: frame.type, messageId, ws: state.ws, focus, timer: null };
    pending.timer = setTimeout(() => {
      if (state.branchPending !== pending) return;
      state.branchPending = null;
      updateBranchControls();
    }, BRANCH_TIMEOUT_MS);
    state.branchPending = pending;
    updateBranchControls();
    return true;
  }

  function clearBranchPending() {
    if (state.branchPending) clearTimeout(state.branchPending.timer);
    state.branchPending = null;
  }

  // Called by applySnapshot before it rebuilds the messages.
  function branchSnapshotStart(messages) {
    const ids = new Set(messages.map((m) => String(m && m.id)));
    const pending = state.branchPending;
    let done = null;
    if (pending) {
      if (pending.ws !== state.ws) {
        done = pending; // a new socket: our frame may be lost; the controls come back
      } else if (pending.type === 'message.edit') {
        if (!ids.has(pending.messageId)) done = pending; // the edited message left the line: the fork is shown
      } else {
        done = pending;
      }
      if (done) clearBranchPending();
    }
    if (state.editing && !ids.has(state.editing.messageId)) state.editing = null;
    return done;
  }

  // Called by applySnapshot once the messages are shown: put the focus where the user was.
  function branchSnapshotEnd(done, focusLost) {
    updateBranchControls();
    if (!done || !done.focus) return;
    if (done.focus.kind === 'switch') {
      const target = done.focus.messageId;
      if (target && !state.messageEls.has(target) && state.olderCursor) {
        // The version chosen is older than the snapshot's page: fetch back to it.
        loadOlderUntil(() => state.messageEls.has(target)).then((found) => {
          const now = document.activeElement;
          if (found) focusSwitched(done.focus, () => focusLost() && (!now || now === document.body));
        });
        return;
      }
      focusSwitched(done.focus, focusLost);
    } else if (focusLost()) {
      el.composer.focus({ preventScroll: true });
    }
  }

  function focusSwitched(focus, focusLost) {
    const node = (focus.messageId && state.messageEls.get(focus.messageId))
      || el.messages.querySelectorAll('.message')[focus.index];
    if (!node) return;
    const want = node.querySelector(`.version-${focus.which}:not(:disabled)`);
    const other = node.querySelector('.version-btn:not(:disabled)');
    const target = want || other;
    if (target && focusLost()) target.focus({ preventScroll: true });
    // Stay at the switched message instead of jumping to the end of the line.
    state.stick = false;
    node.scrollIntoView({ block: 'nearest' });
  }

  function upsertMessage(message) {
    if (!message || message.id === undefined || message.id === null) return;
    const id = String(message.id);
    state.messages.set(id, message);
    learnMessage(message);
    const fresh = buildMessage(message);
    const old = state.messageEls.get(id) || findMessageEl(id);
    if (old && old.isConnected) {
      keepThinkingOpen(old, fresh);
      old.replaceWith(fresh);
    } else {
      placeItem(fresh);
    }
    state.messageEls.set(id, fresh);
    updateStreamingFlag();
  }

  function findMessageEl(id) {
    return el.messages.querySelector(`.message[data-message-id="${CSS.escape(id)}"]`);
  }

  function appendToken(frame) {
    const id = String(frame.message_id);
    let node = state.messageEls.get(id);
    if (!node || !node.isConnected) node = findMessageEl(id);
    if (!node) {
      node = make('article', 'message assistant');
      node.dataset.messageId = id;
      node.dataset.streaming = 'true';
      if (frame.run_id) node.dataset.runId = String(frame.run_id);
      node.setAttribute('aria-label', 'Assistant');
      node.append(make('div', 'message-body streaming-body'));
      setTurn(node, turnOfRun(frame.run_id));
      placeItem(node);
      state.messageEls.set(id, node);
    }
    if (node.dataset.streaming !== 'true') return; // already final
    if (typeof frame.delta === 'string' && frame.delta) appendDelta(node, frame);
    if (frame.run_id && (!state.activeRun || state.activeRun.id !== String(frame.run_id))) {
      if (!state.activeRun || !OPEN_RUN.has(state.activeRun.status)) {
        state.activeRun = { id: String(frame.run_id), status: 'running' };
        updateControls();
        syncSidebarStatus();
      }
    }
    updateStreamingFlag();
  }

  function finishStreaming(runId) {
    for (const node of el.messages.querySelectorAll('.message[data-streaming="true"]')) {
      if (!runId || node.dataset.runId === runId) {
        delete node.dataset.streaming;
        node.querySelector('.message-body')?.classList.remove('streaming-body');
        settleThinking(node);
      }
    }
    updateStreamingFlag();
  }

  function updateStreamingFlag() {
    const streaming = !!el.messages.querySelector('.message[data-streaming="true"]');
    el.messages.setAttribute('aria-busy', streaming ? 'true' : 'false');
    updateTyping();
    scheduleScroll();
  }

  /* ----------------------------------------------------------- older messages */
  // A snapshot holds the latest messages of the line shown; the older ones come a page
  // at a time from GET .../messages/?before=<cursor>, when the user scrolls to the top
  // or presses "Load earlier messages".

  const OLDER_PAGE_SIZE = 50;
  const OLDER_SCROLL_MARGIN_PX = 200;

  // From a snapshot (or {} for none): an answer fetched for an earlier one is dropped.
  function setOlderCursor(frame) {
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
  async function loadOlderUntil(found) {
    const gen = state.snapshotGen;
    while (!found() && state.olderCursor && gen === state.snapshotGen) {
      if (!(await loadOlder())) break;
    }
    return gen === state.snapshotGen && found();
  }

  function loadOlderAtTop() {
    if (state.olderCursor && !state.olderLoading && el.scroller.scrollTop < OLDER_SCROLL_MARGIN_PX) loadOlder();
  }

  /* ---------------------------------------------------------- cards (inline) */

  function cardField(label, value, className) {
    const wrap = make('div', 'card-field');
    wrap.append(make('div', 'card-label', label));
    const pre = make('pre', className, value);
    wrap.append(pre);
    return wrap;
  }

  /* ------------------------------------------------------------- approvals */

  const APPROVAL_STATUS_TEXT = { pending: 'Pending', approved: 'Approved', rejected: 'Rejected', edited: 'Edited' };
  const DECISION_TIMEOUT_MS = 20000;
  const LONG_VALUE_CHARS = 400;
  const TEXTAREA_KEYS = /^(body|content|text|message|description|comment|notes?|html|markdown|summary|details)$/i;
  let uidCounter = 0;

  function uid(prefix) {
    uidCounter += 1;
    return `${prefix}-${uidCounter}`;
  }

  function isDecided(approval) {
    return !!approval && (approval.status || 'pending') !== 'pending';
  }

  function capitalize(s) {
    const t = String(s || '');
    return t ? t[0].toUpperCase() + t.slice(1) : '';
  }

  function sameDay(a, b) {
    return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
  }

  // "14:02" today, "3 Mar 2025, 14:02" on another day.
  function formatWhen(iso) {
    const t = timeOf(iso);
    if (!t) return '';
    const d = new Date(t);
    if (sameDay(d, new Date())) return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    return d.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
  }

  function timeElement(iso, className) {
    const node = make('time', className, formatWhen(iso));
    node.dateTime = String(iso);
    const t = timeOf(iso);
    if (t) node.title = new Date(t).toLocaleString();
    return node;
  }

  // "Approved by alice · 14:02", "Rejected by alice · 14:02 — comment: …"
  function buildDecision(approval) {
    const p = make('p', 'approval-decision');
    const status = approval.status || '';
    let lead = APPROVAL_STATUS_TEXT[status] || capitalize(status);
    if (approval.decided_by) lead += ` by ${approval.decided_by}`;
    p.append(document.createTextNode(lead));
    if (approval.decided_at && timeOf(approval.decided_at)) {
      p.append(document.createTextNode(' · '));
      p.append(timeElement(approval.decided_at, 'approval-decided-at'));
    }
    if (typeof approval.comment === 'string' && approval.comment.trim()) {
      p.append(document.createTextNode(' — comment: '));
      p.append(make('span', 'approval-comment', approval.comment));
    }
    return p;
  }

  function isPlainObject(v) {
    return !!v && typeof v === 'object' && !Array.isArray(v);
  }

  function schemaProperties(schema) {
    const root = isPlainObject(schema) ? schema : null;
    return root && isPlainObject(root.properties) ? root.properties : null;
  }

  function argKeys(args, schema) {
    const props = schemaProperties(schema);
    const keys = props ? Object.keys(props).filter((k) => Object.prototype.hasOwnProperty.call(args, k)) : [];
    for (const k of Object.keys(args)) if (!keys.includes(k)) keys.push(k);
    return keys;
  }

  function buildValue(value) {
    const dd = make('dd', 'arg-value');
    let text;
    if (value === null || value === undefined) {
      dd.classList.add('arg-empty');
      dd.textContent = 'none';
      return dd;
    }
    if (typeof value === 'object') {
      dd.classList.add('arg-object');
      text = formatJSON(value);
      const pre = make('pre', 'arg-json', text);
      if (text.length > LONG_VALUE_CHARS) pre.tabIndex = 0; // scrollable: keyboard reachable
      dd.append(pre);
      return dd;
    }
    if (typeof value === 'string') {
      dd.classList.add('arg-text');
      if (!value) {
        dd.classList.add('arg-empty');
        dd.textContent = '(empty)';
        return dd;
      }
      dd.textContent = value;
      if (value.length > LONG_VALUE_CHARS || value.split('\n').length > 10) {
        dd.classList.add('arg-long');
        dd.tabIndex = 0;
      }
      return dd;
    }
    dd.textContent = String(value);
    return dd;
  }

  function buildArgs(label, args, schema, { compareTo, className } = {}) {
    const wrap = make('div', `card-field ${className || ''}`.trim());
    const labelId = uid('args-label');
    const heading = make('div', 'card-label', label);
    heading.id = labelId;
    wrap.append(heading);
    if (!isPlainObject(args)) {
      const pre = make('pre', 'card-args', formatJSON(args));
      wrap.append(pre);
      return wrap;
    }
    const dl = make('dl', 'approval-args');
    dl.setAttribute('aria-labelledby', labelId);
    const keys = argKeys(args, schema);
    if (!keys.length) {
      wrap.append(make('p', 'approval-args-none', 'No arguments.'));
      return wrap;
    }
    for (const key of keys) {
      const row = make('div', 'arg');
      row.dataset.arg = key;
      const dt = make('dt', 'arg-name', key);
      const changed = compareTo && JSON.stringify(compareTo[key]) !== JSON.stringify(args[key]);
      if (changed) {
        row.classList.add('arg-changed');
        dt.append(make('span', 'arg-changed-mark', ' (changed)'));
      }
      row.append(dt, buildValue(args[key]));
      dl.append(row);
    }
    wrap.append(dl);
    return wrap;
  }

  function buildApprovalHead(approval) {
    const head = make('div', 'card-head');
    head.id = uid('approval-head');
    head.append(make('span', 'card-kind', 'Approval'));
    head.append(make('strong', 'card-name approval-tool', approval.tool || 'tool'));
    const status = approval.status || 'pending';
    const chip = make('span', 'card-status', APPROVAL_STATUS_TEXT[status] || capitalize(status));
    chip.dataset.status = status;
    head.append(chip);
    return head;
  }

  function buildApprovalBody(approval) {
    const body = make('div', 'approval-body');
    if (approval.description) body.append(make('p', 'card-description', approval.description));
    const args = approval.args === undefined || approval.args === null ? {} : approval.args;
    const edited = approval.edited_args;
    if (edited !== undefined && edited !== null) {
      body.append(buildArgs('Original arguments', args, approval.args_schema, { className: 'approval-original' }));
      body.append(
        buildArgs('Edited arguments', edited, approval.args_schema, {
          className: 'approval-edited',
          compareTo: isPlainObject(args) ? args : undefined,
        }),
      );
    } else {
      body.append(buildArgs('Arguments', args, approval.args_schema));
    }
    if (isDecided(approval)) body.append(buildDecision(approval));
    return body;
  }

  function allowedOf(approval) {
    return Array.isArray(approval.allowed) ? approval.allowed.map(String) : ['approve', 'reject'];
  }

  function findApprovalCard(id) {
    return el.messages.querySelector(`.approval-card[data-approval-id="${CSS.escape(id)}"]`);
  }

  /**
   * Show an approval: a new card, or the existing one updated in place, in its run's turn.
   * place: 'append' (a live frame: it happens now, last of its turn) or 'time' (snapshot,
   * history: among its turn's items by created_at).
   */
  function upsertApproval(approval, { place = 'append' } = {}) {
    if (!approval || approval.id === undefined || approval.id === null) return;
    const id = String(approval.id);
    const previous = state.approvals.get(id);
    // Approvals only move from pending to decided: an older pending copy never undoes a decision.
    if (previous && isDecided(previous) && !isDecided(approval)) return;
    state.approvals.set(id, approval);

    let card = findApprovalCard(id);
    if (!card && state.reuseCards) card = state.reuseCards.get(id) || null;
    const isNew = !card;
    if (!card) {
      card = make('div', 'card approval-card');
      card.dataset.approvalId = id;
      card.tabIndex = -1;
      card.setAttribute('role', 'group');
    }
    if (!card.isConnected) {
      const created = microsOf(approval.created_at);
      // An approval of a run not shown (another version's) is placed by its own time.
      setTurn(card, turnOfRun(approval.run_id) || created);
      placeItem(card, place === 'time' ? created : 0);
    }
    renderApprovalCard(card, approval, id);
    if (isNew || !isDecided(previous) !== !isDecided(approval)) syncSidebarStatus();
    scheduleScroll();
  }

  function renderApprovalCard(card, approval, id) {
    const status = approval.status || 'pending';
    const hadFocus = card.contains(document.activeElement) && document.activeElement !== card;
    card.id = `approval-${id}`;
    card.dataset.status = status;
    card.dataset.tool = approval.tool || '';

    const head = buildApprovalHead(approval);
    const oldHead = card.querySelector(':scope > .card-head');
    if (oldHead) oldHead.replaceWith(head);
    else card.prepend(head);
    card.setAttribute('aria-labelledby', head.id);

    const body = buildApprovalBody(approval);
    const oldBody = card.querySelector(':scope > .approval-body');
    if (oldBody) oldBody.replaceWith(body);
    else head.after(body);

    let error = card.querySelector(':scope > .card-error');
    if (!error) {
      error = make('p', 'card-error');
      error.setAttribute('role', 'alert');
      error.hidden = true;
      body.after(error);
    }

    const allowed = allowedOf(approval).filter((d) => ['approve', 'reject', 'edit'].includes(d));
    let controls = card.querySelector(':scope > .approval-controls');
    if (status === 'pending' && allowed.length) {
      const key = allowed.join(',');
      if (!controls || controls.dataset.allowed !== key) {
        const fresh = buildControls(card, approval, id, allowed);
        if (controls) controls.replaceWith(fresh);
        else card.append(fresh);
        controls = fresh;
      }
      setCardBusy(card, state.deciding.has(id));
    } else {
      const mine = state.deciding.get(id);
      if (mine) {
        clearTimeout(mine.timer);
        state.deciding.delete(id);
        hideCardError(card); // our decision went through
      }
      delete card.dataset.deciding;
      card.removeAttribute('aria-busy');
      if (controls) {
        const focusInside = controls.contains(document.activeElement);
        controls.remove();
        if (focusInside) card.focus({ preventScroll: true });
      }
    }
    if (hadFocus && !card.contains(document.activeElement)) card.focus({ preventScroll: true });
  }

  function showCardError(card, text) {
    const error = card.querySelector(':scope > .card-error');
    if (!error) return;
    error.textContent = text;
    error.hidden = false;
  }

  function hideCardError(card) {
    const error = card.querySelector(':scope > .card-error');
    if (!error) return;
    error.textContent = '';
    error.hidden = true;
  }

  function setCardBusy(card, busy) {
    const controls = card.querySelector(':scope > .approval-controls');
    if (busy) {
      if (controls && controls.contains(document.activeElement)) card.focus({ preventScroll: true });
      card.dataset.deciding = state.deciding.get(card.dataset.approvalId)?.decision || 'true';
      card.setAttribute('aria-busy', 'true');
    } else {
      delete card.dataset.deciding;
      card.removeAttribute('aria-busy');
    }
    if (!controls) return;
    for (const b of controls.querySelectorAll('button')) b.disabled = busy;
    const progress = controls.querySelector('.approval-progress');
    if (progress) progress.hidden = !busy;
  }

  function buildControls(card, approval, id, allowed) {
    const controls = make('div', 'approval-controls');
    controls.dataset.allowed = allowed.join(',');
    const actions = make('div', 'card-actions');
    controls.append(actions);

    let rejectPanel = null;
    let editForm = null;
    let rejectBtn = null;
    let editBtn = null;

    const closePanels = (except) => {
      if (rejectPanel && except !== rejectPanel) {
        rejectPanel.hidden = true;
        rejectBtn.setAttribute('aria-expanded', 'false');
      }
      if (editForm && except !== editForm) {
        editForm.hidden = true;
        editBtn.setAttribute('aria-expanded', 'false');
      }
    };

    if (allowed.includes('approve')) {
      const ok = button('btn btn-primary btn-small approve-btn', 'Approve');
      ok.addEventListener('click', () => {
        closePanels(null);
        decide(id, 'approve');
      });
      actions.append(ok);
    }

    if (allowed.includes('reject')) {
      rejectBtn = button('btn btn-danger btn-small reject-btn', 'Reject');
      rejectPanel = make('div', 'reject-panel');
      rejectPanel.id = uid('reject-panel');
      rejectPanel.hidden = true;
      rejectBtn.setAttribute('aria-expanded', 'false');
      rejectBtn.setAttribute('aria-controls', rejectPanel.id);

      const commentId = uid('reject-comment');
      const label = make('label', 'field-label', 'Reason (optional)');
      label.htmlFor = commentId;
      const comment = make('textarea', 'field-input reject-comment');
      comment.id = commentId;
      comment.rows = 2;
      comment.maxLength = 2000;
      comment.placeholder = 'Tell the assistant why (optional)';
      const row = make('div', 'card-actions');
      const confirm = button('btn btn-danger btn-small confirm-reject-btn', 'Confirm reject');
      const cancel = button('btn btn-quiet btn-small cancel-reject-btn', 'Cancel');
      row.append(confirm, cancel);
      rejectPanel.append(label, comment, row);

      rejectBtn.addEventListener('click', () => {
        const open = rejectPanel.hidden;
        closePanels(rejectPanel);
        rejectPanel.hidden = !open;
        rejectBtn.setAttribute('aria-expanded', open ? 'true' : 'false');
        if (open) comment.focus();
      });
      const doReject = () => {
        const text = comment.value.trim();
        decide(id, 'reject', text ? { comment: text } : {});
      };
      confirm.addEventListener('click', doReject);
      cancel.addEventListener('click', () => {
        rejectPanel.hidden = true;
        rejectBtn.setAttribute('aria-expanded', 'false');
        rejectBtn.focus();
      });
      comment.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
          e.preventDefault();
          if (!confirm.disabled) doReject();
        } else if (e.key === 'Escape') {
          e.preventDefault();
          cancel.click();
        }
      });
      actions.append(rejectBtn);
    }

    if (allowed.includes('edit')) {
      editBtn = button('btn btn-small edit-btn', 'Edit');
      editForm = buildEditForm(approval, id, () => {
        editForm.hidden = true;
        editBtn.setAttribute('aria-expanded', 'false');
        editBtn.focus();
      });
      editForm.id = uid('edit-form');
      editForm.hidden = true;
      editBtn.setAttribute('aria-expanded', 'false');
      editBtn.setAttribute('aria-controls', editForm.id);
      editBtn.addEventListener('click', () => {
        const open = editForm.hidden;
        closePanels(editForm);
        editForm.hidden = !open;
        editBtn.setAttribute('aria-expanded', open ? 'true' : 'false');
        if (open) {
          const first = editForm.querySelector('input, textarea, select');
          if (first) first.focus();
        }
      });
      actions.append(editBtn);
    }

    const progress = make('span', 'approval-progress', 'Sending your decision…');
    progress.setAttribute('role', 'status');
    progress.hidden = true;
    actions.append(progress);

    if (rejectPanel) controls.append(rejectPanel);
    if (editForm) controls.append(editForm);
    return controls;
  }

  /* ----------------------------------------------- edit form from a schema */

  function resolveRef(schema, root) {
    let s = schema;
    for (let i = 0; i < 5 && isPlainObject(s) && typeof s.$ref === 'string'; i += 1) {
      const m = /^#\/(\$defs|definitions)\/(.+)$/.exec(s.$ref);
      const defs = m && isPlainObject(root) ? root[m[1]] : null;
      const target = defs && isPlainObject(defs) ? defs[m[2]] : null;
      if (!target) break;
      const { $ref, ...rest } = s;
      s = { ...target, ...rest };
    }
    return isPlainObject(s) ? s : {};
  }

  // The field a property gets: {kind, nullable, schema} with anyOf/oneOf/type lists unwrapped.
  function fieldSpec(propSchema, root) {
    let s = resolveRef(propSchema, root);
    let nullable = false;
    const variants = Array.isArray(s.anyOf) ? s.anyOf : Array.isArray(s.oneOf) ? s.oneOf : null;
    if (variants) {
      const resolved = variants.map((v) => resolveRef(v, root));
      const nonNull = resolved.filter((v) => v.type !== 'null');
      nullable = nonNull.length < resolved.length;
      const { anyOf, oneOf, ...outer } = s;
      s = nonNull.length === 1 ? { ...nonNull[0], ...outer } : { ...outer, type: nonNull.length ? undefined : 'null' };
      if (nonNull.length > 1) return { kind: 'json', nullable, schema: s };
    }
    let type = s.type;
    if (Array.isArray(type)) {
      nullable = nullable || type.includes('null');
      const rest = type.filter((t) => t !== 'null');
      type = rest.length === 1 ? rest[0] : undefined;
    }
    let kind = 'json';
    if (Array.isArray(s.enum) && s.enum.length && s.enum.every((v) => typeof v === 'string')) kind = 'enum';
    else if (type === 'string') kind = s.format === 'date' ? 'date' : 'string';
    else if (type === 'integer' || type === 'number') kind = type;
    else if (type === 'boolean') kind = 'boolean';
    return { kind, nullable, schema: s };
  }

  function buildEditForm(approval, id, onCancel) {
    const form = make('form', 'edit-form');
    const root = isPlainObject(approval.args_schema) ? approval.args_schema : null;
    const props = schemaProperties(root);
    const args = isPlainObject(approval.args) ? approval.args : {};
    const required = new Set(root && Array.isArray(root.required) ? root.required.map(String) : []);
    const fields = [];

    form.append(make('p', 'edit-intro', 'Change the arguments, then send them. The assistant will use your version.'));

    if (props) {
      for (const [key, propSchema] of Object.entries(props)) {
        const spec = fieldSpec(propSchema, root);
        fields.push(buildEditField(form, key, spec, args, required.has(key)));
      }
    } else {
      // No schema: edit the whole arguments object as JSON.
      const spec = { kind: 'json', nullable: false, schema: { type: 'object', title: 'Arguments (JSON)' } };
      const field = buildEditField(form, '', spec, { '': args }, true);
      field.whole = true;
      fields.push(field);
    }
    const extras = props ? Object.keys(args).filter((k) => !Object.prototype.hasOwnProperty.call(props, k)) : [];

    const commentId = uid('edit-comment');
    const cWrap = make('div', 'edit-field');
    const cLabel = make('label', 'field-label', 'Comment (optional)');
    cLabel.htmlFor = commentId;
    const comment = make('textarea', 'field-input edit-comment');
    comment.id = commentId;
    comment.rows = 2;
    comment.maxLength = 2000;
    cWrap.append(cLabel, comment);
    form.append(cWrap);

    const row = make('div', 'card-actions');
    const submit = make('button', 'btn btn-primary btn-small submit-edit-btn', 'Send edited version');
    submit.type = 'submit';
    const cancel = button('btn btn-quiet btn-small cancel-edit-btn', 'Cancel');
    cancel.addEventListener('click', onCancel);
    row.append(submit, cancel);
    form.append(row);

    form.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        e.preventDefault();
        onCancel();
      }
    });

    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (state.deciding.has(id)) return;
      let out = {};
      for (const k of extras) out[k] = args[k];
      let firstBad = null;
      for (const field of fields) {
        const result = field.read();
        if (result.error) {
          field.setError(result.error);
          if (!firstBad) firstBad = field;
          continue;
        }
        field.setError('');
        if (field.whole) out = result.value;
        else if (result.value !== undefined) out[field.key] = result.value;
      }
      if (firstBad) {
        firstBad.control.focus();
        return;
      }
      if (!isPlainObject(out)) {
        fields[0].setError('The arguments must be a JSON object.');
        fields[0].control.focus();
        return;
      }
      const text = comment.value.trim();
      decide(id, 'edit', text ? { args: out, comment: text } : { args: out });
    });
    return form;
  }

  function buildEditField(form, key, spec, args, isRequired) {
    const { kind, nullable, schema } = spec;
    const fieldId = uid('edit-field');
    const wrap = make('div', `edit-field edit-field-${kind}`);
    wrap.dataset.arg = key;
    const has = Object.prototype.hasOwnProperty.call(args, key);
    let value = has ? args[key] : schema.default;
    if (value === undefined) value = null;

    const label = make('label', 'field-label', schema.title && typeof schema.title === 'string' ? schema.title : key || 'Arguments');
    label.htmlFor = fieldId;
    if (key && schema.title && schema.title.toLowerCase() !== key.toLowerCase()) {
      label.append(make('span', 'field-key', ` (${key})`));
    }
    if (isRequired && kind !== 'boolean') {
      const mark = make('span', 'field-required', ' *');
      mark.setAttribute('aria-hidden', 'true');
      label.append(mark);
    }
    const describedBy = [];
    let hint = null;
    if (typeof schema.description === 'string' && schema.description) {
      hint = make('p', 'field-hint', schema.description);
      hint.id = uid('edit-hint');
      describedBy.push(hint.id);
    }
    const errorEl = make('p', 'field-error');
    errorEl.id = uid('edit-error');
    errorEl.hidden = true;
    errorEl.setAttribute('aria-live', 'polite');

    let control;
    if (kind === 'boolean') {
      control = make('input', 'field-check');
      control.type = 'checkbox';
      control.checked = value === true;
    } else if (kind === 'enum') {
      control = make('select', 'field-input');
      if (!isRequired || nullable) control.append(make('option', '', '—'));
      for (const opt of schema.enum) {
        const o = make('option', '', opt);
        o.value = opt;
        control.append(o);
      }
      control.value = typeof value === 'string' ? value : '';
    } else if (kind === 'integer' || kind === 'number') {
      control = make('input', 'field-input');
      control.type = 'number';
      control.step = kind === 'integer' ? '1' : 'any';
      if (typeof schema.minimum === 'number') control.min = String(schema.minimum);
      if (typeof schema.maximum === 'number') control.max = String(schema.maximum);
      control.value = typeof value === 'number' ? String(value) : '';
    } else if (kind === 'date') {
      control = make('input', 'field-input');
      control.type = 'date';
      control.value = typeof value === 'string' && /^\d{4}-\d{2}-\d{2}/.test(value) ? value.slice(0, 10) : '';
    } else if (kind === 'string') {
      const text = value === null ? '' : typeof value === 'string' ? value : formatJSON(value);
      const maxLength = typeof schema.maxLength === 'number' ? schema.maxLength : null;
      const long = TEXTAREA_KEYS.test(key) || text.includes('\n') || text.length > 120 || (maxLength !== null && maxLength > 5000);
      if (long) {
        control = make('textarea', 'field-input field-long');
        control.rows = Math.min(12, Math.max(4, text.split('\n').length + 1));
      } else {
        control = make('input', 'field-input');
        control.type = schema.format === 'email' ? 'email' : 'text';
        if (schema.format === 'email') control.autocomplete = 'off';
      }
      control.value = text;
      if (maxLength !== null && maxLength >= 0) control.maxLength = maxLength;
      if (typeof schema.minLength === 'number' && schema.minLength > 0) control.minLength = schema.minLength;
    } else {
      control = make('textarea', 'field-input field-json');
      const text = value === null && !has ? '' : JSON.stringify(value, null, 2);
      control.value = text;
      control.rows = Math.min(12, Math.max(3, text.split('\n').length + 1));
      control.spellcheck = false;
      describedBy.push(errorEl.id);
    }
    control.id = fieldId;
    control.name = key || 'args';
    if (isRequired && kind !== 'boolean') control.required = true;
    if (kind !== 'json') describedBy.push(errorEl.id);
    if (describedBy.length) control.setAttribute('aria-describedby', describedBy.join(' '));

    if (kind === 'boolean') {
      const line = make('div', 'field-check-row');
      line.append(control, label);
      wrap.append(line);
    } else {
      wrap.append(label, control);
    }
    if (hint) wrap.append(hint);
    wrap.append(errorEl);
    form.append(wrap);

    const blank = () => {
      if (nullable) return { value: null };
      if (!isRequired && !has) return { value: undefined };
      return null;
    };

    const read = () => {
      if (kind === 'boolean') return { value: control.checked };
      const raw = control.value;
      if (kind === 'json') {
        if (!raw.trim()) {
          if (isRequired) return { error: 'This field is required (JSON).' };
          return blank() || { value: undefined };
        }
        let parsed;
        try {
          parsed = JSON.parse(raw);
        } catch (err) {
          return { error: `This is not valid JSON: ${err && err.message ? err.message : 'syntax error'}` };
        }
        const t = schema.type;
        if (t === 'object' && !isPlainObject(parsed)) return { error: 'This must be a JSON object, like {"key": "value"}.' };
        if (t === 'array' && !Array.isArray(parsed)) return { error: 'This must be a JSON array, like [1, 2].' };
        return { value: parsed };
      }
      if (kind === 'integer' || kind === 'number') {
        if (raw.trim() === '') {
          if (isRequired) return { error: 'This field is required.' };
          return blank() || { value: undefined };
        }
        const n = Number(raw);
        if (!Number.isFinite(n)) return { error: 'Enter a number.' };
        if (kind === 'integer' && !Number.isInteger(n)) return { error: 'Enter a whole number.' };
        return { value: n };
      }
      if (raw === '') {
        if (isRequired) return { error: 'This field is required.' };
        return blank() || { value: kind === 'string' ? '' : undefined };
      }
      if (typeof schema.maxLength === 'number' && Array.from(raw).length > schema.maxLength) {
        return { error: `At most ${schema.maxLength} characters.` };
      }
      return { value: raw };
    };

    const setError = (text) => {
      errorEl.textContent = text;
      errorEl.hidden = !text;
      if (text) control.setAttribute('aria-invalid', 'true');
      else control.removeAttribute('aria-invalid');
    };
    control.addEventListener('input', () => {
      if (!errorEl.hidden) setError('');
    });
    return { key, control, read, setError };
  }

  /* ------------------------------------------------------------ deciding */

  function decide(id, decision, extra = {}) {
    if (state.deciding.has(id)) return; // a double click sends one frame
    const approval = state.approvals.get(id);
    const card = findApprovalCard(id);
    if (!approval || !card || isDecided(approval)) return;
    hideCardError(card);
    const frame = { type: 'approval.decide', approval_id: String(approval.id), decision, ...extra };
    const bytes = new TextEncoder().encode(JSON.stringify(frame)).length;
    if (bytes > MAX_FRAME_BYTES) {
      showCardError(card, 'Your edit is too large to send (64 KiB limit). Please shorten it.');
      return;
    }
    if (!sendFrame(frame)) {
      showCardError(card, 'Not connected. Your decision was not sent; try again when the connection is back.');
      return;
    }
    const timer = setTimeout(() => {
      if (!state.deciding.has(id)) return;
      failDecision(id, 'No answer from the server yet. Your decision may not have arrived; you can try again.');
    }, DECISION_TIMEOUT_MS);
    state.deciding.set(id, { decision, timer });
    state.lastSent = { type: 'approval.decide', approvalId: id };
    setCardBusy(card, true);
  }

  function failDecision(id, text) {
    const entry = state.deciding.get(id);
    if (entry) clearTimeout(entry.timer);
    state.deciding.delete(id);
    const card = findApprovalCard(id);
    if (!card) {
      if (text) showNotice(text, { kind: 'error' });
      return;
    }
    setCardBusy(card, false);
    if (text) showCardError(card, text);
  }

  function resetDecisions() {
    for (const [id, entry] of state.deciding) {
      clearTimeout(entry.timer);
      const card = findApprovalCard(id);
      state.deciding.delete(id);
      if (card) setCardBusy(card, false);
    }
  }

  /* ------------------------------------------- decided approvals, hash link */

  function hashedApprovalId() {
    const m = /^#approval-(.+)$/.exec(location.hash || '');
    if (!m) return '';
    try {
      return decodeURIComponent(m[1]);
    } catch (_) {
      return m[1];
    }
  }

  function revealHashedApproval() {
    const id = state.revealApproval;
    if (!id) return;
    const card = findApprovalCard(id);
    if (!card) {
      // Decided long ago: its card comes with an older page.
      if (state.olderCursor) {
        loadOlderUntil(() => findApprovalCard(id)).then((found) => {
          if (found) revealHashedApproval();
          else if (!state.olderCursor && state.revealApproval === id) state.revealApproval = ''; // not here
        });
      }
      return;
    }
    state.revealApproval = '';
    state.stick = false;
    requestAnimationFrame(() => {
      if (!card.isConnected) return;
      card.scrollIntoView({ block: 'center' });
      card.focus({ preventScroll: true });
      card.classList.add('approval-highlight');
      setTimeout(() => card.classList.remove('approval-highlight'), 2500);
    });
  }

  function jumpToPendingApproval() {
    for (const card of el.messages.querySelectorAll('.approval-card[data-status="pending"]')) {
      state.stick = false;
      card.scrollIntoView({ block: 'center' });
      const first = card.querySelector('.approve-btn, .reject-btn, .edit-btn');
      (first && !first.disabled ? first : card).focus({ preventScroll: true });
      return;
    }
  }

  function notifyApprovalsChanged() {
    document.dispatchEvent(new CustomEvent('approvals:changed'));
  }

  // A tool stopped with its run and not finished in time: nobody knows whether it acted.
  const TOOL_STATUS_TEXT = { unknown: 'Outcome unknown' };

  function upsertTool(frame) {
    const id = String(frame.tool_call_id || `${frame.run_id}-${frame.name}`);
    const card = make('div', 'card tool-card');
    card.dataset.toolCallId = id;
    card.dataset.status = frame.status || 'started';
    card.setAttribute('role', 'group');
    card.setAttribute('aria-label', `Tool ${frame.name || ''}`);

    const head = make('div', 'card-head');
    head.append(make('span', 'card-kind', 'Tool'));
    head.append(make('strong', 'card-name', frame.name || 'tool'));
    head.append(make('span', 'card-status', TOOL_STATUS_TEXT[frame.status] || frame.status || 'started'));
    card.append(head);
    setTurn(card, turnOfRun(frame.run_id));

    const old = el.messages.querySelector(`.tool-card[data-tool-call-id="${CSS.escape(id)}"]`);
    const args = frame.args !== undefined ? frame.args : old && old._args;
    if (args !== undefined) card.append(cardField('Arguments', formatJSON(args), 'card-args'));
    card._args = args;
    if (frame.result !== undefined && frame.result !== null) {
      card.append(cardField('Result', formatJSON(frame.result), 'card-result'));
    }
    if (old) old.replaceWith(card);
    else placeItem(card);
    scheduleScroll();
  }

  /* ------------------------------------------------------------------- turns */

  // Every item shown (a message, a reply being written, a tool card, an approval card)
  // belongs to a turn: the time its user message was accepted (`turn_at`). Items stand in
  // turn order, and within a turn in the order they came (or were created), so a message
  // queued behind a running turn stays after everything that turn still writes. The
  // server orders stored messages by (turn_at, created_at), so a reload shows the same.

  // An ISO time in microseconds: Date.parse keeps milliseconds, the server's times have six digits.
  function microsOf(iso) {
    const ms = timeOf(iso);
    if (!ms) return 0;
    const fraction = /\.(\d+)/.exec(iso);
    return ms * 1000 + (fraction ? Number(fraction[1].slice(3, 6).padEnd(3, '0')) : 0);
  }

  function turnOfMessage(message) {
    return microsOf(message && (message.turn_at || message.created_at));
  }

  // A run's turn: its user message's (run frames and snapshot.runs name it), or that of a
  // message it wrote (every message of a turn carries the turn's turn_at).
  function turnOfRun(runId) {
    const id = String(runId || '');
    if (!state.runTurns.has(id)) {
      const run = state.runs.get(id);
      const asked = run && run.user_message_id ? state.messages.get(String(run.user_message_id)) : null;
      const turn = turnOfMessage(asked);
      if (turn) state.runTurns.set(id, turn);
    }
    return state.runTurns.get(id) || 0;
  }

  function setTurn(node, turn) {
    if (turn) node.dataset.turn = String(turn);
  }

  // Insert an item after the last item of its turn or an earlier one, before the items of
  // later turns. With `createdAt` (a snapshot's approval), also before the items of its own
  // turn created after it or still being written. An item of an unknown turn goes last.
  function placeItem(node, createdAt = 0) {
    const turn = Number(node.dataset.turn || 0);
    if (!turn) {
      el.messages.append(node);
      return;
    }
    for (let item = el.messages.lastElementChild; item; item = item.previousElementSibling) {
      const itemTurn = Number(item.dataset.turn || 0);
      if (item === node || !itemTurn || itemTurn > turn) continue;
      if (itemTurn < turn || !createdAt || !writtenAfter(item, createdAt)) {
        item.after(node);
        return;
      }
    }
    el.messages.prepend(node);
  }

  function writtenAfter(item, createdAt) {
    let created = 0;
    if (item.classList.contains('message')) created = microsOf(state.messages.get(item.dataset.messageId || '')?.created_at);
    else if (item.classList.contains('approval-card')) created = microsOf(state.approvals.get(item.dataset.approvalId || '')?.created_at);
    return !created || created > createdAt;
  }

  /* -------------------------------------------------------------------- runs */

  function forgetRuns() {
    state.runs.clear();
    state.runTurns.clear();
    state.latestRuns.clear();
    state.lastReplies.clear();
    state.retrying = '';
  }

  function learnRun(run) {
    const id = String(run.id);
    const known = { ...run, id };
    state.runs.set(id, known);
    const asked = run.user_message_id ? String(run.user_message_id) : '';
    const latest = asked ? state.latestRuns.get(asked) : null;
    if (asked && (!latest || latest.id === id || microsOf(latest.created_at) <= microsOf(run.created_at))) {
      state.latestRuns.set(asked, known);
    }
  }

  // A run queued behind the active one does not take its place: the page goes on showing
  // (and Stop goes on stopping) the run that is being written or waits for approval.
  function queuedBehindActive(run) {
    return run.status === 'queued' && !!state.activeRun && state.activeRun.id !== String(run.id);
  }

  // The snapshot's runs (and its active run) are known before its messages are built.
  // A run.retry is answered by a snapshot, and a new socket's frame may be lost: either way
  // it is not waited for any more.
  function learnSnapshotRuns(frame) {
    forgetRuns();
    for (const run of Array.isArray(frame.runs) ? frame.runs : []) if (run && run.id !== undefined) learnRun(run);
    if (frame.run && frame.run.id !== undefined) learnRun(frame.run);
    clearNotice('retry-failed');
  }

  // What a message says of its turn and run: called by upsertMessage before building it.
  function learnMessage(message) {
    if (!message.run_id) return;
    const runId = String(message.run_id);
    if (message.turn_at) state.runTurns.set(runId, microsOf(message.turn_at));
    if (message.role !== 'assistant') return;
    const id = String(message.id);
    const before = state.lastReplies.get(runId);
    const shown = before ? state.messages.get(before) : null;
    if (before !== id && shown && microsOf(shown.created_at) > microsOf(message.created_at)) return;
    state.lastReplies.set(runId, id);
    // The run's model and usage go on its last reply only.
    if (before && before !== id) state.messageEls.get(before)?.querySelector('.reply-usage')?.remove();
  }

  // A run changed: its user message's Queued mark, its last reply's model and usage, Retry.
  function showRunChange(runId) {
    const run = state.runs.get(runId);
    if (!run) return;
    const asked = run.user_message_id ? state.messageEls.get(String(run.user_message_id)) : null;
    if (asked && asked.isConnected) showQueued(asked, String(run.user_message_id));
    const reply = state.messageEls.get(state.lastReplies.get(runId) || '');
    if (reply && reply.isConnected && reply.dataset.streaming !== 'true') showRunDetails(reply, run);
    refreshFailureNotices();
  }

  /* ------------------------------------------- what a message shows besides its text */

  const INCOMPLETE_NOTES = {
    length: 'Cut off: the reply reached the output limit.',
    filtered: "Stopped by the model server's content filter.",
    error: 'Incomplete: the model server failed while writing this reply.',
  };

  // A hook of buildMessage: the message's turn, its thinking, why it is incomplete, a user
  // message's place in the queue, and on its run's last reply the run's model and usage.
  function decorateMessage(node, message, body) {
    setTurn(node, turnOfMessage(message));
    const id = String(message.id);
    if (typeof message.reasoning === 'string' && message.reasoning) {
      body.before(buildThinking(message.reasoning, { streaming: false }));
      delete node.dataset.empty;
    }
    const note = INCOMPLETE_NOTES[message.incomplete];
    if (note) {
      node.dataset.incomplete = message.incomplete;
      insertBeforeActions(node, make('div', 'message-note incomplete-note', note));
      delete node.dataset.empty; // a reply cut off before any text still says so
    }
    if (message.role === 'user') showQueued(node, id);
    const runId = message.run_id ? String(message.run_id) : '';
    if (message.role === 'assistant' && runId && state.lastReplies.get(runId) === id) {
      showRunDetails(node, state.runs.get(runId));
    }
  }

  // Notes go under the text, above the message's buttons and its error line.
  function insertBeforeActions(node, child) {
    node.insertBefore(child, node.querySelector(':scope > .message-actions, :scope > .message-error'));
  }

  // A reply's thinking: collapsed, plain text, "Thinking…" while it is written.
  function buildThinking(text, { streaming }) {
    const details = make('details', 'thinking');
    details.append(make('summary', 'thinking-summary', streaming ? 'Thinking…' : 'Thought'));
    details.append(make('div', 'thinking-text', text));
    if (streaming) details.dataset.streaming = 'true';
    return details;
  }

  function thinkingTextOf(node) {
    let details = node.querySelector(':scope > .thinking');
    if (!details) {
      details = buildThinking('', { streaming: true });
      node.querySelector(':scope > .message-body').before(details);
    }
    return details.querySelector('.thinking-text');
  }

  function settleThinking(node) {
    const details = node.querySelector(':scope > .thinking[data-streaming="true"]');
    if (!details) return;
    delete details.dataset.streaming;
    details.querySelector('.thinking-summary').textContent = 'Thought';
  }

  // A reply rebuilt (once stored) keeps its thinking open if the user opened it, and the
  // focus on its summary; called just before `old` is replaced by `fresh`.
  function keepThinkingOpen(old, fresh) {
    const details = fresh.querySelector(':scope > .thinking');
    const before = old.querySelector(':scope > .thinking');
    if (!details || !before) return;
    details.open = before.open;
    if (before.contains(document.activeElement)) {
      queueMicrotask(() => details.querySelector('summary').focus({ preventScroll: true }));
    }
  }

  // A token's text: of the reply's thinking (part "reasoning"), or of its answer.
  function appendDelta(node, frame) {
    const text = document.createTextNode(frame.delta);
    if (frame.part === 'reasoning') {
      thinkingTextOf(node).append(text);
      return;
    }
    settleThinking(node); // the answer has begun
    node.querySelector(':scope > .message-body').append(text);
  }

  // "Queued" on a user message whose reply waits for the turn ahead of it.
  function showQueued(node, messageId) {
    const queued = state.latestRuns.get(messageId)?.status === 'queued';
    const mark = node.querySelector(':scope > .queued-note');
    if (queued && !mark) insertBeforeActions(node, make('div', 'message-note queued-note', 'Queued'));
    if (!queued && mark) mark.remove();
    if (queued) node.dataset.queued = 'true';
    else delete node.dataset.queued;
  }

  // "openai:gpt-4.1-mini · 1,234 input · 56 output · 12 reasoning tokens": an ended run's
  // model and token totals; '' while it runs or when neither is known.
  function describeRun(run) {
    if (!run || OPEN_RUN.has(run.status)) return '';
    const parts = run.model ? [String(run.model)] : [];
    const usage = run.usage;
    if (usage) {
      const count = (n) => Number(n || 0).toLocaleString('en-US');
      const tokens = [`${count(usage.input_tokens)} input`, `${count(usage.output_tokens)} output`];
      if (usage.reasoning_tokens) tokens.push(`${count(usage.reasoning_tokens)} reasoning`);
      parts.push(...tokens.slice(0, -1), `${tokens[tokens.length - 1]} tokens`);
    }
    return parts.join(' · ');
  }

  // Quiet until the reply is hovered or holds the focus (chat.css).
  function showRunDetails(node, run) {
    node.querySelector('.reply-usage')?.remove();
    const text = describeRun(run);
    if (!text) return;
    let actions = node.querySelector(':scope > .message-actions');
    if (!actions) {
      actions = make('div', 'message-actions');
      node.insertBefore(actions, node.querySelector(':scope > .message-error'));
    }
    actions.append(make('span', 'reply-usage', text));
  }

  /* ------------------------------------------------------- a failed run: Retry */

  function lastUserMessageId() {
    let last = null;
    for (const m of state.messages.values()) {
      if (m.role === 'user' && (!last || turnOfMessage(m) >= turnOfMessage(last))) last = m;
    }
    return last ? String(last.id) : '';
  }

  // "The reply failed: <the run's error, a sentence for the user>", with Retry (below).
  function showRunFailure(runId) {
    const run = state.runs.get(runId);
    if (!run) return;
    const notice = showNotice(run.error ? `The reply failed: ${run.error}` : 'The reply failed.', { key: `run-${runId}` });
    notice.dataset.runId = runId;
    if (!notice.querySelector('.retry-btn')) {
      const retry = button('btn btn-small retry-btn', 'Retry');
      retry.addEventListener('click', () => retryRun(runId));
      notice.querySelector('.notice-dismiss').before(retry);
    }
    refreshFailureNotices();
  }

  // After a reload: the last turn's latest run failed.
  function showLastTurnFailure() {
    const run = state.latestRuns.get(lastUserMessageId());
    if (run && run.status === 'failed') showRunFailure(run.id);
    refreshFailureNotices();
  }

  // Retry is offered while the failed run is the latest of the last turn and nothing runs;
  // a failure answered again (a retry, from any tab) is no news any more.
  function refreshFailureNotices() {
    const idle = !(state.activeRun && OPEN_RUN.has(state.activeRun.status));
    const lastAsked = lastUserMessageId();
    for (const notice of el.notices.querySelectorAll('.notice[data-run-id]')) {
      const run = state.runs.get(notice.dataset.runId);
      const latest = run ? state.latestRuns.get(String(run.user_message_id)) : null;
      if (latest && latest.id !== run.id) {
        if (notice.contains(document.activeElement)) el.composer.focus();
        notice.remove();
        continue;
      }
      const retry = notice.querySelector('.retry-btn');
      if (!retry) continue;
      retry.hidden = !(run && idle && run.status === 'failed' && String(run.user_message_id) === lastAsked);
      retry.disabled = !!state.retrying;
      retry.textContent = state.retrying === notice.dataset.runId ? 'Retrying…' : 'Retry';
    }
  }

  function retryRun(runId) {
    if (state.retrying) return;
    clearNotice('retry-failed');
    if (!state.synced || !sendFrame({ type: 'run.retry', run_id: runId, client_id: uuid() })) {
      showNotice('Could not retry: not connected. Try again when the connection is back.', { key: 'retry-failed' });
      return;
    }
    state.retrying = runId;
    refreshFailureNotices();
  }

  // An `error` answered the run.retry (conflict: a run is active; bad_request: not the last turn).
  function retryRefused(text) {
    state.retrying = '';
    showNotice(`Could not retry: ${text}`, { key: 'retry-failed' });
    refreshFailureNotices();
  }

  /* --------------------------------------------------------------- run state */

  function runIsActive() {
    return !!(state.activeRun && ACTIVE_RUN.has(state.activeRun.status));
  }

  function applyRun(run) {
    if (!run || run.id === undefined) return;
    const id = String(run.id);
    learnRun(run);
    if (OPEN_RUN.has(run.status)) {
      if (!queuedBehindActive(run)) state.activeRun = { ...run, id };
    } else {
      if (!state.activeRun || state.activeRun.id === id) state.activeRun = null;
      if (state.cancelling === id) state.cancelling = null;
      if (run.status === 'failed') {
        showRunFailure(id);
        finishStreaming(id);
      } else if (run.status === 'cancelled') {
        finishStreaming(id);
      }
    }
    updateControls();
    syncSidebarStatus();
    showRunChange(id);
  }

  function cancelRun() {
    if (!runIsActive()) return;
    const runId = state.activeRun.id;
    const sent = sendFrame({ type: 'run.cancel', run_id: runId });
    if (!sent) {
      showNotice('Not connected. The run could not be stopped right now.', { key: 'cancel-offline' });
      return;
    }
    state.cancelling = runId;
    updateControls();
  }

  function updateTyping() {
    const streaming = !!el.messages.querySelector('.message[data-streaming="true"]');
    const waiting = !!(state.activeRun && state.activeRun.status === 'waiting');
    el.typing.hidden = !(runIsActive() && !streaming) || waiting;
    if (el.waiting) el.waiting.hidden = !waiting;
  }

  /* ------------------------------------------------------------- composer UI */

  function composerContent() {
    return el.composer.value.trim();
  }

  function updateComposerState() {
    const content = composerContent();
    const count = charCount(content);
    const over = count > MAX_CHARS;
    if (count >= COUNTER_FROM) {
      el.counter.hidden = false;
      el.counter.textContent = `${count.toLocaleString('en-US')} / ${MAX_CHARS.toLocaleString('en-US')}`;
      el.counter.dataset.over = over ? 'true' : 'false';
    } else {
      el.counter.hidden = true;
      el.counter.textContent = '';
      delete el.counter.dataset.over;
    }
    el.composer.setAttribute('aria-invalid', over ? 'true' : 'false');
    el.send.disabled = !content || over || state.notFound || state.creating;
  }

  function autosize() {
    // Prefer CSS `field-sizing: content`; fall back to measuring (CSSOM, CSP-safe).
    if (CSS.supports && CSS.supports('field-sizing', 'content')) return;
    el.composer.style.height = 'auto';
    el.composer.style.height = `${el.composer.scrollHeight + 2}px`;
  }

  function updateControls() {
    const running = runIsActive();
    const focusWasSend = document.activeElement === el.send;
    const focusWasStop = document.activeElement === el.stop;
    el.send.hidden = running;
    el.stop.hidden = !running;
    el.stop.disabled = !!(running && state.cancelling === state.activeRun.id);
    if (running && focusWasSend) el.stop.focus();
    if (!running && focusWasStop) el.composer.focus();
    el.app.dataset.runStatus = state.activeRun ? state.activeRun.status : '';
    el.composer.disabled = state.notFound;
    updateComposerState();
    updateTyping();
    updateBranchControls();
  }

  function submitComposer() {
    const content = composerContent();
    if (!content || state.notFound || state.creating) return;
    if (runIsActive()) return;
    if (charCount(content) > MAX_CHARS) {
      showNotice(`Your message is too long: the limit is ${MAX_CHARS.toLocaleString('en-US')} characters.`, { key: 'too-long' });
      return;
    }
    const frame = JSON.stringify({ type: 'message.send', content, client_id: uuid() });
    if (new TextEncoder().encode(frame).length > MAX_FRAME_BYTES) {
      showNotice('Your message is too large to send (64 KiB limit). Please shorten it.', { key: 'too-long' });
      return;
    }
    clearNotice('too-long');
    el.composer.value = '';
    autosize();
    updateComposerState();
    state.stick = true;
    if (!state.conversationId) {
      createAndSend(content);
    } else {
      enqueue(state.conversationId, content);
    }
  }

  async function createAndSend(content) {
    state.creating = true;
    updateComposerState();
    let conv;
    try {
      const model = state.newChatModel ? { model: state.newChatModel } : {};
      conv = await api('POST', '/api/conversations/', { title: titleFromMessage(content), ...model });
    } catch (err) {
      state.creating = false;
      if (!el.composer.value) {
        el.composer.value = content;
        autosize();
      }
      updateComposerState();
      if (err.status !== 401) showNotice(`Could not start a conversation: ${err.message}`, { key: 'create-failed' });
      return;
    }
    state.creating = false;
    clearNotice('create-failed');
    upsertConversation(conv, { toTop: true });
    navigate(String(conv.id));
    enqueue(String(conv.id), content);
    el.composer.focus();
  }

  /* ------------------------------------------------------------------ outbox */

  // The user messages with this text shown now: a snapshot's other one is the one sent.
  function userMessageIds(content) {
    const ids = new Set();
    for (const [id, m] of state.messages) if (m.role === 'user' && sameContent(m.content, content)) ids.add(id);
    return ids;
  }

  function sameContent(a, b) {
    return typeof a === 'string' && typeof b === 'string' && (a === b || a.trim() === b.trim());
  }

  function enqueue(convId, content) {
    state.outbox.push({
      convId,
      content,
      clientId: uuid(),
      sentCount: 0,
      knownIds: convId === state.conversationId ? userMessageIds(content) : new Set(),
      sentOn: null,
    });
    flushOutbox();
    renderOutbox();
    scheduleScroll(true);
  }

  function flushOutbox() {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || !state.synced) return;
    for (const entry of state.outbox) {
      if (entry.convId !== state.conversationId || entry.sentOn === ws) continue;
      ws.send(JSON.stringify({ type: 'message.send', content: entry.content, client_id: entry.clientId }));
      state.lastSent = { type: 'message.send' };
      entry.sentOn = ws;
      entry.sentCount += 1;
    }
    renderOutbox();
  }

  function ackOutbox(content) {
    const i = state.outbox.findIndex((e) => e.convId === state.conversationId && sameContent(e.content, content));
    if (i >= 0) {
      state.outbox.splice(i, 1);
      renderOutbox();
    }
  }

  function ackOutboxFromSnapshot(messages) {
    const consumed = new Set();
    state.outbox = state.outbox.filter((entry) => {
      if (entry.convId !== state.conversationId || entry.sentCount === 0) return true;
      const stored = messages.find((m) => m && m.role === 'user' && sameContent(m.content, entry.content)
        && !entry.knownIds.has(String(m.id)) && !consumed.has(String(m.id)));
      if (!stored) return true;
      consumed.add(String(stored.id));
      return false;
    });
  }

  function renderOutbox() {
    el.outbox.replaceChildren();
    const connected = state.ws && state.ws.readyState === WebSocket.OPEN && state.synced;
    for (const entry of state.outbox) {
      if (entry.convId !== state.conversationId) continue;
      const item = make('div', 'outbox-item');
      item.dataset.clientId = entry.clientId;
      const inFlight = connected && entry.sentOn === state.ws;
      item.dataset.state = inFlight ? 'sending' : 'queued';
      item.append(make('div', 'outbox-text', entry.content));
      item.append(make('div', 'outbox-state', inFlight ? 'Sending…' : 'Waiting for connection… it will be sent automatically.'));
      el.outbox.append(item);
    }
  }

  /* ---------------------------------------------------------------- scrolling */

  let scrollQueued = false;

  function nearBottom() {
    const s = el.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
  }

  function scheduleScroll(force) {
    if (force) state.stick = true;
    if (scrollQueued) return;
    scrollQueued = true;
    requestAnimationFrame(() => {
      scrollQueued = false;
      if (state.stick) el.scroller.scrollTop = el.scroller.scrollHeight;
      el.scrollBottom.hidden = state.stick || nearBottom();
    });
  }

  /* ------------------------------------------------------------ connection */

  const STATUS_TEXT = { connecting: 'Connecting…', online: 'Online', offline: 'Offline' };

  function setConnection(stateName, text) {
    el.status.dataset.state = stateName;
    el.status.textContent = text || STATUS_TEXT[stateName];
    el.app.dataset.connection = stateName;
  }

  function socketUrl(id) {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${proto}//${location.host}/ws/conversations/${encodeURIComponent(id)}/`;
  }

  function sendFrame(obj) {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(obj));
    state.lastSent = { type: obj.type };
    return true;
  }

  function clearTimers() {
    if (state.reconnectTimer) clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    if (state.pingTimer) clearInterval(state.pingTimer);
    state.pingTimer = null;
  }

  function teardownSocket() {
    clearTimers();
    const ws = state.ws;
    state.ws = null;
    state.synced = false;
    state.lastSeq = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(1000, 'closing');
      } catch (_) {
        /* already closed */
      }
    }
  }

  function connect() {
    teardownSocket();
    const id = state.conversationId;
    if (!id || state.notFound) return;
    if (!navigator.onLine) {
      setConnection('offline');
      showNotice('You are offline. Messages will be sent when the connection is back.', { kind: 'info', key: 'offline', global: true });
      renderOutbox();
      return;
    }
    setConnection('connecting');
    let ws;
    try {
      ws = new WebSocket(socketUrl(id));
    } catch (_) {
      scheduleReconnect();
      return;
    }
    state.ws = ws;
    state.wsOpened = false;
    ws.onopen = () => {
      if (ws !== state.ws) return;
      state.wsOpened = true;
      state.lastFrameAt = Date.now();
      state.pingTimer = setInterval(ping, PING_MS);
    };
    ws.onmessage = (event) => {
      if (ws !== state.ws) return;
      state.lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      try {
        onFrame(frame);
      } catch (err) {
        // A bad frame must not kill the page; resync from a fresh snapshot.
        console.error('chat: could not apply frame', frame, err);
      }
    };
    ws.onerror = () => {
      /* onclose follows */
    };
    ws.onclose = (event) => {
      if (ws !== state.ws) return;
      const opened = state.wsOpened;
      state.ws = null;
      state.synced = false;
      clearTimers();
      renderOutbox();
      onSocketClosed(event.code, opened, id);
    };
  }

  function ping() {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - state.lastFrameAt > STALE_MS) {
      // No frame (not even a pong) for too long: the connection is dead.
      connect();
      return;
    }
    ws.send(JSON.stringify({ type: 'ping' }));
  }

  function onSocketClosed(code, opened, id) {
    if (id !== state.conversationId) return;
    if (code === 4401) {
      setConnection('offline');
      goToLogin();
      return;
    }
    if (code === 4404) {
      markNotFound();
      return;
    }
    if (!navigator.onLine) {
      setConnection('offline');
      showNotice('You are offline. Messages will be sent when the connection is back.', { kind: 'info', key: 'offline', global: true });
      return;
    }
    setConnection('offline', 'Offline, reconnecting…');
    if (!opened) {
      // A refused handshake carries no close code: ask over HTTP why.
      probeConversation(id);
    }
    scheduleReconnect();
  }

  async function probeConversation(id) {
    try {
      const res = await fetch(`/api/conversations/${encodeURIComponent(id)}/messages/?limit=1`, {
        credentials: 'same-origin',
        headers: { Accept: 'application/json' },
      });
      if (id !== state.conversationId) return;
      if (res.status === 401) goToLogin();
      else if (res.status === 404) markNotFound();
    } catch (_) {
      /* network trouble: the backoff handles it */
    }
  }

  function scheduleReconnect() {
    if (state.reconnectTimer || state.notFound || !state.conversationId) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** state.attempts);
    const delay = base / 2 + Math.random() * (base / 2);
    state.attempts += 1;
    state.reconnectTimer = setTimeout(() => {
      state.reconnectTimer = null;
      connect();
    }, delay);
  }

  function markNotFound() {
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

  /* ------------------------------------------------------------------ frames */

  function onFrame(frame) {
    if (!frame || typeof frame !== 'object') return;
    if (frame.type === 'snapshot') {
      applySnapshot(frame);
      return;
    }
    if (typeof frame.seq === 'number') {
      if (!state.synced) return; // a snapshot comes first
      if (state.lastSeq !== null) {
        if (frame.seq <= state.lastSeq) return;
        if (frame.seq > state.lastSeq + 1) {
          connect(); // a gap: fetch a fresh snapshot
          return;
        }
      }
      state.lastSeq = frame.seq;
    }
    switch (frame.type) {
      case 'message':
        onMessageFrame(frame.message);
        break;
      case 'token':
        appendToken(frame);
        break;
      case 'run':
        applyRun(frame.run);
        break;
      case 'approval':
        upsertApproval(frame.approval);
        notifyApprovalsChanged();
        break;
      case 'tool':
        upsertTool(frame);
        break;
      case 'conversation':
        if (frame.conversation) applyConversation(frame.conversation);
        break;
      case 'error':
        onErrorFrame(frame);
        break;
      case 'pong':
      default:
        break;
    }
  }

  function applySnapshot(frame) {
    state.synced = true;
    state.lastSeq = typeof frame.seq === 'number' ? frame.seq : null;
    state.attempts = 0;
    setConnection('online');
    clearNotice('offline');
    clearNotice('not-found');

    if (frame.conversation) applyConversation(frame.conversation);

    // Keep the approval cards (an open edit form, a typed comment) and the focus across a resync.
    const focused = el.messages.contains(document.activeElement) ? document.activeElement : null;
    const keep = new Map();
    for (const card of el.messages.querySelectorAll('.approval-card')) keep.set(card.dataset.approvalId, card);
    const known = Array.from(state.approvals.values());
    resetDecisions();
    const messages = Array.isArray(frame.messages) ? frame.messages : [];
    const editorFocus = focused && focused.classList.contains('edit-input')
      ? { start: focused.selectionStart, end: focused.selectionEnd } : null;

    state.snapshotGen += 1;
    state.branchId = frame.branch_id === undefined || frame.branch_id === null ? null : String(frame.branch_id);
    // The run is known before the messages are built, so their controls start right.
    state.activeRun = frame.run && OPEN_RUN.has(frame.run.status) ? { ...frame.run, id: String(frame.run.id) } : null;
    learnSnapshotRuns(frame);
    const branchDone = branchSnapshotStart(messages);

    state.messages.clear();
    state.messageEls.clear();
    state.approvals.clear();
    el.messages.replaceChildren();
    setOlderCursor(frame);
    for (const m of messages) {
      // A reply still being written: its text so far, then the live tokens append to it.
      if (m && m.streaming) {
        appendToken({ message_id: m.id, run_id: m.run_id, part: 'reasoning', delta: m.reasoning });
        appendToken({ message_id: m.id, run_id: m.run_id, delta: m.content });
      } else {
        upsertMessage(m);
      }
    }
    // approval_history holds the approvals created since the first message shown, decided ones too.
    const listedApprovals = Array.isArray(frame.approval_history) ? frame.approval_history
      : Array.isArray(frame.approvals) ? frame.approvals : [];
    const listed = new Set(listedApprovals.map((a) => String(a && a.id)));
    // Those known from older pages come again with them, not above the snapshot's first message.
    const since = state.olderCursor && messages.length ? timeOf(messages[0].created_at) : 0;
    const approvals = known.filter((a) => !listed.has(String(a.id)) && timeOf(a.created_at) >= since)
      .concat(listedApprovals);
    approvals.sort((a, b) => timeOf(a && a.created_at) - timeOf(b && b.created_at));
    state.reuseCards = keep;
    try {
      for (const a of approvals) upsertApproval(a, { place: 'time' });
    } finally {
      state.reuseCards = null;
    }
    if (focused && focused.isConnected && document.activeElement !== focused) focused.focus({ preventScroll: true });
    if (editorFocus && state.editing) {
      // The open editor was rebuilt: give it the focus and the caret back.
      const input = state.messageEls.get(state.editing.messageId)?.querySelector('.edit-input');
      if (input) {
        input.focus({ preventScroll: true });
        try {
          input.setSelectionRange(editorFocus.start, editorFocus.end);
        } catch (_) {
          /* not a text field any more */
        }
      }
    }

    if (!state.activeRun) state.cancelling = null;
    updateControls();
    syncSidebarStatus();

    ackOutboxFromSnapshot(messages);
    flushOutbox();
    renderOutbox();
    updateEmptyState();
    scheduleScroll(true);
    const active = document.activeElement;
    branchSnapshotEnd(branchDone, () => !active || active === document.body || !active.isConnected);
    showLastTurnFailure();
    revealHashedApproval();
    notifyApprovalsChanged();
  }

  function onMessageFrame(message) {
    if (!message) return;
    upsertMessage(message);
    if (message.role === 'user') ackOutbox(message.content);
    const conv = findConversation(state.conversationId);
    if (conv) {
      const t = message.created_at || new Date().toISOString();
      if (timeOf(t) > timeOf(conv.updated_at)) conv.updated_at = t;
      renderSidebar();
    }
    updateEmptyState();
    scheduleScroll();
  }

  function onErrorFrame(frame) {
    const text = typeof frame.message === 'string' && frame.message ? frame.message : `Error: ${frame.code || 'unknown'}`;
    // A refused decision: say so on its card, where the user is looking.
    const last = state.lastSent;
    if (last && last.type === 'approval.decide' && state.deciding.has(last.approvalId)) {
      state.lastSent = null;
      failDecision(last.approvalId, text);
      return;
    }
    if (last && last.type === 'run.retry' && state.retrying) {
      state.lastSent = null;
      retryRefused(text);
      return;
    }
    // A refused edit, regenerate or switch: say so at the message, keep an open editor's text.
    if (last && BRANCH_FRAMES.has(last.type) && state.branchPending) {
      const { messageId } = state.branchPending;
      state.lastSent = null;
      clearBranchPending();
      updateBranchControls();
      messageError(messageId, text);
      return;
    }
    showNotice(text, { kind: 'error' });
    // A refused message.send: give the text back instead of retrying forever.
    if (['bad_request', 'too_large', 'rate_limited', 'conflict'].includes(frame.code)) {
      const i = state.outbox.findIndex((e) => e.convId === state.conversationId && e.sentOn === state.ws && state.ws);
      if (i >= 0) {
        const [entry] = state.outbox.splice(i, 1);
        if (!el.composer.value.trim()) {
          el.composer.value = entry.content;
          autosize();
          updateComposerState();
        }
        renderOutbox();
      }
    }
    // Re-enable decisions that may have been refused.
    resetDecisions();
    if (state.cancelling) {
      state.cancelling = null;
      updateControls();
    }
  }

  function applyConversation(conv) {
    if (!conv || String(conv.id) !== state.conversationId) {
      if (conv) upsertConversation(conv);
      return;
    }
    state.conversation = conv;
    el.title.textContent = displayTitle(conv);
    document.title = `${displayTitle(conv)} · ${APP_NAME}`;
    upsertConversation(conv, { onlyIfListed: !!state.query });
    syncModel();
  }

  /* ------------------------------------------------------------------ sidebar */

  function findConversation(id) {
    return state.conversations.find((c) => String(c.id) === String(id));
  }

  function upsertConversation(conv, { toTop = false, onlyIfListed = false } = {}) {
    if (!conv || conv.id === undefined) return;
    const id = String(conv.id);
    const existing = findConversation(id);
    if (existing) {
      Object.assign(existing, conv, { id });
    } else if (!onlyIfListed) {
      const copy = { ...conv, id };
      if (toTop) state.conversations.unshift(copy);
      else state.conversations.push(copy);
    }
    renderSidebar();
  }

  function syncSidebarStatus() {
    if (!state.synced) return; // the list's own values stand until the snapshot
    const conv = findConversation(state.conversationId);
    if (!conv) return;
    conv.run_status = state.activeRun ? state.activeRun.status : null;
    let pending = 0;
    for (const a of state.approvals.values()) if ((a.status || 'pending') === 'pending') pending += 1;
    conv.pending_approvals = pending;
    renderSidebar();
  }

  function groupOf(iso, now) {
    const t = timeOf(iso);
    const startToday = new Date(now.getFullYear(), now.getMonth(), now.getDate()).getTime();
    const day = 24 * 60 * 60 * 1000;
    if (t >= startToday) return 'today';
    if (t >= startToday - day) return 'yesterday';
    if (t >= startToday - 7 * day) return 'week';
    return 'older';
  }

  const GROUPS = [
    ['today', 'Today'],
    ['yesterday', 'Yesterday'],
    ['week', 'Previous 7 days'],
    ['older', 'Older'],
  ];

  function statusOf(conv) {
    if (conv.run_status === 'waiting' || (conv.pending_approvals || 0) > 0) return 'waiting';
    if (ACTIVE_RUN.has(conv.run_status)) return 'running';
    return '';
  }

  function renderSidebar() {
    if (state.renamingId) {
      state.sidebarDirty = true;
      return;
    }
    state.sidebarDirty = false;
    const hadFocus = el.groups.contains(document.activeElement) ? describeFocus(document.activeElement) : null;

    const sorted = state.conversations
      .map((c, i) => [c, i])
      .sort((a, b) => timeOf(b[0].updated_at) - timeOf(a[0].updated_at) || a[1] - b[1])
      .map(([c]) => c);
    const now = new Date();
    const buckets = new Map(GROUPS.map(([key]) => [key, []]));
    for (const c of sorted) buckets.get(groupOf(c.updated_at, now)).push(c);

    const sections = [];
    for (const [key, label] of GROUPS) {
      const items = buckets.get(key);
      if (!items.length) continue;
      const group = groupElements(key, label);
      setChildren(group.list, items.map(itemElement));
      sections.push(group.section);
    }
    setChildren(el.groups, sections);
    const listed = new Set(state.conversations.map((c) => String(c.id)));
    for (const id of drawnItems.keys()) if (!listed.has(id)) drawnItems.delete(id);

    if (!state.conversations.length && state.listLoaded) {
      el.listEmpty.hidden = false;
      el.listEmpty.textContent = state.query ? 'No conversations match your search.' : 'No conversations yet. Send a message to start one.';
    } else {
      el.listEmpty.hidden = true;
    }
    el.loadMore.hidden = !state.nextCursor;
    if (hadFocus) restoreFocus(hadFocus);
  }

  // The sidebar's elements as last drawn. A conversation that looks as it did keeps its
  // element, so a frame about one conversation redraws only that one, and the keyboard
  // focus, hover and a screen reader's place elsewhere in the list are left alone.
  const drawnItems = new Map(); // conversation id -> { look, li }
  const drawnGroups = new Map(); // group key -> { section, list }

  function itemElement(conv) {
    const id = String(conv.id);
    const look = JSON.stringify([statusOf(conv), conv.run_status || '', id === state.conversationId, displayTitle(conv)]);
    const drawn = drawnItems.get(id);
    if (drawn && drawn.look === look) return drawn.li;
    const li = buildItem(conv);
    drawnItems.set(id, { look, li });
    return li;
  }

  function groupElements(key, label) {
    let group = drawnGroups.get(key);
    if (!group) {
      const section = make('section', 'conversation-group');
      section.dataset.group = key;
      const heading = make('h2', 'conversation-group-title', label);
      heading.id = `group-${key}`;
      const list = make('ul', 'conversation-items');
      list.setAttribute('aria-labelledby', heading.id);
      section.append(heading, list);
      group = { section, list };
      drawnGroups.set(key, group);
    }
    return group;
  }

  // Makes nodes the children of parent, in order, moving only what has to move.
  function setChildren(parent, nodes) {
    const wanted = new Set(nodes);
    for (const child of [...parent.children]) if (!wanted.has(child)) child.remove();
    nodes.forEach((node, i) => {
      const here = parent.children[i];
      if (here !== node) parent.insertBefore(node, here || null);
    });
  }

  function describeFocus(node) {
    const item = node.closest('.conversation-item');
    if (!item) return null;
    const cls = ['conversation-link', 'rename-conversation', 'delete-conversation'].find((c) => node.classList.contains(c));
    return { id: item.dataset.conversationId, cls };
  }

  function restoreFocus(desc) {
    const item = el.groups.querySelector(`.conversation-item[data-conversation-id="${CSS.escape(desc.id)}"]`);
    const target = item && desc.cls ? item.querySelector(`.${desc.cls}`) : null;
    if (target) target.focus();
  }

  function buildItem(conv) {
    const id = String(conv.id);
    const li = make('li', 'conversation-item');
    li.dataset.conversationId = id;
    const status = statusOf(conv);
    li.dataset.runStatus = conv.run_status || '';
    if (status) li.dataset.status = status;
    const active = id === state.conversationId;
    if (active) li.classList.add('active');

    if (state.renamingId === id) {
      const label = make('label', 'visually-hidden', 'Conversation title');
      const input = make('input', 'rename-input');
      input.type = 'text';
      input.id = `rename-${id}`;
      label.htmlFor = input.id;
      input.value = conv.title || '';
      input.maxLength = 200;
      input.dataset.conversationId = id;
      li.append(label, input);
      return li;
    }

    const link = make('a', 'conversation-link');
    link.href = conversationPath(id);
    if (active) link.setAttribute('aria-current', 'page');
    link.append(make('span', 'conversation-title', displayTitle(conv)));
    if (status) {
      const s = make('span', 'conversation-status', status === 'running' ? 'Running' : 'Waiting');
      s.dataset.status = status;
      link.append(s);
    }
    li.append(link);

    const actions = make('div', 'conversation-actions');
    const rename = button('icon-btn rename-conversation', `Rename “${displayTitle(conv)}”`, { ariaOnly: true });
    rename.append(make('span', 'icon icon-rename'));
    const del = button('icon-btn delete-conversation', `Delete “${displayTitle(conv)}”`, { ariaOnly: true });
    del.append(make('span', 'icon icon-delete'));
    actions.append(rename, del);
    li.append(actions);
    return li;
  }

  function listUrl(cursor) {
    if (cursor && (cursor.startsWith('/') || /^https?:/.test(cursor))) return cursor;
    const params = new URLSearchParams();
    params.set('q', state.query);
    if (cursor) params.set('cursor', cursor);
    return `/api/conversations/?${params.toString()}`;
  }

  async function loadConversations({ reset }) {
    if (!reset && (state.loadingMore || !state.nextCursor)) return;
    const req = ++state.listRequest;
    if (reset) state.loadingMore = false;
    else state.loadingMore = true;
    el.list.setAttribute('aria-busy', 'true');
    el.loadMore.disabled = true;
    try {
      const data = await api('GET', listUrl(reset ? null : state.nextCursor));
      if (req !== state.listRequest) return;
      const results = data && Array.isArray(data.results) ? data.results : [];
      if (reset) state.conversations = [];
      for (const c of results) {
        const id = String(c.id);
        const existing = findConversation(id);
        if (existing) Object.assign(existing, c, { id });
        else state.conversations.push({ ...c, id });
      }
      state.nextCursor = data && data.next ? String(data.next) : null;
      state.listLoaded = true;
      clearNotice('list-failed');
      if (!state.query && state.conversationId && state.conversation && !findConversation(state.conversationId)) {
        state.conversations.unshift({ ...state.conversation, id: state.conversationId });
      }
      syncSidebarStatus();
      renderSidebar();
    } catch (err) {
      if (req !== state.listRequest) return;
      if (err.status !== 401) showNotice(`Could not load conversations: ${err.message}`, { key: 'list-failed', global: true });
    } finally {
      if (req === state.listRequest) {
        state.loadingMore = false;
        el.list.setAttribute('aria-busy', 'false');
        el.loadMore.disabled = false;
      }
    }
  }

  function startRename(id) {
    if (state.renamingId && state.renamingId !== id) return;
    state.renamingId = null;
    renderSidebar();
    state.renamingId = id;
    const li = el.groups.querySelector(`.conversation-item[data-conversation-id="${CSS.escape(id)}"]`);
    if (!li) {
      state.renamingId = null;
      return;
    }
    li.replaceWith(buildItem(findConversation(id)));
    const input = el.groups.querySelector(`.rename-input[data-conversation-id="${CSS.escape(id)}"]`);
    if (!input) return;
    input.focus();
    input.select();
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const conv = findConversation(id);
      const title = input.value.trim();
      state.renamingId = null;
      const previous = conv ? conv.title : '';
      if (save && conv && title !== (conv.title || '')) {
        conv.title = title; // optimistic
        renderSidebar();
        if (id === state.conversationId) applyTitle(conv);
        try {
          const updated = await api('PATCH', `/api/conversations/${encodeURIComponent(id)}/`, { title });
          if (updated) upsertConversation(updated, { onlyIfListed: true });
          if (id === state.conversationId && updated) applyTitle(updated);
        } catch (err) {
          conv.title = previous;
          renderSidebar();
          if (id === state.conversationId) applyTitle(conv);
          if (err.status !== 401) showNotice(`Could not rename the conversation: ${err.message}`, { key: 'rename-failed', global: true });
        }
      } else {
        renderSidebar();
      }
      const rename = el.groups.querySelector(`.conversation-item[data-conversation-id="${CSS.escape(id)}"] .rename-conversation`);
      if (rename && (document.activeElement === document.body || !document.activeElement)) rename.focus();
    };
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        finish(true);
      } else if (e.key === 'Escape') {
        e.preventDefault();
        e.stopPropagation();
        finish(false);
      }
    });
    input.addEventListener('blur', () => finish(true));
  }

  function applyTitle(conv) {
    if (state.conversation && String(state.conversation.id) === String(conv.id)) state.conversation.title = conv.title;
    el.title.textContent = displayTitle(conv);
    document.title = `${displayTitle(conv)} · ${APP_NAME}`;
  }

  async function deleteConversation(id) {
    const conv = findConversation(id);
    const name = displayTitle(conv);
    if (!window.confirm(`Delete “${name}”? This cannot be undone.`)) return;
    try {
      await api('DELETE', `/api/conversations/${encodeURIComponent(id)}/`);
    } catch (err) {
      if (err.status !== 404) {
        if (err.status !== 401) showNotice(`Could not delete the conversation: ${err.message}`, { key: 'delete-failed', global: true });
        return;
      }
    }
    state.conversations = state.conversations.filter((c) => String(c.id) !== id);
    state.outbox = state.outbox.filter((e) => e.convId !== id);
    renderSidebar();
    if (id === state.conversationId) {
      navigate('');
      el.composer.focus();
    } else {
      el.newChat.focus();
    }
  }

  /* ------------------------------------------------------------ model picker */

  // Shown when GET /api/models/ offers more than one model: the open conversation's
  // model, changed with PATCH; for a new chat, the model its POST asks for.
  const picker = { wrap: byId('model-choice'), select: byId('model-picker'), offlineNotice: byId('offline-model-notice') };

  async function loadModels() {
    let data;
    try {
      data = await api('GET', '/api/models/');
    } catch (_) {
      return; // no picker: each conversation keeps its model
    }
    const ids = data && Array.isArray(data.models) ? data.models.map((m) => String(m && m.id)) : [];
    state.models = { default: String((data && data.default) || ids[0] || ''), ids };
    picker.select.replaceChildren(...ids.map((id) => {
      const option = make('option', '', id);
      option.value = id;
      return option;
    }));
    picker.wrap.hidden = ids.length < 2;
    syncModel();
  }

  // The model that answers here: the open conversation's (once known), or the new chat's.
  function currentModel() {
    if (state.conversationId) return state.conversation && state.conversation.model ? String(state.conversation.model) : '';
    return state.newChatModel || (state.models ? state.models.default : '');
  }

  function syncModel() {
    const model = currentModel();
    if (!model) return;
    if (state.models && state.models.ids.includes(model)) picker.select.value = model;
    if (picker.offlineNotice) picker.offlineNotice.hidden = model !== 'offline';
  }

  async function chooseModel() {
    const model = picker.select.value;
    const id = state.conversationId;
    if (!id) {
      state.newChatModel = model;
      syncModel();
      return;
    }
    const request = ++state.modelRequest;
    try {
      const updated = await api('PATCH', `/api/conversations/${encodeURIComponent(id)}/`, { model });
      // Only the model: the answer lacks the run status and approvals the sidebar shows.
      for (const conv of [state.conversation, findConversation(id)]) {
        if (conv && String(conv.id) === id && updated) conv.model = updated.model;
      }
      clearNotice('model-failed');
    } catch (err) {
      if (err.status !== 401) showNotice(`Could not change the model: ${err.message}`, { key: 'model-failed' });
    }
    if (request === state.modelRequest && id === state.conversationId) syncModel();
  }

  picker.select.addEventListener('change', () => chooseModel());

  /* --------------------------------------------------------------- navigation */

  function updateEmptyState() {
    const none = !state.conversationId;
    el.empty.hidden = !none;
    el.exportLinks.hidden = none || state.notFound;
    if (!none) {
      const base = `/api/conversations/${encodeURIComponent(state.conversationId)}/export`;
      el.exportMarkdown.href = `${base}?format=markdown`;
      el.exportJson.href = `${base}?format=json`;
    }
  }

  function navigate(id, { push = true } = {}) {
    const path = conversationPath(id);
    if (push && location.pathname !== path) history.pushState({ conversationId: id }, '', path);
    openConversation(id);
  }

  function openConversation(id) {
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

  /* ------------------------------------------------------------ mobile sidebar */

  const phone = window.matchMedia('(max-width: 699.98px)');

  function openSidebar() {
    el.app.dataset.sidebarOpen = 'true';
    el.backdrop.hidden = false;
    if (el.menuToggle) {
      el.menuToggle.setAttribute('aria-expanded', 'true');
      el.menuToggle.setAttribute('aria-label', 'Hide conversations');
    }
    el.newChat.focus();
  }

  function closeSidebar(returnFocus = true) {
    if (el.app.dataset.sidebarOpen !== 'true') return;
    el.app.dataset.sidebarOpen = 'false';
    el.backdrop.hidden = true;
    if (el.menuToggle) {
      el.menuToggle.setAttribute('aria-expanded', 'false');
      el.menuToggle.setAttribute('aria-label', 'Show conversations');
      if (returnFocus && phone.matches) el.menuToggle.focus();
    }
  }

  /* ------------------------------------------------------------------- events */

  if (el.menuToggle) {
    el.menuToggle.addEventListener('click', () => {
      if (el.app.dataset.sidebarOpen === 'true') closeSidebar();
      else openSidebar();
    });
  }
  el.backdrop.addEventListener('click', () => closeSidebar());
  phone.addEventListener('change', () => {
    if (!phone.matches) closeSidebar(false);
  });

  el.newChat.addEventListener('click', () => {
    navigate('');
    el.composer.focus();
  });

  let searchTimer = null;
  el.search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      const q = el.search.value.trim();
      if (q === state.query) return;
      state.query = q;
      state.nextCursor = null;
      loadConversations({ reset: true });
    }, SEARCH_DEBOUNCE_MS);
  });
  el.search.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && el.search.value) {
      e.preventDefault();
      e.stopPropagation();
      el.search.value = '';
      el.search.dispatchEvent(new Event('input'));
    }
  });

  el.loadMore.addEventListener('click', () => loadConversations({ reset: false }));
  // "Load more" also happens by itself when the user scrolls to the end of the list.
  el.list.addEventListener(
    'scroll',
    () => {
      const l = el.list;
      if (state.nextCursor && !state.loadingMore && l.scrollHeight - l.scrollTop - l.clientHeight < 80) {
        loadConversations({ reset: false });
      }
    },
    { passive: true },
  );

  el.groups.addEventListener('click', (e) => {
    const target = e.target instanceof Element ? e.target : null;
    if (!target) return;
    const item = target.closest('.conversation-item');
    if (!item) return;
    const id = item.dataset.conversationId;
    if (target.closest('.rename-conversation')) {
      e.preventDefault();
      startRename(id);
      return;
    }
    if (target.closest('.delete-conversation')) {
      e.preventDefault();
      deleteConversation(id);
      return;
    }
    const link = target.closest('.conversation-link');
    if (link) {
      if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      navigate(id);
      if (phone.matches) el.composer.focus();
    }
  });

  window.addEventListener('hashchange', () => {
    const id = hashedApprovalId();
    if (!id) return;
    state.revealApproval = id;
    revealHashedApproval();
  });

  if (el.waitingJump) el.waitingJump.addEventListener('click', () => jumpToPendingApproval());

  window.addEventListener('popstate', () => {
    openConversation(idFromPath(location.pathname));
  });

  el.form.addEventListener('submit', (e) => {
    e.preventDefault();
    submitComposer();
  });

  el.composer.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      if (runIsActive()) return;
      submitComposer();
    }
  });
  el.composer.addEventListener('input', () => {
    autosize();
    updateComposerState();
  });

  el.stop.addEventListener('click', () => cancelRun());

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

  el.scroller.addEventListener(
    'scroll',
    () => {
      state.stick = nearBottom();
      el.scrollBottom.hidden = state.stick;
    },
    { passive: true },
  );
  el.scroller.addEventListener('scroll', loadOlderAtTop, { passive: true });
  el.loadOlder.addEventListener('click', () => loadOlder());
  el.scrollBottom.addEventListener('click', () => {
    scheduleScroll(true);
    el.composer.focus();
  });

  window.addEventListener('offline', () => {
    setConnection('offline');
    showNotice('You are offline. Messages will be sent when the connection is back.', { kind: 'info', key: 'offline', global: true });
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

  /* --------------------------------------------------------------------- boot */

  const initial = state.conversationId;
  state.conversationId = null; // force openConversation to do the work
  history.replaceState({ conversationId: initial }, '', location.href);
  openConversation(initial);
  loadConversations({ reset: true });
  loadModels();
  autosize();
  updateComposerState();
  // The handlers are in place: a key pressed before this (the composer is painted
  // before this deferred script runs) would only have typed into the textarea.
  document.body.dataset.ready = 'true';
})();
