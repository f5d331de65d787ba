/* The items of the message list (a message, a reply being written, a tool card, an approval
 * card), and where each goes: items stand in turn order (store.js, turnOfRun), and within
 * a turn in the order they came (or were created), so a message queued behind a running
 * turn stays after everything that turn still writes. The server orders stored messages by
 * (turn_at, created_at), so a reload shows the same. */
import { el } from './elements.js';
import { state } from './store.js';
import { microsOf } from '../dom.js';

const messageNodes = new Map(); // message id -> its element, as last drawn

export function shownMessage(id) {
  return messageNodes.get(id) || null;
}

// The element of a message, even one drawn before the last snapshot.
export function findMessageElement(id) {
  const node = messageNodes.get(id);
  if (node && node.isConnected) return node;
  return el.messages.querySelector(`.message[data-message-id="${CSS.escape(id)}"]`);
}

export function rememberMessage(id, node) {
  messageNodes.set(id, node);
}

// The list is emptied: a snapshot, or another conversation.
export function clearItems() {
  messageNodes.clear();
  el.messages.replaceChildren();
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
