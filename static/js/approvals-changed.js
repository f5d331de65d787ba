/* The news that the user's pending approvals may have changed, which nav.js shows as the
 * top bar's count: a document event, so a page tells it without importing it. */

const APPROVALS_CHANGED = 'approvals:changed';

// `count`, when the page knows it (the inbox's pending list), saves nav.js a request.
export function announceApprovalsChanged(count) {
  const detail = typeof count === 'number' ? { count } : undefined;
  document.dispatchEvent(new CustomEvent(APPROVALS_CHANGED, { detail }));
}

export function onApprovalsChanged(listener) {
  document.addEventListener(APPROVALS_CHANGED, (event) => listener(event.detail ? event.detail.count : undefined));
}
