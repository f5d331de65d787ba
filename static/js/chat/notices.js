/* Notices above the composer: errors and news that belong to no message. A notice with a
 * key is replaced, not repeated; a global one outlives a change of conversation. */
import { el } from './elements.js';
import { button, make } from '../dom.js';

export function showNotice(text, { kind = 'error', key = '', global = false } = {}) {
  if (key) {
    const existing = el.notices.querySelector(`.notice[data-key="${CSS.escape(key)}"]`);
    if (existing) {
      existing.querySelector('.notice-text').textContent = text;
      return existing;
    }
  }
  const notice = make('div', `notice ${kind}`);
  notice.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  notice.dataset.kind = kind;
  if (key) notice.dataset.key = key;
  if (global) notice.dataset.global = 'true';
  const span = make('span', 'notice-text', text);
  const dismiss = button('notice-dismiss', 'Dismiss', { ariaOnly: true });
  dismiss.textContent = '×';
  dismiss.addEventListener('click', () => {
    const focusComposer = notice.contains(document.activeElement);
    notice.remove();
    if (focusComposer) el.composer.focus();
  });
  notice.append(span, dismiss);
  el.notices.append(notice);
  return notice;
}

export function clearNotice(key) {
  const n = el.notices.querySelector(`.notice[data-key="${CSS.escape(key)}"]`);
  if (n) n.remove();
}

export function clearConversationNotices() {
  for (const n of Array.from(el.notices.children)) {
    if (n.dataset.global !== 'true') n.remove();
  }
}
