/* What a message shows besides its text: its thinking, why it is incomplete, a user
 * message's place in the queue, and on a run's last reply the run's model and usage. */
import { OPEN_RUN, state, turnOfMessage } from './store.js';
import { setTurn } from './turns.js';
import { make } from '../dom.js';

const INCOMPLETE_NOTES = {
  length: 'Cut off: the reply reached the output limit.',
  filtered: "Stopped by the model server's content filter.",
  error: 'Incomplete: the model server failed while writing this reply.',
};

// A hook of buildMessage (messages.js).
export function decorateMessage(node, message, body) {
  setTurn(node, turnOfMessage(message));
  const id = String(message.id);
  if (typeof message.reasoning === 'string' && message.reasoning) {
    body.before(buildThinking(message.reasoning, { streaming: false }));
    delete node.dataset.empty;
  }
  const note = INCOMPLETE_NOTES[message.incomplete];
  if (note) {
    node.dataset.incomplete = message.incomplete;
    insertBeforeActions(node, make('div', 'message-note incomplete-note', note));
    delete node.dataset.empty; // a reply cut off before any text still says so
  }
  if (message.role === 'user') showQueued(node, id);
  const runId = message.run_id ? String(message.run_id) : '';
  if (message.role === 'assistant' && runId && state.lastReplies.get(runId) === id) {
    showRunDetails(node, state.runs.get(runId));
  }
}

// Notes go under the text, above the message's buttons and its error line.
function insertBeforeActions(node, child) {
  node.insertBefore(child, node.querySelector(':scope > .message-actions, :scope > .message-error'));
}

// A reply's thinking: collapsed, plain text, "Thinking…" while it is written.
function buildThinking(text, { streaming }) {
  const details = make('details', 'thinking');
  details.append(make('summary', 'thinking-summary', streaming ? 'Thinking…' : 'Thought'));
  details.append(make('div', 'thinking-text', text));
  if (streaming) details.dataset.streaming = 'true';
  return details;
}

function thinkingTextOf(node) {
  let details = node.querySelector(':scope > .thinking');
  if (!details) {
    details = buildThinking('', { streaming: true });
    node.querySelector(':scope > .message-body').before(details);
  }
  return details.querySelector('.thinking-text');
}

export function settleThinking(node) {
  const details = node.querySelector(':scope > .thinking[data-streaming="true"]');
  if (!details) return;
  delete details.dataset.streaming;
  details.querySelector('.thinking-summary').textContent = 'Thought';
}

// A reply rebuilt (once stored) keeps its thinking open if the user opened it, and the
// focus on its summary; called just before `old` is replaced by `fresh`.
export function keepThinkingOpen(old, fresh) {
  const details = fresh.querySelector(':scope > .thinking');
  const before = old.querySelector(':scope > .thinking');
  if (!details || !before) return;
  details.open = before.open;
  if (before.contains(document.activeElement)) {
    queueMicrotask(() => details.querySelector('summary').focus({ preventScroll: true }));
  }
}

// A token's text: of the reply's thinking (part "reasoning"), or of its answer.
export function appendDelta(node, frame) {
  const text = document.createTextNode(frame.delta);
  if (frame.part === 'reasoning') {
    thinkingTextOf(node).append(text);
    return;
  }
  settleThinking(node); // the answer has begun
  node.querySelector(':scope > .message-body').append(text);
}

// "Queued" on a user message whose reply waits for the turn ahead of it.
export function showQueued(node, messageId) {
  const queued = state.latestRuns.get(messageId)?.status === 'queued';
  const mark = node.querySelector(':scope > .queued-note');
  if (queued && !mark) insertBeforeActions(node, make('div', 'message-note queued-note', 'Queued'));
  if (!queued && mark) mark.remove();
  if (queued) node.dataset.queued = 'true';
  else delete node.dataset.queued;
}

// "openai:gpt-4.1-mini · 1,234 input · 56 output · 12 reasoning tokens": an ended run's
// model and token totals; '' while it runs or when neither is known.
function describeRun(run) {
  if (!run || OPEN_RUN.has(run.status)) return '';
  const parts = run.model ? [String(run.model)] : [];
  const usage = run.usage;
  if (usage) {
    const count = (n) => Number(n || 0).toLocaleString('en-US');
    const tokens = [`${count(usage.input_tokens)} input`, `${count(usage.output_tokens)} output`];
    if (usage.reasoning_tokens) tokens.push(`${count(usage.reasoning_tokens)} reasoning`);
    parts.push(...tokens.slice(0, -1), `${tokens[tokens.length - 1]} tokens`);
  }
  return parts.join(' · ');
}

// Quiet until the reply is hovered or holds the focus (messages.css).
export function showRunDetails(node, run) {
  node.querySelector('.reply-usage')?.remove();
  const text = describeRun(run);
  if (!text) return;
  let actions = node.querySelector(':scope > .message-actions');
  if (!actions) {
    actions = make('div', 'message-actions');
    node.insertBefore(actions, node.querySelector(':scope > .message-error'));
  }
  actions.append(make('span', 'reply-usage', text));
}
