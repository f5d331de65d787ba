/* A tool call's card: its name, status, arguments and result. */
import { el } from './elements.js';
import { scheduleScroll } from './scroll.js';
import { turnOfRun } from './store.js';
import { placeItem, setTurn } from './turns.js';
import { formatJSON, make } from '../dom.js';

function cardField(label, value, className) {
  const wrap = make('div', 'card-field');
  wrap.append(make('div', 'card-label', label));
  const pre = make('pre', className, value);
  wrap.append(pre);
  return wrap;
}

// A tool stopped with its run and not finished in time: nobody knows whether it acted.
const TOOL_STATUS_TEXT = { unknown: 'Outcome unknown' };

export function upsertTool(frame) {
  const id = String(frame.tool_call_id || `${frame.run_id}-${frame.name}`);
  const card = make('div', 'card tool-card');
  card.dataset.toolCallId = id;
  card.dataset.status = frame.status || 'started';
  card.setAttribute('role', 'group');
  card.setAttribute('aria-label', `Tool ${frame.name || ''}`);

  const head = make('div', 'card-head');
  head.append(make('span', 'card-kind', 'Tool'));
  head.append(make('strong', 'card-name', frame.name || 'tool'));
  head.append(make('span', 'card-status', TOOL_STATUS_TEXT[frame.status] || frame.status || 'started'));
  card.append(head);
  setTurn(card, turnOfRun(frame.run_id));

  const old = el.messages.querySelector(`.tool-card[data-tool-call-id="${CSS.escape(id)}"]`);
  const args = frame.args !== undefined ? frame.args : old && old._args;
  if (args !== undefined) card.append(cardField('Arguments', formatJSON(args), 'card-args'));
  card._args = args;
  if (frame.result !== undefined && frame.result !== null) {
    card.append(cardField('Result', formatJSON(frame.result), 'card-result'));
  }
  if (old) old.replaceWith(card);
  else placeItem(card);
  scheduleScroll();
}
