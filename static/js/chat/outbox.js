/* Messages typed but not yet stored: sent once the socket is synced, sent again on a new
 * socket, and gone when the server's message (or a snapshot) shows them. */
import { el } from './elements.js';
import { scheduleScroll } from './scroll.js';
import { setLastSent, state } from './store.js';
import { make, uuid } from '../dom.js';

// Oldest first: {convId, content, clientId, sentCount, knownIds, sentOn (the socket)}.
let outbox = [];

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
  outbox.push({
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
  for (const entry of outbox) {
    if (entry.convId !== state.conversationId || entry.sentOn === ws) continue;
    ws.send(JSON.stringify({ type: 'message.send', content: entry.content, client_id: entry.clientId }));
    setLastSent({ type: 'message.send' });
    entry.sentOn = ws;
    entry.sentCount += 1;
  }
  renderOutbox();
}

export function ackOutbox(content) {
  const i = outbox.findIndex((e) => e.convId === state.conversationId && sameContent(e.content, content));
  if (i >= 0) {
    outbox.splice(i, 1);
    renderOutbox();
  }
}

export function ackOutboxFromSnapshot(messages) {
  const consumed = new Set();
  outbox = outbox.filter((entry) => {
    if (entry.convId !== state.conversationId || entry.sentCount === 0) return true;
    const stored = messages.find((m) => m && m.role === 'user' && sameContent(m.content, entry.content)
      && !entry.knownIds.has(String(m.id)) && !consumed.has(String(m.id)));
    if (!stored) return true;
    consumed.add(String(stored.id));
    return false;
  });
}

// A message.send refused (an error frame answered it): taken out, its text returned.
export function takeRefused() {
  const i = outbox.findIndex((e) => e.convId === state.conversationId && e.sentOn === state.ws && state.ws);
  if (i < 0) return null;
  const [entry] = outbox.splice(i, 1);
  renderOutbox();
  return entry.content;
}

// The conversation is deleted: what waits for it is not sent.
export function dropOutbox(convId) {
  outbox = outbox.filter((e) => e.convId !== convId);
}

export function renderOutbox() {
  el.outbox.replaceChildren();
  const connected = state.ws && state.ws.readyState === WebSocket.OPEN && state.synced;
  for (const entry of outbox) {
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
