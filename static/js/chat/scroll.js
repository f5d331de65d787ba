/* The message list sticks to the bottom while the user has not scrolled up. */
import { el } from './elements.js';

let stick = true;
let scrollQueued = false;

function nearBottom() {
  const s = el.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
}

// `force`: stick to the bottom again (a message sent, another conversation).
export function scheduleScroll(force) {
  if (force) stick = true;
  if (scrollQueued) return;
  scrollQueued = true;
  requestAnimationFrame(() => {
    scrollQueued = false;
    if (stick) el.scroller.scrollTop = el.scroller.scrollHeight;
    el.scrollBottom.hidden = stick || nearBottom();
  });
}

// The view was moved to an item (an approval, a version chosen): stay there.
export function unstick() {
  stick = false;
}

export function stickToBottom() {
  stick = true;
}

export function initScrolling() {
  el.scroller.addEventListener(
    'scroll',
    () => {
      stick = nearBottom();
      el.scrollBottom.hidden = stick;
    },
    { passive: true },
  );
  el.scrollBottom.addEventListener('click', () => {
    scheduleScroll(true);
    el.composer.focus();
  });
}
