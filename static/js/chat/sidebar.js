/* The sidebar: the conversation list by date (search, paging, rename, delete) and, on a
 * phone, the drawer that holds it. */
import { el } from './elements.js';
import { clearNotice, showNotice } from './notices.js';
import { dropOutbox } from './outbox.js';
import {
  ACTIVE_RUN, findConversation, learnConversationPage, on, removeConversation, setConversationTitle, setQuery, state,
  upsertConversation,
} from './store.js';
import { button, make, timeOf } from '../dom.js';
import { api } from '../http.js';
import { conversationPath, displayTitle } from '../links.js';

const SEARCH_DEBOUNCE_MS = 250;

// The list's paging and the conversation being renamed; the list itself is the store's.
let nextCursor = null;
let listRequest = 0;
let loadingMore = false;
let renamingId = null;
// Opens a conversation (conversation.js's navigate), set by initSidebar.
let open = null;

function groupOf(iso, now) {
  const t = timeOf(iso);
  const startToday = new Date(now.getFullYear(), now.getMonth(), now.getDate()).getTime();
  const day = 24 * 60 * 60 * 1000;
  if (t >= startToday) return 'today';
  if (t >= startToday - day) return 'yesterday';
  if (t >= startToday - 7 * day) return 'week';
  return 'older';
}

const GROUPS = [
  ['today', 'Today'],
  ['yesterday', 'Yesterday'],
  ['week', 'Previous 7 days'],
  ['older', 'Older'],
];

function statusOf(conv) {
  if (conv.run_status === 'waiting' || (conv.pending_approvals || 0) > 0) return 'waiting';
  if (ACTIVE_RUN.has(conv.run_status)) return 'running';
  return '';
}

// Also on every change of the list (store.js, topic 'conversations').
export function renderSidebar() {
  if (renamingId) return; // the rename's end draws the list
  const hadFocus = el.groups.contains(document.activeElement) ? describeFocus(document.activeElement) : null;

  const sorted = state.conversations
    .map((c, i) => [c, i])
    .sort((a, b) => timeOf(b[0].updated_at) - timeOf(a[0].updated_at) || a[1] - b[1])
    .map(([c]) => c);
  const now = new Date();
  const buckets = new Map(GROUPS.map(([key]) => [key, []]));
  for (const c of sorted) buckets.get(groupOf(c.updated_at, now)).push(c);

  const sections = [];
  for (const [key, label] of GROUPS) {
    const items = buckets.get(key);
    if (!items.length) continue;
    const group = groupElements(key, label);
    setChildren(group.list, items.map(itemElement));
    sections.push(group.section);
  }
  setChildren(el.groups, sections);
  const listed = new Set(state.conversations.map((c) => String(c.id)));
  for (const id of drawnItems.keys()) if (!listed.has(id)) drawnItems.delete(id);

  if (!state.conversations.length && state.listLoaded) {
    el.listEmpty.hidden = false;
    el.listEmpty.textContent = state.query ? 'No conversations match your search.' : 'No conversations yet. Send a message to start one.';
  } else {
    el.listEmpty.hidden = true;
  }
  el.loadMore.hidden = !nextCursor;
  if (hadFocus) restoreFocus(hadFocus);
}

// The sidebar's elements as last drawn. A conversation that looks as it did keeps its
// element, so a frame about one conversation redraws only that one, and the keyboard
// focus, hover and a screen reader's place elsewhere in the list are left alone.
const drawnItems = new Map(); // conversation id -> { look, li }
const drawnGroups = new Map(); // group key -> { section, list }

function itemElement(conv) {
  const id = String(conv.id);
  const look = JSON.stringify([statusOf(conv), conv.run_status || '', id === state.conversationId, displayTitle(conv)]);
  const drawn = drawnItems.get(id);
  if (drawn && drawn.look === look) return drawn.li;
  const li = buildItem(conv);
  drawnItems.set(id, { look, li });
  return li;
}

function groupElements(key, label) {
  let group = drawnGroups.get(key);
  if (!group) {
    const section = make('section', 'conversation-group');
    section.dataset.group = key;
    const heading = make('h2', 'conversation-group-title', label);
    heading.id = `group-${key}`;
    const list = make('ul', 'conversation-items');
    list.setAttribute('aria-labelledby', heading.id);
    section.append(heading, list);
    group = { section, list };
    drawnGroups.set(key, group);
  }
  return group;
}

// Makes nodes the children of parent, in order, moving only what has to move.
function setChildren(parent, nodes) {
  const wanted = new Set(nodes);
  for (const child of [...parent.children]) if (!wanted.has(child)) child.remove();
  nodes.forEach((node, i) => {
    const here = parent.children[i];
    if (here !== node) parent.insertBefore(node, here || null);
  });
}

function describeFocus(node) {
  const item = node.closest('.conversation-item');
  if (!item) return null;
  const cls = ['conversation-link', 'rename-conversation', 'delete-conversation'].find((c) => node.classList.contains(c));
  return { id: item.dataset.conversationId, cls };
}

function restoreFocus(desc) {
  const item = el.groups.querySelector(`.conversation-item[data-conversation-id="${CSS.escape(desc.id)}"]`);
  const target = item && desc.cls ? item.querySelector(`.${desc.cls}`) : null;
  if (target) target.focus();
}

function buildItem(conv) {
  const id = String(conv.id);
  const li = make('li', 'conversation-item');
  li.dataset.conversationId = id;
  const status = statusOf(conv);
  li.dataset.runStatus = conv.run_status || '';
  if (status) li.dataset.status = status;
  const active = id === state.conversationId;
  if (active) li.classList.add('active');

  if (renamingId === id) {
    const label = make('label', 'visually-hidden', 'Conversation title');
    const input = make('input', 'rename-input');
    input.type = 'text';
    input.id = `rename-${id}`;
    label.htmlFor = input.id;
    input.value = conv.title || '';
    input.maxLength = 200;
    input.dataset.conversationId = id;
    li.append(label, input);
    return li;
  }

  const link = make('a', 'conversation-link');
  link.href = conversationPath(id);
  if (active) link.setAttribute('aria-current', 'page');
  link.append(make('span', 'conversation-title', displayTitle(conv)));
  if (status) {
    const s = make('span', 'conversation-status', status === 'running' ? 'Running' : 'Waiting');
    s.dataset.status = status;
    link.append(s);
  }
  li.append(link);

  const actions = make('div', 'conversation-actions');
  const rename = button('icon-btn rename-conversation', `Rename “${displayTitle(conv)}”`, { ariaOnly: true });
  rename.append(make('span', 'icon icon-rename'));
  const del = button('icon-btn delete-conversation', `Delete “${displayTitle(conv)}”`, { ariaOnly: true });
  del.append(make('span', 'icon icon-delete'));
  actions.append(rename, del);
  li.append(actions);
  return li;
}

function listUrl(cursor) {
  if (cursor && (cursor.startsWith('/') || /^https?:/.test(cursor))) return cursor;
  const params = new URLSearchParams();
  params.set('q', state.query);
  if (cursor) params.set('cursor', cursor);
  return `/api/conversations/?${params.toString()}`;
}

export async function loadConversations({ reset }) {
  if (!reset && (loadingMore || !nextCursor)) return;
  const req = ++listRequest;
  loadingMore = !reset;
  el.list.setAttribute('aria-busy', 'true');
  el.loadMore.disabled = true;
  try {
    const data = await api('GET', listUrl(reset ? null : nextCursor));
    if (req !== listRequest) return;
    const results = data && Array.isArray(data.results) ? data.results : [];
    nextCursor = data && data.next ? String(data.next) : null;
    clearNotice('list-failed');
    learnConversationPage(results, { reset });
  } catch (err) {
    if (req !== listRequest) return;
    if (err.status !== 401) showNotice(`Could not load conversations: ${err.message}`, { key: 'list-failed', global: true });
  } finally {
    if (req === listRequest) {
      loadingMore = false;
      el.list.setAttribute('aria-busy', 'false');
      el.loadMore.disabled = false;
    }
  }
}

function startRename(id) {
  if (renamingId && renamingId !== id) return;
  renamingId = null;
  renderSidebar();
  renamingId = id;
  const li = el.groups.querySelector(`.conversation-item[data-conversation-id="${CSS.escape(id)}"]`);
  if (!li) {
    renamingId = null;
    return;
  }
  li.replaceWith(buildItem(findConversation(id)));
  const input = el.groups.querySelector(`.rename-input[data-conversation-id="${CSS.escape(id)}"]`);
  if (!input) return;
  input.focus();
  input.select();
  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    const conv = findConversation(id);
    const title = input.value.trim();
    renamingId = null;
    const previous = conv ? conv.title : '';
    if (save && conv && title !== (conv.title || '')) {
      setConversationTitle(id, title); // optimistic
      try {
        const updated = await api('PATCH', `/api/conversations/${encodeURIComponent(id)}/`, { title });
        if (updated) {
          upsertConversation(updated, { onlyIfListed: true });
          setConversationTitle(id, updated.title);
        }
      } catch (err) {
        setConversationTitle(id, previous);
        if (err.status !== 401) showNotice(`Could not rename the conversation: ${err.message}`, { key: 'rename-failed', global: true });
      }
    } else {
      renderSidebar();
    }
    const rename = el.groups.querySelector(`.conversation-item[data-conversation-id="${CSS.escape(id)}"] .rename-conversation`);
    if (rename && (document.activeElement === document.body || !document.activeElement)) rename.focus();
  };
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      finish(true);
    } else if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      finish(false);
    }
  });
  input.addEventListener('blur', () => finish(true));
}

async function deleteConversation(id) {
  const conv = findConversation(id);
  const name = displayTitle(conv);
  if (!window.confirm(`Delete “${name}”? This cannot be undone.`)) return;
  try {
    await api('DELETE', `/api/conversations/${encodeURIComponent(id)}/`);
  } catch (err) {
    if (err.status !== 404) {
      if (err.status !== 401) showNotice(`Could not delete the conversation: ${err.message}`, { key: 'delete-failed', global: true });
      return;
    }
  }
  dropOutbox(id);
  removeConversation(id);
  if (id === state.conversationId) {
    open('');
    el.composer.focus();
  } else {
    el.newChat.focus();
  }
}

const phone = window.matchMedia('(max-width: 699.98px)');

function openSidebar() {
  el.app.dataset.sidebarOpen = 'true';
  el.backdrop.hidden = false;
  if (el.menuToggle) {
    el.menuToggle.setAttribute('aria-expanded', 'true');
    el.menuToggle.setAttribute('aria-label', 'Hide conversations');
  }
  el.newChat.focus();
}

export function closeSidebar(returnFocus = true) {
  if (el.app.dataset.sidebarOpen !== 'true') return;
  el.app.dataset.sidebarOpen = 'false';
  el.backdrop.hidden = true;
  if (el.menuToggle) {
    el.menuToggle.setAttribute('aria-expanded', 'false');
    el.menuToggle.setAttribute('aria-label', 'Show conversations');
    if (returnFocus && phone.matches) el.menuToggle.focus();
  }
}

let searchTimer = null;

// navigate(id): opens a conversation ('' a new chat) and puts it in the URL.
export function initSidebar({ navigate }) {
  open = navigate;
  on('conversations', renderSidebar);
  if (el.menuToggle) {
    el.menuToggle.addEventListener('click', () => {
      if (el.app.dataset.sidebarOpen === 'true') closeSidebar();
      else openSidebar();
    });
  }
  el.backdrop.addEventListener('click', () => closeSidebar());
  phone.addEventListener('change', () => {
    if (!phone.matches) closeSidebar(false);
  });

  el.newChat.addEventListener('click', () => {
    open('');
    el.composer.focus();
  });

  el.search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      const q = el.search.value.trim();
      if (q === state.query) return;
      setQuery(q);
      nextCursor = null;
      loadConversations({ reset: true });
    }, SEARCH_DEBOUNCE_MS);
  });
  el.search.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && el.search.value) {
      e.preventDefault();
      e.stopPropagation();
      el.search.value = '';
      el.search.dispatchEvent(new Event('input'));
    }
  });

  el.loadMore.addEventListener('click', () => loadConversations({ reset: false }));
  // "Load more" also happens by itself when the user scrolls to the end of the list.
  el.list.addEventListener(
    'scroll',
    () => {
      const l = el.list;
      if (nextCursor && !loadingMore && l.scrollHeight - l.scrollTop - l.clientHeight < 80) {
        loadConversations({ reset: false });
      }
    },
    { passive: true },
  );

  el.groups.addEventListener('click', (e) => {
    const target = e.target instanceof Element ? e.target : null;
    if (!target) return;
    const item = target.closest('.conversation-item');
    if (!item) return;
    const id = item.dataset.conversationId;
    if (target.closest('.rename-conversation')) {
      e.preventDefault();
      startRename(id);
      return;
    }
    if (target.closest('.delete-conversation')) {
      e.preventDefault();
      deleteConversation(id);
      return;
    }
    const link = target.closest('.conversation-link');
    if (link) {
      if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      open(id);
      if (phone.matches) el.composer.focus();
    }
  });
}
