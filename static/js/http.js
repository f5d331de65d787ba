/* The JSON API over fetch: the session cookie, the CSRF token for writes, and a 401 sends
 * the user to the log-in page. */

function getCookie(name) {
  const prefix = name + '=';
  for (const part of document.cookie ? document.cookie.split(';') : []) {
    const item = part.trim();
    if (item.startsWith(prefix)) return decodeURIComponent(item.slice(prefix.length));
  }
  return '';
}

function csrfToken() {
  const fromCookie = getCookie('csrftoken');
  if (fromCookie) return fromCookie;
  const input = document.querySelector('input[name="csrfmiddlewaretoken"]');
  return input ? input.value : '';
}

function loginUrl() {
  return '/accounts/login/?next=' + encodeURIComponent(location.pathname + location.search);
}

export function goToLogin() {
  location.assign(loginUrl());
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(method, url, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (!['GET', 'HEAD', 'OPTIONS'].includes(method)) headers['X-CSRFToken'] = csrfToken();
  let res;
  try {
    res = await fetch(url, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (_) {
    throw new ApiError(0, 'Network error: the server could not be reached.');
  }
  if (res.status === 401) {
    goToLogin();
    throw new ApiError(401, 'You are not logged in.');
  }
  if (res.status === 204) return null;
  let data = null;
  const type = res.headers.get('Content-Type') || '';
  if (type.includes('json')) {
    try {
      data = await res.json();
    } catch (_) {
      data = null;
    }
  }
  if (!res.ok) {
    let msg = `Request failed (${res.status}).`;
    if (data && typeof data === 'object') {
      msg = data.message || data.detail || (typeof data.error === 'string' ? data.error : '') || msg;
      if (data.error && typeof data.error === 'object' && data.error.message) msg = data.error.message;
    }
    if (res.status === 404) msg = 'Conversation not found.';
    throw new ApiError(res.status, String(msg));
  }
  return data;
}
