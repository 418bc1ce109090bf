/**
 * Text that came from someone else (a lease value, a config key, an API body) on its way into a log line
 * or an error message: bounded in length, control characters escaped so it cannot forge a log line, and
 * never walked recursively, so no nesting depth can exhaust the stack.
 */

/** How much of an untrusted value an error message shows by default. */
export const UNTRUSTED_TEXT_MAX = 64;

// C0, DEL, C1, and the Unicode line/paragraph separators.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

function escapeControl(text: string): string {
  return text.replace(CONTROL, (c) => {
    if (c === "\n") return "\\n";
    if (c === "\r") return "\\r";
    if (c === "\t") return "\\t";
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
  });
}

/** Escapes control characters and cuts to `max` characters, saying how much was cut. */
export function boundText(text: string, max = UNTRUSTED_TEXT_MAX): string {
  // Cut before escaping (a 1 MB value is not escaped whole), then again after (escapes lengthen it).
  const head = escapeControl(text.length > max ? text.slice(0, max) : text);
  const cut = head.length > max ? head.slice(0, max) : head;
  return text.length > max || head.length > max ? `${cut}… (${text.length} characters)` : cut;
}

/**
 * A short, safe rendering of any value for a message: strings quoted, numbers and booleans as JSON,
 * arrays and objects by kind and size (their contents are untrusted and may nest without limit).
 */
export function describeValue(value: unknown, max = UNTRUSTED_TEXT_MAX): string {
  if (typeof value === "string") return `"${boundText(value, max)}"`;
  if (value === null || value === undefined) return String(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === "object") return `an object with ${Object.keys(value).length} key(s)`;
  return typeof value;
}
