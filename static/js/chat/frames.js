/* The frames the server sends (docs/protocol.md, "WebSocket"), each applied to the page:
 * snapshots, with `seq` checked for gaps, and the live frames between them. What a frame
 * changes goes to the store (store.js), and to the view that shows it. */
import {
  failDecision, isDeciding, keptCards, resetDecisions, revealHashedApproval, showApprovals, upsertApproval,
} from './approvals.js';
import { BRANCH_FRAMES, branchRefused, branchSnapshotEnd, branchSnapshotStart } from './branches.js';
import { giveBack } from './composer.js';
import { updateEmptyState } from './conversation.js';
import { el } from './elements.js';
import { appendToken, upsertMessage } from './messages.js';
import { clearNotice, showNotice } from './notices.js';
import { hasOlder, setOlderCursor } from './older.js';
import { ackOutbox, ackOutboxFromSnapshot, flushOutbox, renderOutbox, takeRefused } from './outbox.js';
import { forgetRetry, retryRefused, showLastTurnFailure } from './runs.js';
import { scheduleScroll } from './scroll.js';
import { connect, resetBackoff, setConnection } from './socket.js';
import {
  acceptSeq, applyRunFrame, beginSnapshot, endSnapshot, learnConversation, setCancelling, setLastSent, state, touchConversation,
} from './store.js';
import { upsertTool } from './tool-cards.js';
import { clearItems, shownMessage } from './turns.js';
import { announceApprovalsChanged } from '../approvals-changed.js';
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
    acceptSeq(frame.seq);
  }
  switch (frame.type) {
    case 'message':
      onMessageFrame(frame.message);
      break;
    case 'token':
      appendToken(frame);
      break;
    case 'run':
      applyRunFrame(frame.run);
      break;
    case 'approval':
      upsertApproval(frame.approval);
      announceApprovalsChanged();
      break;
    case 'tool':
      upsertTool(frame);
      break;
    case 'conversation':
      if (frame.conversation) learnConversation(frame.conversation);
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
  resetBackoff();
  setConnection('online');
  clearNotice('offline');
  clearNotice('not-found');

  // Keep the approval cards (an open edit form, a typed comment) and the focus across a resync.
  const focused = el.messages.contains(document.activeElement) ? document.activeElement : null;
  const kept = keptCards();
  const known = Array.from(state.approvals.values());
  resetDecisions();
  const messages = Array.isArray(frame.messages) ? frame.messages : [];
  const editorFocus = focused && focused.classList.contains('edit-input')
    ? { start: focused.selectionStart, end: focused.selectionEnd } : null;

  beginSnapshot(frame);
  if (frame.conversation) learnConversation(frame.conversation);
  forgetRetry();
  const branchDone = branchSnapshotStart(messages);
  clearItems();
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
  const since = hasOlder() && messages.length ? timeOf(messages[0].created_at) : 0;
  const approvals = known.filter((a) => !listed.has(String(a.id)) && timeOf(a.created_at) >= since)
    .concat(listedApprovals);
  approvals.sort((a, b) => timeOf(a && a.created_at) - timeOf(b && b.created_at));
  showApprovals(approvals, kept);
  if (focused && focused.isConnected && document.activeElement !== focused) focused.focus({ preventScroll: true });
  if (editorFocus && state.editing) {
    // The open editor was rebuilt: give it the focus and the caret back.
    const input = shownMessage(state.editing.messageId)?.querySelector('.edit-input');
    if (input) {
      input.focus({ preventScroll: true });
      try {
        input.setSelectionRange(editorFocus.start, editorFocus.end);
      } catch (_) {
        /* not a text field any more */
      }
    }
  }

  endSnapshot();

  ackOutboxFromSnapshot(messages);
  flushOutbox();
  renderOutbox();
  updateEmptyState();
  scheduleScroll(true);
  const active = document.activeElement;
  branchSnapshotEnd(branchDone, () => !active || active === document.body || !active.isConnected);
  showLastTurnFailure();
  revealHashedApproval();
  announceApprovalsChanged();
}

function onMessageFrame(message) {
  if (!message) return;
  upsertMessage(message);
  if (message.role === 'user') ackOutbox(message.content);
  touchConversation(message.created_at || new Date().toISOString());
  updateEmptyState();
  scheduleScroll();
}

function onErrorFrame(frame) {
  const text = typeof frame.message === 'string' && frame.message ? frame.message : `Error: ${frame.code || 'unknown'}`;
  // A refused decision: say so on its card, where the user is looking.
  const last = state.lastSent;
  if (last && last.type === 'approval.decide' && isDeciding(last.approvalId)) {
    setLastSent(null);
    failDecision(last.approvalId, text);
    return;
  }
  if (last && last.type === 'run.retry' && retryRefused(text)) {
    setLastSent(null);
    return;
  }
  // A refused edit, regenerate or switch: said at the message, an open editor's text kept.
  if (last && BRANCH_FRAMES.has(last.type) && branchRefused(text)) {
    setLastSent(null);
    return;
  }
  showNotice(text, { kind: 'error' });
  // A refused message.send: give the text back instead of retrying forever.
  if (['bad_request', 'too_large', 'rate_limited', 'conflict'].includes(frame.code)) {
    const refused = takeRefused();
    if (refused !== null) giveBack(refused);
  }
  // Re-enable decisions that may have been refused.
  resetDecisions();
  if (state.cancelling) setCancelling(null);
}
