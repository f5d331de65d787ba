/* The chat page's shared state, and the only functions that change it: the conversation
 * shown, its messages, runs and approvals, the socket's place in the frames, the
 * conversation list. Views read `state` and render; they learn of a change by
 * on(topic, listener) instead of being called by the module that made it. What only one
 * module needs (the socket's timers, the list's paging, a decision in flight, the outbox)
 * stays private to that module.
 *
 * Topics:
 *  'opened'         another conversation is shown (or a new chat): what a view kept of the last goes
 *  'controls'       the active run, a Stop in flight or "not found" changed: what the page allows
 *  'conversations'  the conversation list, or a conversation in it, changed
 *  'conversation'   (conv) the shown conversation's title or model changed
 *  'message'        ({id}) a message looks different though the server sent nothing new (its editor)
 *  'run'            ({id, status}) a run frame came (after 'controls')
 *  'reply-replaced' ({id}) a reply is no longer its run's last one (the run's usage moves on)
 *  'older'          ({messages, approvals}) a page of older items, learned, to show above the rest */
import { isDecided } from '../approval-card.js';
import { microsOf, timeOf } from '../dom.js';

// Run statuses: ACTIVE_RUN can be stopped; OPEN_RUN has not ended (waiting: for an approval).
export const ACTIVE_RUN = new Set(['queued', 'running']);
export const OPEN_RUN = new Set(['queued', 'running', 'waiting']);

// Read anywhere; changed only here. Maps and lists are changed in place.
export const state = {
  conversationId: null, // null until main.js opens the page's conversation; '' for a new chat
  conversation: null,
  notFound: false,
  // the sidebar's list
  conversations: [],
  query: '',
  listLoaded: false,
  // the socket (socket.js) and the frames it brought (frames.js)
  ws: null,
  synced: false, // the socket's snapshot came
  lastSeq: null,
  lastSent: null, // {type, approvalId?}: the last frame sent that the server may refuse
  snapshotGen: 0, // grows with each snapshot: drops stale HTTP answers
  // the line shown
  messages: new Map(), // id -> Message
  approvals: new Map(), // id -> Approval
  activeRun: null,
  cancelling: null, // id of the run whose run.cancel is unanswered
  editing: null, // {messageId, draft, clientId}: a user message being edited inline
  // runs of the shown turns (run frames, snapshot.runs): their turns, models, usage, failures
  runs: new Map(), // run id -> Run
  runTurns: new Map(), // run id -> its turn (microseconds of its user message's turn_at)
  latestRuns: new Map(), // user message id -> the latest Run that answers it
  lastReplies: new Map(), // run id -> id of its last assistant message shown
};

// Listeners run at once, in the order they were added, and an exception reaches the code
// that made the change, as when it called the views itself (socket.js logs a bad frame).
const listeners = new Map(); // topic -> [listener]

export function on(topic, listener) {
  if (!listeners.has(topic)) listeners.set(topic, []);
  listeners.get(topic).push(listener);
}

function emit(topic, detail) {
  for (const listener of listeners.get(topic) || []) listener(detail);
}

export function runIsActive() {
  return !!(state.activeRun && ACTIVE_RUN.has(state.activeRun.status));
}

export function runIsOpen() {
  return !!(state.activeRun && OPEN_RUN.has(state.activeRun.status));
}

/* The conversation shown. */

// Everything of the conversation shown before is forgotten: the views forget theirs
// ('opened'), then draw the list's active item and what the page allows.
export function openConversationState(id) {
  state.conversationId = id;
  state.conversation = findConversation(id) || null;
  state.notFound = false;
  state.activeRun = null;
  state.cancelling = null;
  state.editing = null;
  forgetRuns();
  state.messages.clear();
  state.approvals.clear();
  emit('opened');
  emit('conversations');
  emit('controls');
}

export function setNotFound() {
  state.notFound = true;
  state.conversations = state.conversations.filter((c) => String(c.id) !== state.conversationId);
  emit('conversations');
  emit('controls');
}

// A conversation object from the server: the shown one, or one of the list.
export function learnConversation(conv) {
  if (!conv || String(conv.id) !== state.conversationId) {
    if (conv) upsertConversation(conv);
    return;
  }
  state.conversation = conv;
  emit('conversation', conv);
  upsertConversation(conv, { onlyIfListed: !!state.query });
}

export function setConversationTitle(id, title) {
  const listed = findConversation(id);
  if (listed) listed.title = title;
  emit('conversations');
  if (String(id) !== state.conversationId) return;
  if (state.conversation && String(state.conversation.id) === String(id)) state.conversation.title = title;
  emit('conversation', listed || { id, title });
}

// Only the model: a PATCH's answer lacks the run status and approvals the list shows.
export function setConversationModel(id, model) {
  for (const conv of [state.conversation, findConversation(id)]) {
    if (conv && String(conv.id) === String(id)) conv.model = model;
  }
}

/* The conversation list. */

export function findConversation(id) {
  return state.conversations.find((c) => String(c.id) === String(id));
}

export function upsertConversation(conv, { toTop = false, onlyIfListed = false } = {}) {
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
  emit('conversations');
}

export function removeConversation(id) {
  state.conversations = state.conversations.filter((c) => String(c.id) !== id);
  emit('conversations');
}

export function setQuery(query) {
  state.query = query;
}

// A page of GET /api/conversations/ (the first one replaces the list).
export function learnConversationPage(results, { reset }) {
  if (reset) state.conversations = [];
  for (const c of results) {
    const id = String(c.id);
    const existing = findConversation(id);
    if (existing) Object.assign(existing, c, { id });
    else state.conversations.push({ ...c, id });
  }
  state.listLoaded = true;
  if (!state.query && state.conversationId && state.conversation && !findConversation(state.conversationId)) {
    state.conversations.unshift({ ...state.conversation, id: state.conversationId });
  }
  syncListedStatus();
  emit('conversations');
}

// A message of the shown conversation, at `iso`: the list orders by the last change.
export function touchConversation(iso) {
  const conv = findConversation(state.conversationId);
  if (!conv) return;
  if (timeOf(iso) > timeOf(conv.updated_at)) conv.updated_at = iso;
  emit('conversations');
}

// The shown conversation's run status and pending approvals, as the list shows them.
function syncListedStatus() {
  if (!state.synced) return; // the list's own values stand until the snapshot
  const conv = findConversation(state.conversationId);
  if (!conv) return;
  conv.run_status = state.activeRun ? state.activeRun.status : null;
  let pending = 0;
  for (const a of state.approvals.values()) if ((a.status || 'pending') === 'pending') pending += 1;
  conv.pending_approvals = pending;
  emit('conversations');
}

/* The socket and its frames. */

// A new socket (or none) has no snapshot yet.
export function setSocket(ws) {
  state.ws = ws;
  state.synced = false;
  state.lastSeq = null;
}

export function setLastSent(sent) {
  state.lastSent = sent;
}

export function acceptSeq(seq) {
  state.lastSeq = seq;
}

// The snapshot's run and runs are known before its messages are built, so their controls
// start right; its messages and approvals replace those shown. endSnapshot tells the views.
export function beginSnapshot(frame) {
  state.synced = true;
  state.lastSeq = typeof frame.seq === 'number' ? frame.seq : null;
  state.snapshotGen += 1;
  state.activeRun = frame.run && OPEN_RUN.has(frame.run.status) ? { ...frame.run, id: String(frame.run.id) } : null;
  forgetRuns();
  for (const run of Array.isArray(frame.runs) ? frame.runs : []) if (run && run.id !== undefined) learnRun(run);
  if (frame.run && frame.run.id !== undefined) learnRun(frame.run);
  state.messages.clear();
  state.approvals.clear();
}

// The snapshot is shown: the views redraw what the page allows.
export function endSnapshot() {
  if (!state.activeRun) state.cancelling = null;
  syncListedStatus();
  emit('controls');
}

/* Runs. */

function forgetRuns() {
  state.runs.clear();
  state.runTurns.clear();
  state.latestRuns.clear();
  state.lastReplies.clear();
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

// A run frame: the run learned, and the active run it makes.
export function applyRunFrame(run) {
  if (!run || run.id === undefined) return;
  const id = String(run.id);
  learnRun(run);
  if (OPEN_RUN.has(run.status)) {
    if (!queuedBehindActive(run)) state.activeRun = { ...run, id };
  } else {
    if (!state.activeRun || state.activeRun.id === id) state.activeRun = null;
    if (state.cancelling === id) state.cancelling = null;
  }
  syncListedStatus();
  emit('controls');
  emit('run', { id, status: run.status });
}

// Tokens of a run the page did not know was running.
export function tokensOfRun(runId) {
  if (state.activeRun && (state.activeRun.id === runId || OPEN_RUN.has(state.activeRun.status))) return;
  state.activeRun = { id: runId, status: 'running' };
  syncListedStatus();
  emit('controls');
}

export function setCancelling(runId) {
  state.cancelling = runId;
  emit('controls');
}

/* Turns: every item shown belongs to a turn, the time its user message was accepted. */

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

/* Messages. */

// A message (from a frame, a snapshot or an older page) and what it says of its turn and run.
export function recordMessage(message) {
  const id = String(message.id);
  state.messages.set(id, message);
  if (!message.run_id) return;
  const runId = String(message.run_id);
  if (message.turn_at) state.runTurns.set(runId, microsOf(message.turn_at));
  if (message.role !== 'assistant') return;
  const before = state.lastReplies.get(runId);
  const shown = before ? state.messages.get(before) : null;
  if (before !== id && shown && microsOf(shown.created_at) > microsOf(message.created_at)) return;
  state.lastReplies.set(runId, id);
  if (before && before !== id) emit('reply-replaced', { id: before });
}

// GET .../messages/?before=: its runs and the messages not shown yet, then shown above.
export function learnOlderPage(page) {
  for (const run of Array.isArray(page.runs) ? page.runs : []) if (run && run.id !== undefined) learnRun(run);
  const messages = [];
  for (const m of Array.isArray(page.results) ? page.results : []) {
    if (!m || m.id === undefined || m.id === null || state.messages.has(String(m.id))) continue;
    recordMessage(m);
    messages.push(m);
  }
  emit('older', { messages, approvals: Array.isArray(page.approvals) ? page.approvals : [] });
  return messages;
}

// The message being edited inline (null: none); the messages it leaves and opens are redrawn.
export function setEditing(editing) {
  const before = state.editing ? state.editing.messageId : null;
  state.editing = editing;
  if (before && (!editing || editing.messageId !== before)) emit('message', { id: before });
  if (editing) emit('message', { id: editing.messageId });
}

// The editor's text, kept across a redraw; no redraw.
export function setEditDraft(draft) {
  if (state.editing) state.editing.draft = draft;
}

export function setEditClientId(clientId) {
  if (state.editing) state.editing.clientId = clientId;
}

// A snapshot without the message edited: the editor goes with it, the snapshot redraws all.
export function dropEditing() {
  state.editing = null;
}

/* Approvals. */

// Approvals only move from pending to decided: an older pending copy never undoes a
// decision. Returns false for such a copy, ignored.
export function recordApproval(approval) {
  const id = String(approval.id);
  const previous = state.approvals.get(id);
  if (previous && isDecided(previous) && !isDecided(approval)) return false;
  state.approvals.set(id, approval);
  if (!previous || isDecided(previous) !== isDecided(approval)) syncListedStatus();
  return true;
}
