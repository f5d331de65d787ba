/* Turns: every item shown (a message, a reply being written, a tool card, an approval card)
 * belongs to a turn, the time its user message was accepted (`turn_at`). Items stand in
 * turn order, and within a turn in the order they came (or were created), so a message
 * queued behind a running turn stays after everything that turn still writes. The server
 * orders stored messages by (turn_at, created_at), so a reload shows the same. */
import { el } from './elements.js';
import { state } from './store.js';
import { timeOf } from '../dom.js';

// An ISO time in microseconds: Date.parse keeps milliseconds, the server's times have six digits.
export function microsOf(iso) {
  const ms = timeOf(iso);
  if (!ms) return 0;
  const fraction = /\.(\d+)/.exec(iso);
  return ms * 1000 + (fraction ? Number(fraction[1].slice(3, 6).padEnd(3, '0')) : 0);
}

export function turnOfMessage(message) {
  return microsOf(message && (message.turn_at || message.created_at));
}

// A run's turn: its user message's (run frames and snapshot.runs name it), or that of a
// message it wrote (every message of a turn carries the turn's turn_at).
export function turnOfRun(runId) {
  const id = String(runId || '');
  if (!state.runTurns.has(id)) {
    const run = state.runs.get(id);
    const asked = run && run.user_message_id ? state.messages.get(String(run.user_message_id)) : null;
    const turn = turnOfMessage(asked);
    if (turn) state.runTurns.set(id, turn);
  }
  return state.runTurns.get(id) || 0;
}

export function setTurn(node, turn) {
  if (turn) node.dataset.turn = String(turn);
}

// Insert an item after the last item of its turn or an earlier one, before the items of
// later turns. With `createdAt` (a snapshot's approval), also before the items of its own
// turn created after it or still being written. An item of an unknown turn goes last.
export function placeItem(node, createdAt = 0) {
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
