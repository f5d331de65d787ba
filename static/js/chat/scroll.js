/* The message list sticks to the bottom while the user has not scrolled up. */
import { el } from './elements.js';
import { state } from './store.js';

let scrollQueued = false;

function nearBottom() {
  const s = el.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
}

export function scheduleScroll(force) {
  if (force) state.stick = true;
  if (scrollQueued) return;
  scrollQueued = true;
  requestAnimationFrame(() => {
    scrollQueued = false;
    if (state.stick) el.scroller.scrollTop = el.scroller.scrollHeight;
    el.scrollBottom.hidden = state.stick || nearBottom();
  });
}

export function initScrolling() {
  el.scroller.addEventListener(
    'scroll',
    () => {
      state.stick = nearBottom();
      el.scrollBottom.hidden = state.stick;
    },
    { passive: true },
  );
  el.scrollBottom.addEventListener('click', () => {
    scheduleScroll(true);
    el.composer.focus();
  });
}
