/* The approvals of the conversation shown: their cards (approval-card.js) with Approve,
 * Reject and Edit, the decision sent and its answer awaited, and #approval-<id> links. */
import { el } from './elements.js';
import { frameTooLarge } from './limits.js';
import { showNotice } from './notices.js';
import { hasOlder, loadOlderUntil } from './older.js';
import { scheduleScroll, unstick } from './scroll.js';
import { sendFrame } from './socket.js';
import { on, recordApproval, setLastSent, state, turnOfRun } from './store.js';
import { placeItem, setTurn } from './turns.js';
import { allowedOf, buildApprovalBody, buildApprovalHead, isDecided } from '../approval-card.js';
import { button, make, microsOf, uid } from '../dom.js';
import { approvalIdFromHash } from '../links.js';
import { buildEditForm } from '../schema-form.js';

const DECISION_TIMEOUT_MS = 20000;

const deciding = new Map(); // approval id -> {decision, timer}: a decision in flight
let revealId = ''; // approval id from #approval-<id>, to scroll to once shown

function findApprovalCard(id) {
  return el.messages.querySelector(`.approval-card[data-approval-id="${CSS.escape(id)}"]`);
}

/**
 * Show an approval: a new card, or the existing one updated in place, in its run's turn.
 * place: 'append' (a live frame: it happens now, last of its turn) or 'time' (snapshot,
 * history: among its turn's items by created_at). kept: cards of a list redrawn (keptCards).
 */
export function upsertApproval(approval, { place = 'append', kept = null } = {}) {
  if (!approval || approval.id === undefined || approval.id === null) return;
  if (!recordApproval(approval)) return;
  const id = String(approval.id);

  let card = findApprovalCard(id);
  if (!card && kept) card = kept.get(id) || null;
  if (!card) {
    card = make('div', 'card approval-card');
    card.dataset.approvalId = id;
    card.tabIndex = -1;
    card.setAttribute('role', 'group');
  }
  if (!card.isConnected) {
    const created = microsOf(approval.created_at);
    // An approval of a run not shown (another version's) is placed by its own time.
    setTurn(card, turnOfRun(approval.run_id) || created);
    placeItem(card, place === 'time' ? created : 0);
  }
  renderApprovalCard(card, approval, id);
  scheduleScroll();
}

// The cards shown, to be kept (an open edit form, a typed comment) when a snapshot redraws them.
export function keptCards() {
  const kept = new Map();
  for (const card of el.messages.querySelectorAll('.approval-card')) kept.set(card.dataset.approvalId, card);
  return kept;
}

// A snapshot's approvals, oldest first, each among its turn's items by its time.
export function showApprovals(approvals, kept) {
  for (const a of approvals) upsertApproval(a, { place: 'time', kept });
}

function renderApprovalCard(card, approval, id) {
  const status = approval.status || 'pending';
  const hadFocus = card.contains(document.activeElement) && document.activeElement !== card;
  card.id = `approval-${id}`;
  card.dataset.status = status;
  card.dataset.tool = approval.tool || '';

  const head = buildApprovalHead(approval);
  const oldHead = card.querySelector(':scope > .card-head');
  if (oldHead) oldHead.replaceWith(head);
  else card.prepend(head);
  card.setAttribute('aria-labelledby', head.id);

  const body = buildApprovalBody(approval);
  const oldBody = card.querySelector(':scope > .approval-body');
  if (oldBody) oldBody.replaceWith(body);
  else head.after(body);

  let error = card.querySelector(':scope > .card-error');
  if (!error) {
    error = make('p', 'card-error');
    error.setAttribute('role', 'alert');
    error.hidden = true;
    body.after(error);
  }

  const allowed = allowedOf(approval).filter((d) => ['approve', 'reject', 'edit'].includes(d));
  let controls = card.querySelector(':scope > .approval-controls');
  if (status === 'pending' && allowed.length) {
    const key = allowed.join(',');
    if (!controls || controls.dataset.allowed !== key) {
      const fresh = buildControls(card, approval, id, allowed);
      if (controls) controls.replaceWith(fresh);
      else card.append(fresh);
      controls = fresh;
    }
    setCardBusy(card, deciding.has(id));
  } else {
    const mine = deciding.get(id);
    if (mine) {
      clearTimeout(mine.timer);
      deciding.delete(id);
      hideCardError(card); // our decision went through
    }
    delete card.dataset.deciding;
    card.removeAttribute('aria-busy');
    if (controls) {
      const focusInside = controls.contains(document.activeElement);
      controls.remove();
      if (focusInside) card.focus({ preventScroll: true });
    }
  }
  if (hadFocus && !card.contains(document.activeElement)) card.focus({ preventScroll: true });
}

function showCardError(card, text) {
  const error = card.querySelector(':scope > .card-error');
  if (!error) return;
  error.textContent = text;
  error.hidden = false;
}

function hideCardError(card) {
  const error = card.querySelector(':scope > .card-error');
  if (!error) return;
  error.textContent = '';
  error.hidden = true;
}

function setCardBusy(card, busy) {
  const controls = card.querySelector(':scope > .approval-controls');
  if (busy) {
    if (controls && controls.contains(document.activeElement)) card.focus({ preventScroll: true });
    card.dataset.deciding = deciding.get(card.dataset.approvalId)?.decision || 'true';
    card.setAttribute('aria-busy', 'true');
  } else {
    delete card.dataset.deciding;
    card.removeAttribute('aria-busy');
  }
  if (!controls) return;
  for (const b of controls.querySelectorAll('button')) b.disabled = busy;
  const progress = controls.querySelector('.approval-progress');
  if (progress) progress.hidden = !busy;
}

function buildControls(card, approval, id, allowed) {
  const controls = make('div', 'approval-controls');
  controls.dataset.allowed = allowed.join(',');
  const actions = make('div', 'card-actions');
  controls.append(actions);

  let rejectPanel = null;
  let editForm = null;
  let rejectBtn = null;
  let editBtn = null;

  const closePanels = (except) => {
    if (rejectPanel && except !== rejectPanel) {
      rejectPanel.hidden = true;
      rejectBtn.setAttribute('aria-expanded', 'false');
    }
    if (editForm && except !== editForm) {
      editForm.hidden = true;
      editBtn.setAttribute('aria-expanded', 'false');
    }
  };

  if (allowed.includes('approve')) {
    const ok = button('btn btn-primary btn-small approve-btn', 'Approve');
    ok.addEventListener('click', () => {
      closePanels(null);
      decide(id, 'approve');
    });
    actions.append(ok);
  }

  if (allowed.includes('reject')) {
    rejectBtn = button('btn btn-danger btn-small reject-btn', 'Reject');
    rejectPanel = make('div', 'reject-panel');
    rejectPanel.id = uid('reject-panel');
    rejectPanel.hidden = true;
    rejectBtn.setAttribute('aria-expanded', 'false');
    rejectBtn.setAttribute('aria-controls', rejectPanel.id);

    const commentId = uid('reject-comment');
    const label = make('label', 'field-label', 'Reason (optional)');
    label.htmlFor = commentId;
    const comment = make('textarea', 'field-input reject-comment');
    comment.id = commentId;
    comment.rows = 2;
    comment.maxLength = 2000;
    comment.placeholder = 'Tell the assistant why (optional)';
    const row = make('div', 'card-actions');
    const confirm = button('btn btn-danger btn-small confirm-reject-btn', 'Confirm reject');
    const cancel = button('btn btn-quiet btn-small cancel-reject-btn', 'Cancel');
    row.append(confirm, cancel);
    rejectPanel.append(label, comment, row);

    rejectBtn.addEventListener('click', () => {
      const open = rejectPanel.hidden;
      closePanels(rejectPanel);
      rejectPanel.hidden = !open;
      rejectBtn.setAttribute('aria-expanded', open ? 'true' : 'false');
      if (open) comment.focus();
    });
    const doReject = () => {
      const text = comment.value.trim();
      decide(id, 'reject', text ? { comment: text } : {});
    };
    confirm.addEventListener('click', doReject);
    cancel.addEventListener('click', () => {
      rejectPanel.hidden = true;
      rejectBtn.setAttribute('aria-expanded', 'false');
      rejectBtn.focus();
    });
    comment.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        if (!confirm.disabled) doReject();
      } else if (e.key === 'Escape') {
        e.preventDefault();
        cancel.click();
      }
    });
    actions.append(rejectBtn);
  }

  if (allowed.includes('edit')) {
    editBtn = button('btn btn-small edit-btn', 'Edit');
    editForm = buildEditForm(approval, {
      busy: () => deciding.has(id),
      onSubmit: (edit) => decide(id, 'edit', edit),
      onCancel: () => {
        editForm.hidden = true;
        editBtn.setAttribute('aria-expanded', 'false');
        editBtn.focus();
      },
    });
    editForm.id = uid('edit-form');
    editForm.hidden = true;
    editBtn.setAttribute('aria-expanded', 'false');
    editBtn.setAttribute('aria-controls', editForm.id);
    editBtn.addEventListener('click', () => {
      const open = editForm.hidden;
      closePanels(editForm);
      editForm.hidden = !open;
      editBtn.setAttribute('aria-expanded', open ? 'true' : 'false');
      if (open) {
        const first = editForm.querySelector('input, textarea, select');
        if (first) first.focus();
      }
    });
    actions.append(editBtn);
  }

  const progress = make('span', 'approval-progress', 'Sending your decision…');
  progress.setAttribute('role', 'status');
  progress.hidden = true;
  actions.append(progress);

  if (rejectPanel) controls.append(rejectPanel);
  if (editForm) controls.append(editForm);
  return controls;
}

function decide(id, decision, extra = {}) {
  if (deciding.has(id)) return; // a double click sends one frame
  const approval = state.approvals.get(id);
  const card = findApprovalCard(id);
  if (!approval || !card || isDecided(approval)) return;
  hideCardError(card);
  const frame = { type: 'approval.decide', approval_id: String(approval.id), decision, ...extra };
  if (frameTooLarge(frame)) {
    showCardError(card, 'Your edit is too large to send (64 KiB limit). Please shorten it.');
    return;
  }
  if (!sendFrame(frame)) {
    showCardError(card, 'Not connected. Your decision was not sent; try again when the connection is back.');
    return;
  }
  const timer = setTimeout(() => {
    if (!deciding.has(id)) return;
    failDecision(id, 'No answer from the server yet. Your decision may not have arrived; you can try again.');
  }, DECISION_TIMEOUT_MS);
  deciding.set(id, { decision, timer });
  setLastSent({ type: 'approval.decide', approvalId: id });
  setCardBusy(card, true);
}

export function isDeciding(id) {
  return deciding.has(id);
}

export function failDecision(id, text) {
  const entry = deciding.get(id);
  if (entry) clearTimeout(entry.timer);
  deciding.delete(id);
  const card = findApprovalCard(id);
  if (!card) {
    if (text) showNotice(text, { kind: 'error' });
    return;
  }
  setCardBusy(card, false);
  if (text) showCardError(card, text);
}

export function resetDecisions() {
  for (const [id, entry] of deciding) {
    clearTimeout(entry.timer);
    const card = findApprovalCard(id);
    deciding.delete(id);
    if (card) setCardBusy(card, false);
  }
}

// A conversation opened: the approval of the URL's #approval-<id> is shown once it comes.
function revealFromHash() {
  revealId = approvalIdFromHash(location.hash);
}

export function revealHashedApproval() {
  const id = revealId;
  if (!id) return;
  const card = findApprovalCard(id);
  if (!card) {
    // Decided long ago: its card comes with an older page.
    if (hasOlder()) {
      loadOlderUntil(() => findApprovalCard(id)).then((found) => {
        if (found) revealHashedApproval();
        else if (!hasOlder() && revealId === id) revealId = ''; // not here
      });
    }
    return;
  }
  revealId = '';
  unstick();
  requestAnimationFrame(() => {
    if (!card.isConnected) return;
    card.scrollIntoView({ block: 'center' });
    card.focus({ preventScroll: true });
    card.classList.add('approval-highlight');
    setTimeout(() => card.classList.remove('approval-highlight'), 2500);
  });
}

function jumpToPendingApproval() {
  for (const card of el.messages.querySelectorAll('.approval-card[data-status="pending"]')) {
    unstick();
    card.scrollIntoView({ block: 'center' });
    const first = card.querySelector('.approve-btn, .reject-btn, .edit-btn');
    (first && !first.disabled ? first : card).focus({ preventScroll: true });
    return;
  }
}

export function initApprovals() {
  on('opened', () => {
    resetDecisions();
    revealFromHash();
  });
  // After the older messages (messages.js listens first): approvals go among them by time.
  on('older', ({ approvals }) => {
    for (const a of approvals) upsertApproval(a, { place: 'time' });
  });
  window.addEventListener('hashchange', () => {
    const id = approvalIdFromHash(location.hash);
    if (!id) return;
    revealId = id;
    revealHashedApproval();
  });

  if (el.waitingJump) el.waitingJump.addEventListener('click', () => jumpToPendingApproval());
}
