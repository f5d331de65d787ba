/* The conversation's websocket: connecting, reconnecting with backoff, pings, and the
 * connection status shown. What the frames mean is frames.js's business. */
import { el } from './elements.js';
import { showNotice } from './notices.js';
import { setLastSent, setSocket, state } from './store.js';
import { goToLogin } from '../http.js';

const PING_MS = 25000;
const STALE_MS = 2 * PING_MS + 15000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;

// The socket's own bookkeeping; the socket itself is state.ws (store.js).
let attempts = 0;
let reconnectTimer = null;
let pingTimer = null;
let opened = false;
let lastFrameAt = 0;

// What the socket hands on, set once by main.js: each frame, the news that the conversation
// does not exist, and that the socket is gone (what waits to be sent shows it).
let handlers = null;

export function setSocketHandlers({ frame, notFound, closed }) {
  handlers = { frame, notFound, closed };
}

const CONNECTION_TEXT = { connecting: 'Connecting…', online: 'Online', offline: 'Offline' };

export function setConnection(stateName, text) {
  el.status.dataset.state = stateName;
  el.status.textContent = text || CONNECTION_TEXT[stateName];
  el.app.dataset.connection = stateName;
}

function socketUrl(id) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}/ws/conversations/${encodeURIComponent(id)}/`;
}

export function showOfflineNotice() {
  showNotice('You are offline. Messages will be sent when the connection is back.', { kind: 'info', key: 'offline', global: true });
}

export function sendFrame(obj) {
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  ws.send(JSON.stringify(obj));
  setLastSent({ type: obj.type });
  return true;
}

// The next reconnection is tried at once: the browser is back, a snapshot came.
export function resetBackoff() {
  attempts = 0;
}

// A socket is open, or one is about to be tried.
export function socketAlive() {
  return !!state.ws || !!reconnectTimer;
}

function clearTimers() {
  if (reconnectTimer) clearTimeout(reconnectTimer);
  reconnectTimer = null;
  if (pingTimer) clearInterval(pingTimer);
  pingTimer = null;
}

export function teardownSocket() {
  clearTimers();
  const ws = state.ws;
  setSocket(null);
  if (ws) {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close(1000, 'closing');
    } catch (_) {
      /* already closed */
    }
  }
}

export function connect() {
  teardownSocket();
  const id = state.conversationId;
  if (!id || state.notFound) return;
  if (!navigator.onLine) {
    setConnection('offline');
    showOfflineNotice();
    handlers.closed();
    return;
  }
  setConnection('connecting');
  let ws;
  try {
    ws = new WebSocket(socketUrl(id));
  } catch (_) {
    scheduleReconnect();
    return;
  }
  setSocket(ws);
  opened = false;
  ws.onopen = () => {
    if (ws !== state.ws) return;
    opened = true;
    lastFrameAt = Date.now();
    pingTimer = setInterval(ping, PING_MS);
  };
  ws.onmessage = (event) => {
    if (ws !== state.ws) return;
    lastFrameAt = Date.now();
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch (_) {
      return;
    }
    try {
      handlers.frame(frame);
    } catch (err) {
      // A bad frame must not kill the page; resync from a fresh snapshot.
      console.error('chat: could not apply frame', frame, err);
    }
  };
  ws.onerror = () => {
    /* onclose follows */
  };
  ws.onclose = (event) => {
    if (ws !== state.ws) return;
    setSocket(null);
    clearTimers();
    handlers.closed();
    onSocketClosed(event.code, opened, id);
  };
}

function ping() {
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  if (Date.now() - lastFrameAt > STALE_MS) {
    // No frame (not even a pong) for too long: the connection is dead.
    connect();
    return;
  }
  ws.send(JSON.stringify({ type: 'ping' }));
}

function onSocketClosed(code, wasOpen, id) {
  if (id !== state.conversationId) return;
  if (code === 4401) {
    setConnection('offline');
    goToLogin();
    return;
  }
  if (code === 4404) {
    handlers.notFound();
    return;
  }
  if (!navigator.onLine) {
    setConnection('offline');
    showOfflineNotice();
    return;
  }
  setConnection('offline', 'Offline, reconnecting…');
  if (!wasOpen) {
    // A refused handshake carries no close code: ask over HTTP why.
    probeConversation(id);
  }
  scheduleReconnect();
}

async function probeConversation(id) {
  try {
    const res = await fetch(`/api/conversations/${encodeURIComponent(id)}/messages/?limit=1`, {
      credentials: 'same-origin',
      headers: { Accept: 'application/json' },
    });
    if (id !== state.conversationId) return;
    if (res.status === 401) goToLogin();
    else if (res.status === 404) handlers.notFound();
  } catch (_) {
    /* network trouble: the backoff handles it */
  }
}

function scheduleReconnect() {
  if (reconnectTimer || state.notFound || !state.conversationId) return;
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempts);
  const delay = base / 2 + Math.random() * (base / 2);
  attempts += 1;
  reconnectTimer = setTimeout(() => {
    reconnectTimer = null;
    connect();
  }, delay);
}
