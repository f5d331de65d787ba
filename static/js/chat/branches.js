/* Edit, regenerate and the versions of a message (docs/protocol.md: message.edit,
 * message.regenerate, branch.switch). One such frame at a time; its answer is a snapshot. */
import { el } from './elements.js';
import { charCount, frameTooLarge, MAX_CHARS } from './limits.js';
import { showNotice } from './notices.js';
import { hasOlder, loadOlderUntil } from './older.js';
import { unstick } from './scroll.js';
import { sendFrame } from './socket.js';
import { dropEditing, on, runIsOpen, setEditClientId, setEditDraft, setEditing, state } from './store.js';
import { findMessageElement, shownMessage } from './turns.js';
import { button, make, uid, uuid } from '../dom.js';

export const BRANCH_FRAMES = new Set(['message.edit', 'message.regenerate', 'branch.switch']);
const BRANCH_TIMEOUT_MS = 20000;

// {type, messageId, ws, timer, focus}: a fork or switch sent, not yet answered.
let pending = null;

// Under the message, or as a notice if it is not shown.
function messageError(id, text) {
  const node = findMessageElement(id);
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

export function versionsOf(message) {
  const v = message && message.versions;
  if (!v || !Array.isArray(v.choices) || v.choices.length < 2) return null;
  const count = v.choices.length;
  const index = Number.isInteger(v.index) && v.index >= 0 && v.index < count ? v.index : 0;
  return { index, count, choices: v.choices };
}

// "‹ 2 / 3 ›": real buttons; the ends are disabled.
export function buildVersionSwitcher(message, versions) {
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

export function buildEditor(node, message) {
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
    if (state.editing && state.editing.messageId === id) setEditDraft(input.value);
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
  return runIsOpen() || !!pending || state.notFound;
}

export function applyBranchControlState(root) {
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
  if (root.classList && root.classList.contains('message')) {
    if (pending && pending.messageId === root.dataset.messageId) root.setAttribute('aria-busy', 'true');
    else if (root.dataset.streaming !== 'true') root.removeAttribute('aria-busy');
  }
}

function updateBranchControls() {
  el.app.dataset.branchBlocked = branchBlocked() ? 'true' : 'false';
  for (const node of el.messages.querySelectorAll('.message')) applyBranchControlState(node);
}

export function initBranches() {
  on('opened', clearBranchPending);
  on('controls', updateBranchControls);
}

export function startEdit(id) {
  const m = state.messages.get(id);
  if (!m || m.role !== 'user' || branchBlocked()) return;
  setEditing({ messageId: id, draft: m.content || '', clientId: null });
  const input = shownMessage(id)?.querySelector('.edit-input');
  if (input) {
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }
}

function cancelEdit() {
  if (!state.editing) return;
  const id = state.editing.messageId;
  if (pending && pending.messageId === id) return; // saving: wait for the answer
  setEditing(null);
  const edit = shownMessage(id)?.querySelector('.edit-message');
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
  if (!state.editing.clientId) setEditClientId(uuid());
  const frame = { type: 'message.edit', message_id: id, content, client_id: state.editing.clientId };
  if (frameTooLarge(frame)) {
    messageError(id, 'Your message is too large to send (64 KiB limit). Please shorten it.');
    return;
  }
  sendBranchFrame(frame, id, { kind: 'composer' });
}

export function regenerate(id) {
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
  const node = shownMessage(id);
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
  const sent = { type: frame.type, messageId, ws: state.ws, focus, timer: null };
  sent.timer = setTimeout(() => {
    if (pending !== sent) return;
    pending = null;
    updateBranchControls();
  }, BRANCH_TIMEOUT_MS);
  pending = sent;
  updateBranchControls();
  return true;
}

function clearBranchPending() {
  if (pending) clearTimeout(pending.timer);
  pending = null;
}

// An `error` answered our edit, regenerate or switch: said at the message, an open
// editor's text kept. False if none was waiting.
export function branchRefused(text) {
  if (!pending) return false;
  const { messageId } = pending;
  clearBranchPending();
  updateBranchControls();
  messageError(messageId, text);
  return true;
}

// Called by applySnapshot before it rebuilds the messages.
export function branchSnapshotStart(messages) {
  const ids = new Set(messages.map((m) => String(m && m.id)));
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
  if (state.editing && !ids.has(state.editing.messageId)) dropEditing();
  return done;
}

// Called by applySnapshot once the messages are shown: put the focus where the user was.
export function branchSnapshotEnd(done, focusLost) {
  updateBranchControls();
  if (!done || !done.focus) return;
  if (done.focus.kind === 'switch') {
    const target = done.focus.messageId;
    if (target && !shownMessage(target) && hasOlder()) {
      // The version chosen is older than the snapshot's page: fetch back to it.
      loadOlderUntil(() => !!shownMessage(target)).then((found) => {
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
  const node = (focus.messageId && shownMessage(focus.messageId))
    || el.messages.querySelectorAll('.message')[focus.index];
  if (!node) return;
  const want = node.querySelector(`.version-${focus.which}:not(:disabled)`);
  const other = node.querySelector('.version-btn:not(:disabled)');
  const target = want || other;
  if (target && focusLost()) target.focus({ preventScroll: true });
  // Stay at the switched message instead of jumping to the end of the line.
  unstick();
  node.scrollIntoView({ block: 'nearest' });
}
