/* The composer: its text and counter, Send and Stop, and a new chat's first message. */
import { navigate } from './conversation.js';
import { el } from './elements.js';
import { charCount, frameTooLarge, MAX_CHARS } from './limits.js';
import { newChatModelChoice } from './models.js';
import { clearNotice, showNotice } from './notices.js';
import { enqueue } from './outbox.js';
import { cancelRun } from './runs.js';
import { stickToBottom } from './scroll.js';
import { on, runIsActive, state, upsertConversation } from './store.js';
import { uuid } from '../dom.js';
import { api } from '../http.js';

const COUNTER_FROM = 30000;

let creating = false; // a new chat's POST is unanswered

// A new chat's title: the first line of its first message.
function titleFromMessage(content) {
  const line = content.split('\n').map((s) => s.trim()).find(Boolean) || '';
  return line.length > 60 ? line.slice(0, 57).trimEnd() + '…' : line;
}

function composerContent() {
  return el.composer.value.trim();
}

export function updateComposerState() {
  const content = composerContent();
  const count = charCount(content);
  const over = count > MAX_CHARS;
  if (count >= COUNTER_FROM) {
    el.counter.hidden = false;
    el.counter.textContent = `${count.toLocaleString('en-US')} / ${MAX_CHARS.toLocaleString('en-US')}`;
    el.counter.dataset.over = over ? 'true' : 'false';
  } else {
    el.counter.hidden = true;
    el.counter.textContent = '';
    delete el.counter.dataset.over;
  }
  el.composer.setAttribute('aria-invalid', over ? 'true' : 'false');
  el.send.disabled = !content || over || state.notFound || creating;
}

export function autosize() {
  // Prefer CSS `field-sizing: content`; fall back to measuring (CSSOM, CSP-safe).
  if (CSS.supports && CSS.supports('field-sizing', 'content')) return;
  el.composer.style.height = 'auto';
  el.composer.style.height = `${el.composer.scrollHeight + 2}px`;
}

// What the page allows changed (store.js, topic 'controls'): Send or Stop.
function updateControls() {
  const running = runIsActive();
  const focusWasSend = document.activeElement === el.send;
  const focusWasStop = document.activeElement === el.stop;
  el.send.hidden = running;
  el.stop.hidden = !running;
  el.stop.disabled = !!(running && state.cancelling === state.activeRun.id);
  if (running && focusWasSend) el.stop.focus();
  if (!running && focusWasStop) el.composer.focus();
  el.app.dataset.runStatus = state.activeRun ? state.activeRun.status : '';
  el.composer.disabled = state.notFound;
  updateComposerState();
}

// A message.send the server refused: its text back in an empty composer.
export function giveBack(content) {
  if (el.composer.value.trim()) return;
  el.composer.value = content;
  autosize();
  updateComposerState();
}

function submitComposer() {
  const content = composerContent();
  if (!content || state.notFound || creating) return;
  if (runIsActive()) return;
  if (charCount(content) > MAX_CHARS) {
    showNotice(`Your message is too long: the limit is ${MAX_CHARS.toLocaleString('en-US')} characters.`, { key: 'too-long' });
    return;
  }
  if (frameTooLarge({ type: 'message.send', content, client_id: uuid() })) {
    showNotice('Your message is too large to send (64 KiB limit). Please shorten it.', { key: 'too-long' });
    return;
  }
  clearNotice('too-long');
  el.composer.value = '';
  autosize();
  updateComposerState();
  stickToBottom();
  if (!state.conversationId) {
    createAndSend(content);
  } else {
    enqueue(state.conversationId, content);
  }
}

async function createAndSend(content) {
  creating = true;
  updateComposerState();
  let conv;
  try {
    conv = await api('POST', '/api/conversations/', { title: titleFromMessage(content), ...newChatModelChoice() });
  } catch (err) {
    creating = false;
    if (!el.composer.value) {
      el.composer.value = content;
      autosize();
    }
    updateComposerState();
    if (err.status !== 401) showNotice(`Could not start a conversation: ${err.message}`, { key: 'create-failed' });
    return;
  }
  creating = false;
  clearNotice('create-failed');
  upsertConversation(conv, { toTop: true });
  navigate(String(conv.id));
  enqueue(String(conv.id), content);
  el.composer.focus();
}

export function initComposer() {
  on('controls', updateControls);
  el.form.addEventListener('submit', (e) => {
    e.preventDefault();
    submitComposer();
  });

  el.composer.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      if (runIsActive()) return;
      submitComposer();
    }
  });
  el.composer.addEventListener('input', () => {
    autosize();
    updateComposerState();
  });

  el.stop.addEventListener('click', () => cancelRun());
}
