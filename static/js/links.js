/* Where the app's pages are, and what a conversation is called, as the chat and the
 * approvals inbox both show them (the URLs of docs/protocol.md, "Pages"). */

export function conversationPath(id) {
  return id ? `/c/${encodeURIComponent(id)}/` : '/';
}

// An approval's card in its conversation: the chat scrolls to #approval-<id>.
export function approvalPath(conversationId, approvalId) {
  return `${conversationPath(conversationId)}#approval-${encodeURIComponent(approvalId)}`;
}

// The approval id of a location's hash (#approval-<id>), '' if it names none.
export function approvalIdFromHash(hash) {
  const m = /^#approval-(.+)$/.exec(hash || '');
  if (!m) return '';
  try {
    return decodeURIComponent(m[1]);
  } catch (_) {
    return m[1];
  }
}

export function displayTitle(conv) {
  const t = conv && typeof conv.title === 'string' ? conv.title.trim() : '';
  return t || 'New chat';
}
