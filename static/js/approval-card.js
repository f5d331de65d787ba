/* What an approval says, as the chat's card and the inbox's list item both show it: its
 * tool, status, arguments (edited ones beside the originals) and decision. */
import { capitalize, formatJSON, isPlainObject, make, timeElement, timeOf, uid } from './dom.js';
import { schemaProperties } from './schema-form.js';

const STATUS_TEXT = { pending: 'Pending', approved: 'Approved', rejected: 'Rejected', edited: 'Edited' };
const LONG_VALUE_CHARS = 400;

function statusText(status) {
  return STATUS_TEXT[status] || capitalize(status);
}

// The status as a chip; approval-card.css colours it by data-status.
export function statusChip(status) {
  const chip = make('span', 'card-status', statusText(status));
  chip.dataset.status = status;
  return chip;
}

export function isDecided(approval) {
  return !!approval && (approval.status || 'pending') !== 'pending';
}

// "Approved by alice · 14:02", "Rejected by alice · 14:02 — comment: …"
export function buildDecision(approval) {
  const p = make('p', 'approval-decision');
  const status = approval.status || '';
  let lead = statusText(status);
  if (approval.decided_by) lead += ` by ${approval.decided_by}`;
  p.append(document.createTextNode(lead));
  if (approval.decided_at && timeOf(approval.decided_at)) {
    p.append(document.createTextNode(' · '));
    p.append(timeElement(approval.decided_at, 'approval-decided-at'));
  }
  if (typeof approval.comment === 'string' && approval.comment.trim()) {
    p.append(document.createTextNode(' — comment: '));
    p.append(make('span', 'approval-comment', approval.comment));
  }
  return p;
}

function argKeys(args, schema) {
  const props = schemaProperties(schema);
  const keys = props ? Object.keys(props).filter((k) => Object.prototype.hasOwnProperty.call(args, k)) : [];
  for (const k of Object.keys(args)) if (!keys.includes(k)) keys.push(k);
  return keys;
}

function buildValue(value) {
  const dd = make('dd', 'arg-value');
  let text;
  if (value === null || value === undefined) {
    dd.classList.add('arg-empty');
    dd.textContent = 'none';
    return dd;
  }
  if (typeof value === 'object') {
    dd.classList.add('arg-object');
    text = formatJSON(value);
    const pre = make('pre', 'arg-json', text);
    if (text.length > LONG_VALUE_CHARS) pre.tabIndex = 0; // scrollable: keyboard reachable
    dd.append(pre);
    return dd;
  }
  if (typeof value === 'string') {
    dd.classList.add('arg-text');
    if (!value) {
      dd.classList.add('arg-empty');
      dd.textContent = '(empty)';
      return dd;
    }
    dd.textContent = value;
    if (value.length > LONG_VALUE_CHARS || value.split('\n').length > 10) {
      dd.classList.add('arg-long');
      dd.tabIndex = 0;
    }
    return dd;
  }
  dd.textContent = String(value);
  return dd;
}

function buildArgs(label, args, schema, { compareTo, className } = {}) {
  const wrap = make('div', `card-field ${className || ''}`.trim());
  const labelId = uid('args-label');
  const heading = make('div', 'card-label', label);
  heading.id = labelId;
  wrap.append(heading);
  if (!isPlainObject(args)) {
    const pre = make('pre', 'card-args', formatJSON(args));
    wrap.append(pre);
    return wrap;
  }
  const dl = make('dl', 'approval-args');
  dl.setAttribute('aria-labelledby', labelId);
  const keys = argKeys(args, schema);
  if (!keys.length) {
    wrap.append(make('p', 'approval-args-none', 'No arguments.'));
    return wrap;
  }
  for (const key of keys) {
    const row = make('div', 'arg');
    row.dataset.arg = key;
    const dt = make('dt', 'arg-name', key);
    const changed = compareTo && JSON.stringify(compareTo[key]) !== JSON.stringify(args[key]);
    if (changed) {
      row.classList.add('arg-changed');
      dt.append(make('span', 'arg-changed-mark', ' (changed)'));
    }
    row.append(dt, buildValue(args[key]));
    dl.append(row);
  }
  wrap.append(dl);
  return wrap;
}

export function buildApprovalHead(approval) {
  const head = make('div', 'card-head');
  head.id = uid('approval-head');
  head.append(make('span', 'card-kind', 'Approval'));
  head.append(make('strong', 'card-name approval-tool', approval.tool || 'tool'));
  head.append(statusChip(approval.status || 'pending'));
  return head;
}

export function buildApprovalBody(approval) {
  const body = make('div', 'approval-body');
  if (approval.description) body.append(make('p', 'card-description', approval.description));
  const args = approval.args === undefined || approval.args === null ? {} : approval.args;
  const edited = approval.edited_args;
  if (edited !== undefined && edited !== null) {
    body.append(buildArgs('Original arguments', args, approval.args_schema, { className: 'approval-original' }));
    body.append(
      buildArgs('Edited arguments', edited, approval.args_schema, {
        className: 'approval-edited',
        compareTo: isPlainObject(args) ? args : undefined,
      }),
    );
  } else {
    body.append(buildArgs('Arguments', args, approval.args_schema));
  }
  if (isDecided(approval)) body.append(buildDecision(approval));
  return body;
}

export function allowedOf(approval) {
  return Array.isArray(approval.allowed) ? approval.allowed.map(String) : ['approve', 'reject'];
}
