/* Messages typed but not yet stored: sent once the socket is synced, sent again on a new
 * socket, and gone when the server's message (or a snapshot) shows them. */
import { el } from './elements.js';
import { scheduleScroll } from './scroll.js';
import { state } from './store.js';
import { make, uuid } from '../dom.js';

// The user messages with this text shown now: a snapshot's other one is the one sent.
function userMessageIds(content) {
  const ids = new Set();
  for (const [id, m] of state.messages) if (m.role === 'user' && sameContent(m.content, content)) ids.add(id);
  return ids;
}

function sameContent(a, b) {
  return typeof a === 'string' && typeof b === 'string' && (a === b || a.trim() === b.trim());
}

export function enqueue(convId, content) {
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

export function flushOutbox() {
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

export function ackOutbox(content) {
  const i = state.outbox.findIndex((e) => e.convId === state.conversationId && sameContent(e.content, content));
  if (i >= 0) {
    state.outbox.splice(i, 1);
    renderOutbox();
  }
}

export function ackOutboxFromSnapshot(messages) {
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

export function renderOutbox() {
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
