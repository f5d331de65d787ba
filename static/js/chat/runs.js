/* Runs of the turns shown (run frames, snapshot.runs): which run is active, which answers
 * each user message, Stop, and Retry for a failed one. */
import { updateControls } from './composer.js';
import { el } from './elements.js';
import { showQueued, showRunDetails } from './message-notes.js';
import { finishStreaming } from './messages.js';
import { clearNotice, showNotice } from './notices.js';
import { syncSidebarStatus } from './sidebar.js';
import { sendFrame } from './socket.js';
import { OPEN_RUN, runIsActive, state } from './store.js';
import { microsOf, turnOfMessage } from './turns.js';
import { button, uuid } from '../dom.js';

export function forgetRuns() {
  state.runs.clear();
  state.runTurns.clear();
  state.latestRuns.clear();
  state.lastReplies.clear();
  state.retrying = '';
}

export function learnRun(run) {
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

// The snapshot's runs (and its active run) are known before its messages are built.
// A run.retry is answered by a snapshot, and a new socket's frame may be lost: either way
// it is not waited for any more.
export function learnSnapshotRuns(frame) {
  forgetRuns();
  for (const run of Array.isArray(frame.runs) ? frame.runs : []) if (run && run.id !== undefined) learnRun(run);
  if (frame.run && frame.run.id !== undefined) learnRun(frame.run);
  clearNotice('retry-failed');
}

// What a message says of its turn and run: called by upsertMessage before building it.
export function learnMessage(message) {
  if (!message.run_id) return;
  const runId = String(message.run_id);
  if (message.turn_at) state.runTurns.set(runId, microsOf(message.turn_at));
  if (message.role !== 'assistant') return;
  const id = String(message.id);
  const before = state.lastReplies.get(runId);
  const shown = before ? state.messages.get(before) : null;
  if (before !== id && shown && microsOf(shown.created_at) > microsOf(message.created_at)) return;
  state.lastReplies.set(runId, id);
  // The run's model and usage go on its last reply only.
  if (before && before !== id) state.messageEls.get(before)?.querySelector('.reply-usage')?.remove();
}

// A run changed: its user message's Queued mark, its last reply's model and usage, Retry.
function showRunChange(runId) {
  const run = state.runs.get(runId);
  if (!run) return;
  const asked = run.user_message_id ? state.messageEls.get(String(run.user_message_id)) : null;
  if (asked && asked.isConnected) showQueued(asked, String(run.user_message_id));
  const reply = state.messageEls.get(state.lastReplies.get(runId) || '');
  if (reply && reply.isConnected && reply.dataset.streaming !== 'true') showRunDetails(reply, run);
  refreshFailureNotices();
}

function lastUserMessageId() {
  let last = null;
  for (const m of state.messages.values()) {
    if (m.role === 'user' && (!last || turnOfMessage(m) >= turnOfMessage(last))) last = m;
  }
  return last ? String(last.id) : '';
}

// "The reply failed: <the run's error, a sentence for the user>", with Retry (below).
function showRunFailure(runId) {
  const run = state.runs.get(runId);
  if (!run) return;
  const notice = showNotice(run.error ? `The reply failed: ${run.error}` : 'The reply failed.', { key: `run-${runId}` });
  notice.dataset.runId = runId;
  if (!notice.querySelector('.retry-btn')) {
    const retry = button('btn btn-small retry-btn', 'Retry');
    retry.addEventListener('click', () => retryRun(runId));
    notice.querySelector('.notice-dismiss').before(retry);
  }
  refreshFailureNotices();
}

// After a reload: the last turn's latest run failed.
export function showLastTurnFailure() {
  const run = state.latestRuns.get(lastUserMessageId());
  if (run && run.status === 'failed') showRunFailure(run.id);
  refreshFailureNotices();
}

// Retry is offered while the failed run is the latest of the last turn and nothing runs;
// a failure answered again (a retry, from any tab) is no news any more.
function refreshFailureNotices() {
  const idle = !(state.activeRun && OPEN_RUN.has(state.activeRun.status));
  const lastAsked = lastUserMessageId();
  for (const notice of el.notices.querySelectorAll('.notice[data-run-id]')) {
    const run = state.runs.get(notice.dataset.runId);
    const latest = run ? state.latestRuns.get(String(run.user_message_id)) : null;
    if (latest && latest.id !== run.id) {
      if (notice.contains(document.activeElement)) el.composer.focus();
      notice.remove();
      continue;
    }
    const retry = notice.querySelector('.retry-btn');
    if (!retry) continue;
    retry.hidden = !(run && idle && run.status === 'failed' && String(run.user_message_id) === lastAsked);
    retry.disabled = !!state.retrying;
    retry.textContent = state.retrying === notice.dataset.runId ? 'Retrying…' : 'Retry';
  }
}

function retryRun(runId) {
  if (state.retrying) return;
  clearNotice('retry-failed');
  if (!state.synced || !sendFrame({ type: 'run.retry', run_id: runId, client_id: uuid() })) {
    showNotice('Could not retry: not connected. Try again when the connection is back.', { key: 'retry-failed' });
    return;
  }
  state.retrying = runId;
  refreshFailureNotices();
}

// An `error` answered the run.retry (conflict: a run is active; bad_request: not the last turn).
export function retryRefused(text) {
  state.retrying = '';
  showNotice(`Could not retry: ${text}`, { key: 'retry-failed' });
  refreshFailureNotices();
}

export function applyRun(run) {
  if (!run || run.id === undefined) return;
  const id = String(run.id);
  learnRun(run);
  if (OPEN_RUN.has(run.status)) {
    if (!queuedBehindActive(run)) state.activeRun = { ...run, id };
  } else {
    if (!state.activeRun || state.activeRun.id === id) state.activeRun = null;
    if (state.cancelling === id) state.cancelling = null;
    if (run.status === 'failed') {
      showRunFailure(id);
      finishStreaming(id);
    } else if (run.status === 'cancelled') {
      finishStreaming(id);
    }
  }
  updateControls();
  syncSidebarStatus();
  showRunChange(id);
}

export function cancelRun() {
  if (!runIsActive()) return;
  const runId = state.activeRun.id;
  const sent = sendFrame({ type: 'run.cancel', run_id: runId });
  if (!sent) {
    showNotice('Not connected. The run could not be stopped right now.', { key: 'cancel-offline' });
    return;
  }
  state.cancelling = runId;
  updateControls();
}
