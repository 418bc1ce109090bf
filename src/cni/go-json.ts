/**
 * JSON encoded the way Go's encoding/json does it, so files and delegate stdin are byte-identical to
 * upstream's: plain objects are Go maps (keys sorted bytewise), Maps are Go structs (field order kept),
 * and strings escape <, >, &, U+2028 and U+2029 as Go does.
 */

export function goJson(value: unknown, indent = ""): string {
  return encode(value, indent, "");
}

function encode(value: unknown, indent: string, prefix: string): string {
  if (value === null || value === undefined) return "null";
  switch (typeof value) {
    case "string":
      return quote(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new Error(`json: unsupported value: ${value}`);
      return Object.is(value, -0) ? "-0" : JSON.stringify(value);
    case "object":
      break;
    default:
      throw new Error(`json: unsupported type: ${typeof value}`);
  }
  const inner = prefix + indent;
  const sep = indent === "" ? "," : `,\n${inner}`;
  const open = indent === "" ? "" : `\n${inner}`;
  const close = indent === "" ? "" : `\n${prefix}`;
  const colon = indent === "" ? ":" : ": ";
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    return `[${open}${value.map((v) => encode(v, indent, inner)).join(sep)}${close}]`;
  }
  const entries =
    value instanceof Map
      ? [...(value as Map<string, unknown>).entries()]
      : Object.entries(value as Record<string, unknown>).sort((a, b) => compareBytewise(a[0], b[0]));
  const present = entries.filter(([, v]) => v !== undefined);
  if (present.length === 0) return "{}";
  const body = present.map(([k, v]) => `${quote(k)}${colon}${encode(v, indent, inner)}`).join(sep);
  return `{${open}${body}${close}}`;
}

/** Go sorts map keys as UTF-8 bytes, which is code point order (not JavaScript's UTF-16 order). */
export function compareBytewise(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}

const shortEscapes: Record<string, string> = {
  '"': '\\"',
  "\\": "\\\\",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\b": "\\b",
  "\f": "\\f",
};

function quote(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    const c = s.charCodeAt(i);
    const short = shortEscapes[ch];
    if (short !== undefined) out += short;
    else if (c < 0x20 || ch === "<" || ch === ">" || ch === "&" || c === 0x2028 || c === 0x2029)
      out += hex4(c);
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && isLowSurrogate(s.charCodeAt(i + 1))) {
      out += ch + s[i + 1];
      i++;
    } else if (c >= 0xd800 && c <= 0xdfff)
      out += "\ufffd"; // Go decoded a lone surrogate as U+FFFD
    else out += ch;
  }
  return `${out}"`;
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

function hex4(c: number): string {
  return `\\u${c.toString(16).padStart(4, "0")}`;
}
