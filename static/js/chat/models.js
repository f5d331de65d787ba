/* The model picker, shown when GET /api/models/ offers more than one model: the open
 * conversation's model, changed with PATCH; for a new chat, the model its POST asks for. */
import { clearNotice, showNotice } from './notices.js';
import { findConversation } from './sidebar.js';
import { state } from './store.js';
import { byId, make } from '../dom.js';
import { api } from '../http.js';

const picker = { wrap: byId('model-choice'), select: byId('model-picker'), offlineNotice: byId('offline-model-notice') };

export async function loadModels() {
  let data;
  try {
    data = await api('GET', '/api/models/');
  } catch (_) {
    return; // no picker: each conversation keeps its model
  }
  const ids = data && Array.isArray(data.models) ? data.models.map((m) => String(m && m.id)) : [];
  state.models = { default: String((data && data.default) || ids[0] || ''), ids };
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
  return state.newChatModel || (state.models ? state.models.default : '');
}

export function syncModel() {
  const model = currentModel();
  if (!model) return;
  if (state.models && state.models.ids.includes(model)) picker.select.value = model;
  if (picker.offlineNotice) picker.offlineNotice.hidden = model !== 'offline';
}

async function chooseModel() {
  const model = picker.select.value;
  const id = state.conversationId;
  if (!id) {
    state.newChatModel = model;
    syncModel();
    return;
  }
  const request = ++state.modelRequest;
  try {
    const updated = await api('PATCH', `/api/conversations/${encodeURIComponent(id)}/`, { model });
    // Only the model: the answer lacks the run status and approvals the sidebar shows.
    for (const conv of [state.conversation, findConversation(id)]) {
      if (conv && String(conv.id) === id && updated) conv.model = updated.model;
    }
    clearNotice('model-failed');
  } catch (err) {
    if (err.status !== 401) showNotice(`Could not change the model: ${err.message}`, { key: 'model-failed' });
  }
  if (request === state.modelRequest && id === state.conversationId) syncModel();
}

export function initModelPicker() {
  picker.select.addEventListener('change', () => chooseModel());
}
