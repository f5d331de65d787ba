/* The messages of the conversation shown: built from the server's objects, replaced in
 * place when they change, a reply written token by token while it streams, and the
 * indicators under them (the assistant is working, a run waits for an approval). */
import { applyBranchControlState, buildEditor, buildVersionSwitcher, regenerate, startEdit, versionsOf } from './branches.js';
import { el } from './elements.js';
import { appendDelta, decorateMessage, keepThinkingOpen, settleThinking } from './message-notes.js';
import { scheduleScroll } from './scroll.js';
import { on, recordMessage, runIsActive, state, tokensOfRun, turnOfRun } from './store.js';
import { findMessageElement, placeItem, rememberMessage, setTurn, shownMessage } from './turns.js';
import { button, copyText, make } from '../dom.js';

const ROLES = new Set(['user', 'assistant', 'tool']);

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

export function upsertMessage(message) {
  if (!message || message.id === undefined || message.id === null) return;
  recordMessage(message);
  drawMessage(message);
}

function drawMessage(message) {
  const id = String(message.id);
  const fresh = buildMessage(message);
  const old = findMessageElement(id);
  if (old && old.isConnected) {
    keepThinkingOpen(old, fresh);
    old.replaceWith(fresh);
  } else {
    placeItem(fresh);
  }
  rememberMessage(id, fresh);
  updateStreamingFlag();
}

// Older messages (older.js) above those shown, in their order.
function drawOlder({ messages }) {
  const before = el.messages.firstChild;
  for (const m of messages) {
    const node = buildMessage(m);
    el.messages.insertBefore(node, before);
    rememberMessage(String(m.id), node);
  }
}

export function appendToken(frame) {
  const id = String(frame.message_id);
  let node = findMessageElement(id);
  if (!node) {
    node = make('article', 'message assistant');
    node.dataset.messageId = id;
    node.dataset.streaming = 'true';
    if (frame.run_id) node.dataset.runId = String(frame.run_id);
    node.setAttribute('aria-label', 'Assistant');
    node.append(make('div', 'message-body streaming-body'));
    setTurn(node, turnOfRun(frame.run_id));
    placeItem(node);
    rememberMessage(id, node);
  }
  if (node.dataset.streaming !== 'true') return; // already final
  if (typeof frame.delta === 'string' && frame.delta) appendDelta(node, frame);
  if (frame.run_id) tokensOfRun(String(frame.run_id));
  updateStreamingFlag();
}

// A run stopped or failed: what it was writing stays as it is.
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

// "Assistant is working…" until its reply streams; "Waiting for your approval" instead.
function updateTyping() {
  const streaming = !!el.messages.querySelector('.message[data-streaming="true"]');
  const waiting = !!(state.activeRun && state.activeRun.status === 'waiting');
  el.typing.hidden = !(runIsActive() && !streaming) || waiting;
  if (el.waiting) el.waiting.hidden = !waiting;
}

export function initMessages() {
  on('controls', updateTyping);
  // The editor opened or closed: the message is drawn again from what is known of it.
  on('message', ({ id }) => {
    const m = state.messages.get(id);
    if (m) drawMessage(m);
  });
  // The run's model and usage go on its last reply only.
  on('reply-replaced', ({ id }) => shownMessage(id)?.querySelector('.reply-usage')?.remove());
  on('older', drawOlder);
  on('run', ({ id, status }) => {
    if (status === 'failed' || status === 'cancelled') finishStreaming(id);
  });
}
