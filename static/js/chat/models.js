/* The model picker, shown when GET /api/models/ offers more than one model: the open
 * conversation's model, changed with PATCH; for a new chat, the model its POST asks for. */
import { clearNotice, showNotice } from './notices.js';
import { on, setConversationModel, state } from './store.js';
import { byId, make } from '../dom.js';
import { api } from '../http.js';

const picker = { wrap: byId('model-choice'), select: byId('model-picker'), offlineNotice: byId('offline-model-notice') };

let models = null; // {default, ids}
let newChatModel = ''; // the model chosen before the conversation exists
let modelRequest = 0;

// What a new chat's POST asks for: {model} once one is chosen, else {} (the server's default).
export function newChatModelChoice() {
  return newChatModel ? { model: newChatModel } : {};
}

export async function loadModels() {
  let data;
  try {
    data = await api('GET', '/api/models/');
  } catch (_) {
    return; // no picker: each conversation keeps its model
  }
  const ids = data && Array.isArray(data.models) ? data.models.map((m) => String(m && m.id)) : [];
  models = { default: String((data && data.default) || ids[0] || ''), ids };
  picker.select.replaceChildren(...ids.map((id) => {
    const option = make('option', '', id);
    option.value = id;
    return option;
  }));
  picker.wrap.hidden = ids.length < 2;
  syncModel();
}

// The model that answers here: the open conversation's (once known), or the new chat's.
function currentModel() {
  if (state.conversationId) return state.conversation && state.conversation.model ? String(state.conversation.model) : '';
  return newChatModel || (models ? models.default : '');
}

function syncModel() {
  const model = currentModel();
  if (!model) return;
  if (models && models.ids.includes(model)) picker.select.value = model;
  if (picker.offlineNotice) picker.offlineNotice.hidden = model !== 'offline';
}

async function chooseModel() {
  const model = picker.select.value;
  const id = state.conversationId;
  if (!id) {
    newChatModel = model;
    syncModel();
    return;
  }
  const request = ++modelRequest;
  try {
    const updated = await api('PATCH', `/api/conversations/${encodeURIComponent(id)}/`, { model });
    if (updated) setConversationModel(id, updated.model);
    clearNotice('model-failed');
  } catch (err) {
    if (err.status !== 401) showNotice(`Could not change the model: ${err.message}`, { key: 'model-failed' });
  }
  if (request === modelRequest && id === state.conversationId) syncModel();
}

export function initModelPicker() {
  on('opened', syncModel);
  on('conversation', syncModel);
  picker.select.addEventListener('change', () => chooseModel());
}
