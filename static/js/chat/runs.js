/* Runs of the turns shown (run frames, snapshot.runs): which run is active, which answers
 * each user message, Stop, and Retry for a failed one. */
import { el } from './elements.js';
import { showQueued, showRunDetails } from './message-notes.js';
import { clearNotice, showNotice } from './notices.js';
import { sendFrame } from './socket.js';
import { on, runIsActive, runIsOpen, setCancelling, state, turnOfMessage } from './store.js';
import { shownMessage } from './turns.js';
import { button, uuid } from '../dom.js';

let retrying = ''; // id of the failed run whose run.retry is unanswered

// A run.retry is answered by a snapshot, and a new socket's frame may be lost: either way
// it is not waited for any more.
export function forgetRetry() {
  retrying = '';
  clearNotice('retry-failed');
}

// A run changed: its user message's Queued mark, its last reply's model and usage, Retry.
function showRunChange(runId) {
  const run = state.runs.get(runId);
  if (!run) return;
  const asked = run.user_message_id ? shownMessage(String(run.user_message_id)) : null;
  if (asked && asked.isConnected) showQueued(asked, String(run.user_message_id));
  const reply = shownMessage(state.lastReplies.get(runId) || '');
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
  const idle = !runIsOpen();
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
    retry.disabled = !!retrying;
    retry.textContent = retrying === notice.dataset.runId ? 'Retrying…' : 'Retry';
  }
}

function retryRun(runId) {
  if (retrying) return;
  clearNotice('retry-failed');
  if (!state.synced || !sendFrame({ type: 'run.retry', run_id: runId, client_id: uuid() })) {
    showNotice('Could not retry: not connected. Try again when the connection is back.', { key: 'retry-failed' });
    return;
  }
  retrying = runId;
  refreshFailureNotices();
}

// An `error` answered the run.retry (conflict: a run is active; bad_request: not the last
// turn). False if no retry was waiting.
export function retryRefused(text) {
  if (!retrying) return false;
  retrying = '';
  showNotice(`Could not retry: ${text}`, { key: 'retry-failed' });
  refreshFailureNotices();
  return true;
}

// After messages.js's listener, which settles a stopped reply first: its usage is shown
// only once it no longer streams.
export function initRuns() {
  on('opened', forgetRetry);
  on('run', ({ id, status }) => {
    if (status === 'failed') showRunFailure(id);
    showRunChange(id);
  });
}

export function cancelRun() {
  if (!runIsActive()) return;
  const runId = state.activeRun.id;
  const sent = sendFrame({ type: 'run.cancel', run_id: runId });
  if (!sent) {
    showNotice('Not connected. The run could not be stopped right now.', { key: 'cancel-offline' });
    return;
  }
  setCancelling(runId);
}
