/* The server's limits that the page checks before it sends (docs/protocol.md, "Limits"). */

export const MAX_CHARS = 32000;

const MAX_FRAME_BYTES = 64 * 1024;

export function frameTooLarge(frame) {
  return new TextEncoder().encode(JSON.stringify(frame)).length > MAX_FRAME_BYTES;
}

export function charCount(text) {
  // The server counts code points; a UTF-16 length is never smaller.
  return text.length <= MAX_CHARS ? text.length : Array.from(text).length;
}
