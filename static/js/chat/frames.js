/* The frames the server sends (docs/protocol.md, "WebSocket"), each applied to the page:
 * snapshots, with `seq` checked for gaps, and the live frames between them. */
import { failDecision, notifyApprovalsChanged, resetDecisions, revealHashedApproval, upsertApproval } from './approvals.js';
import { BRANCH_FRAMES, branchSnapshotEnd, branchSnapshotStart, clearBranchPending, updateBranchControls } from './branches.js';
import { autosize, updateComposerState, updateControls } from './composer.js';
import { applyConversation, updateEmptyState } from './conversation.js';
import { el } from './elements.js';
import { appendToken, messageError, upsertMessage } from './messages.js';
import { clearNotice, showNotice } from './notices.js';
import { setOlderCursor } from './older.js';
import { ackOutbox, ackOutboxFromSnapshot, flushOutbox, renderOutbox } from './outbox.js';
import { applyRun, learnSnapshotRuns, retryRefused, showLastTurnFailure } from './runs.js';
import { scheduleScroll } from './scroll.js';
import { findConversation, renderSidebar, syncSidebarStatus } from './sidebar.js';
import { connect, setConnection } from './socket.js';
import { OPEN_RUN, state } from './store.js';
import { upsertTool } from './tool-cards.js';
import { timeOf } from '../dom.js';

export function onFrame(frame) {
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
