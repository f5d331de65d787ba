/* The messages of the conversation shown: built from the server's objects, replaced in
 * place when they change, and a reply written token by token while it streams. */
import { applyBranchControlState, buildEditor, buildVersionSwitcher, regenerate, startEdit, versionsOf } from './branches.js';
import { updateControls, updateTyping } from './composer.js';
import { el } from './elements.js';
import { appendDelta, decorateMessage, keepThinkingOpen, settleThinking } from './message-notes.js';
import { showNotice } from './notices.js';
import { learnMessage } from './runs.js';
import { scheduleScroll } from './scroll.js';
import { syncSidebarStatus } from './sidebar.js';
import { OPEN_RUN, state } from './store.js';
import { placeItem, setTurn, turnOfRun } from './turns.js';
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

export function buildMessage(message) {
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

export function messageError(id, text) {
  const node = state.messageEls.get(id) || findMessageEl(id);
  const error = node && node.isConnected ? node.querySelector(':scope > .message-error') : null;
  if (!error) {
    showNotice(text, { kind: 'error' });
    return;
  }
  error.textContent = text;
  error.hidden = false;
}

export function clearMessageErrors() {
  for (const e of el.messages.querySelectorAll('.message-error:not([hidden])')) {
    e.textContent = '';
    e.hidden = true;
  }
}

export function rerender(id) {
  const m = state.messages.get(id);
  if (m) upsertMessage(m);
  return state.messageEls.get(id) || null;
}

export function upsertMessage(message) {
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

export function appendToken(frame) {
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

export function finishStreaming(runId) {
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
