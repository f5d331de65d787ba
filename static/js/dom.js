/* Shared DOM helpers of the app's pages: elements built with text only (no innerHTML),
 * times shown in the user's locale, ids, copying to the clipboard. */

export function byId(id) {
  return document.getElementById(id);
}

export function uuid() {
  if (window.crypto && typeof window.crypto.randomUUID === 'function') {
    return window.crypto.randomUUID();
  }
  // crypto.randomUUID needs a secure context; getRandomValues does not.
  const b = window.crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

export function button(className, label, opts = {}) {
  const b = make('button', className, opts.ariaOnly ? undefined : label);
  b.type = 'button';
  if (opts.ariaOnly) {
    b.setAttribute('aria-label', label);
    b.title = label;
  }
  return b;
}

export function formatJSON(value) {
  if (value === undefined) return '';
  if (typeof value === 'string') {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch (_) {
      return value;
    }
  }
  try {
    return JSON.stringify(value, null, 2);
  } catch (_) {
    return String(value);
  }
}

export function timeOf(iso) {
  const t = Date.parse(iso || '');
  return Number.isNaN(t) ? 0 : t;
}

// An ISO time in microseconds: Date.parse keeps milliseconds, the server's times have six digits.
export function microsOf(iso) {
  const ms = timeOf(iso);
  if (!ms) return 0;
  const fraction = /\.(\d+)/.exec(iso);
  return ms * 1000 + (fraction ? Number(fraction[1].slice(3, 6).padEnd(3, '0')) : 0);
}

export async function copyText(text, btn) {
  let ok = false;
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      ok = true;
    }
  } catch (_) {
    ok = false;
  }
  if (!ok) {
    const ta = make('textarea', 'clipboard-helper');
    ta.value = text;
    ta.setAttribute('readonly', '');
    document.body.append(ta);
    ta.select();
    try {
      ok = document.execCommand('copy');
    } catch (_) {
      ok = false;
    }
    ta.remove();
    if (btn) btn.focus();
  }
  if (btn) {
    btn.dataset.copied = ok ? 'true' : 'false';
    const label = btn.getAttribute('aria-label') || '';
    btn.setAttribute('aria-label', ok ? 'Copied' : 'Copy failed');
    setTimeout(() => {
      delete btn.dataset.copied;
      btn.setAttribute('aria-label', label);
    }, 1500);
  }
}

let uidCounter = 0;

export function uid(prefix) {
  uidCounter += 1;
  return `${prefix}-${uidCounter}`;
}

export function capitalize(s) {
  const t = String(s || '');
  return t ? t[0].toUpperCase() + t.slice(1) : '';
}

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

// "14:02" today, "3 Mar 2025, 14:02" on another day.
function formatWhen(iso) {
  const t = timeOf(iso);
  if (!t) return '';
  const d = new Date(t);
  if (sameDay(d, new Date())) return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return d.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
}

export function timeElement(iso, className) {
  const node = make('time', className, formatWhen(iso));
  node.dateTime = String(iso);
  const t = timeOf(iso);
  if (t) node.title = new Date(t).toLocaleString();
  return node;
}

export function isPlainObject(v) {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}
