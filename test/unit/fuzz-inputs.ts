/**
 * Structure-aware generators for the fuzz suite: the inputs a careless or hostile host, operator or runtime
 * can give weft. Valid-looking documents with mutations, deep nesting, huge strings, control characters,
 * wrong JSON types, near-valid addresses, CIDRs and lease keys, and raw bytes.
 */
import fc from "fast-check";

/** Characters that break parsers and log lines: C0, DEL, C1, separators, quotes, NUL, a lone surrogate. */
const nasty = [
  "\u0000",
  "\n",
  "\r",
  "\t",
  "\u001b[31m",
  "\u007f",
  "\u0085",
  "\u2028",
  "\u2029",
  '"',
  "\\",
  "\ud800",
];

export const nastyChar = fc.constantFrom(...nasty);

/** A large string of repeats of a short piece: mostly tens of KB, sometimes `max` (1 MB), cheap to make. */
export function hugeString(max = 1 << 20): fc.Arbitrary<string> {
  const size = fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 1000, max: 20000 }) },
    { weight: 1, arbitrary: fc.constant(max) },
  );
  return fc
    .tuple(fc.oneof(fc.string({ minLength: 1, maxLength: 6 }), nastyChar), size)
    .map(([piece, n]) => piece.repeat(Math.ceil(n / piece.length)).slice(0, n));
}

/** Hostile text of a few characters: random (all of Unicode) and control characters. */
export const smallHostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 3, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  {
    weight: 2,
    arbitrary: fc
      .array(fc.oneof(nastyChar, fc.string({ maxLength: 4 })), { maxLength: 12 })
      .map((a) => a.join("")),
  },
);

/** Any hostile text: short random ones, control characters, and occasionally very large. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 9, arbitrary: smallHostileString },
  { weight: 1, arbitrary: hugeString() },
);

const octet = fc.oneof(
  fc.integer({ min: 0, max: 255 }).map(String),
  fc.constantFrom("256", "999", "00", "01", "-1", "", " 1", "0x1", "1e2", "１"),
);

/** IPv4 addresses, valid and nearly so. */
export const nearIPv4: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(octet, octet, octet, octet).map((p) => p.join(".")) },
  { weight: 1, arbitrary: fc.array(octet, { maxLength: 7 }).map((p) => p.join(".")) },
  { weight: 1, arbitrary: fc.ipV4() },
);

const hexGroup = fc.oneof(
  fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16)),
  fc.constantFrom("0000", "00000", "fffff", "g", "", "FFFF", "1.2.3.4", "%eth0"),
);

/** IPv6 addresses, valid and nearly so (extra groups, several "::", embedded IPv4, zones). */
export const nearIPv6: fc.Arbitrary<string> = fc.oneof(
  { weight: 2, arbitrary: fc.ipV6() },
  { weight: 2, arbitrary: fc.array(hexGroup, { minLength: 1, maxLength: 10 }).map((g) => g.join(":")) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.array(hexGroup, { maxLength: 8 }), fc.array(hexGroup, { maxLength: 8 }))
      .map(([a, b]) => `${a.join(":")}::${b.join(":")}`),
  },
  { weight: 1, arbitrary: fc.tuple(fc.ipV6(), fc.ipV4()).map(([a, b]) => `${a}:${b}`) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 5000 }).map((n) => "1:".repeat(n) + "::") },
);

export const nearIP: fc.Arbitrary<string> = fc.oneof(nearIPv4, nearIPv6, hostileString);

const prefixText = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 130 }).map(String) },
  {
    weight: 1,
    arbitrary: fc.constantFrom("", "-1", "024", "+8", "1e1", "4294967320", "33", "129", " 8", "8 "),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 5 }) },
);

/** CIDRs, valid and nearly so. */
export const nearCIDR: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.oneof(nearIPv4, nearIPv6), prefixText).map(([ip, p]) => `${ip}/${p}`) },
  { weight: 1, arbitrary: fc.tuple(nearIP, fc.constantFrom("/", "//", "/24/", "")).map(([ip, s]) => ip + s) },
  { weight: 1, arbitrary: hostileString },
);

/** Lease keys as flannel writes them ("10.244.4.0-24", "...&fd44::-64"), and near misses. */
export const nearLeaseKey: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(nearIPv4, prefixText).map(([ip, p]) => `${ip}-${p}`) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(nearIPv4, prefixText, nearIPv6, prefixText)
      .map(([a, p, b, q]) => `${a}-${p}&${b}-${q}`),
  },
  {
    weight: 1,
    arbitrary: fc.array(nearCIDR, { maxLength: 4 }).map((parts) => parts.join("&").replace(/\//g, "-")),
  },
  { weight: 1, arbitrary: hostileString },
);

/** JSON text nested `depth` levels deep: small in bytes, fatal to any recursive walk. */
export const deepJsonText: fc.Arbitrary<string> = fc
  .tuple(fc.integer({ min: 100, max: 20000 }), fc.constantFrom("array", "object", "mixed"))
  .map(([depth, shape]) => {
    if (shape === "array") return "[".repeat(depth) + "]".repeat(depth);
    if (shape === "object") return '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
    return '[{"a":'.repeat(depth / 2) + "0" + "}]".repeat(depth / 2);
  });

/**
 * A deep value inside a generated document, kept as text: JSON.parse reads 20,000 levels, but
 * JSON.stringify (and so fast-check's own printing) overflows on far fewer.
 */
export class RawJson {
  constructor(readonly text: string) {}
  toString(): string {
    return `RawJson(${this.text.length} characters: ${this.text.slice(0, 40)}...)`;
  }
}

export const deepValue: fc.Arbitrary<RawJson> = deepJsonText.map((text) => new RawJson(text));

/** A generated value as JSON text (RawJson pieces spliced in verbatim). */
export function jsonText(value: unknown): string {
  if (value instanceof RawJson) return value.text;
  if (Array.isArray(value)) return `[${value.map((v) => jsonText(v) ?? "null").join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const parts = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}:${jsonText(v)}`);
    return `{${parts.join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** A generated value as the code under test sees it after JSON.parse: deep pieces parsed, the rest as is. */
export function parsed(value: unknown): unknown {
  if (value instanceof RawJson) return JSON.parse(value.text) as unknown;
  if (Array.isArray(value)) return value.map(parsed);
  if (typeof value === "object" && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      Object.defineProperty(out, k, {
        value: parsed(v),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return value;
}

/** Any JSON value of the wrong type for a field: numbers, booleans, null, arrays, objects, deep ones. */
export const wrongJson: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.constantFrom(1e308, -0, 0.5, -1, 2 ** 53, true, false, null, [], {}) },
  { weight: 1, arbitrary: deepValue },
  { weight: 1, arbitrary: hugeString() },
);

/** Wrong values that are small and shallow, for properties that leave the deep and huge ones to others. */
export const flatWrongJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(1e308, -0, 0.5, -1, 2 ** 53, true, false, null, [], {}),
);

/**
 * A value for a field that should hold `good`: mostly near-valid, sometimes any hostile value; `flat`
 * leaves out the deep and huge ones (for properties that must hold while those await a fix).
 */
export function fieldValue<T>(good: fc.Arbitrary<T>, flat = false): fc.Arbitrary<unknown> {
  if (flat) return fc.oneof({ weight: 4, arbitrary: good }, smallHostileString, flatWrongJson);
  return fc.oneof(
    { weight: 4, arbitrary: good },
    { weight: 1, arbitrary: hostileString },
    { weight: 1, arbitrary: wrongJson },
  );
}

/** The keys of an object in shuffled case (Go matches them case-insensitively), plus a junk key or two. */
export function recordOf(
  fields: Record<string, fc.Arbitrary<unknown>>,
  junk: fc.Arbitrary<unknown> = wrongJson,
): fc.Arbitrary<Record<string, unknown>> {
  const entries = Object.entries(fields).map(([key, value]) =>
    fc.option(fc.tuple(fc.constantFrom(key, key.toLowerCase(), key.toUpperCase()), value), {
      freq: 4,
      nil: undefined,
    }),
  );
  return fc
    .tuple(
      fc.tuple(...entries),
      fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), fc.constant("__proto__")), junk, { maxKeys: 2 }),
    )
    .map(([present, junk]) => {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(junk))
        Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
      for (const entry of present) if (entry) out[entry[0]] = entry[1];
      return out;
    });
}

/** Byte-level damage to a document's text: cuts, insertions, duplications, swapped characters. */
export function mutatedText(base: fc.Arbitrary<string>): fc.Arbitrary<string> {
  const edit = fc.tuple(
    fc.constantFrom("cut", "insert", "duplicate", "truncate", "replace"),
    fc.nat(),
    fc.nat({ max: 16 }),
    fc.oneof(
      nastyChar,
      fc.constantFrom("{", "}", "[", "]", ",", ":", '"', "null", "1e999", "-", "\\u0000"),
      fc.string({ maxLength: 4 }),
    ),
  );
  return fc.tuple(base, fc.array(edit, { minLength: 1, maxLength: 4 })).map(([text, edits]) => {
    let out = text;
    for (const [kind, at, len, piece] of edits) {
      const i = out.length === 0 ? 0 : at % (out.length + 1);
      if (kind === "cut") out = out.slice(0, i) + out.slice(i + len);
      else if (kind === "insert") out = out.slice(0, i) + piece + out.slice(i);
      else if (kind === "duplicate") out = out.slice(0, i + len) + out.slice(i);
      else if (kind === "truncate") out = out.slice(0, i);
      else out = out.slice(0, i) + piece + out.slice(i + piece.length);
    }
    return out;
  });
}

/** JSON text for a document: well-formed (of generated values), mutated, deep, or garbage. */
export function jsonDocumentText(doc: fc.Arbitrary<unknown>, flat = false): fc.Arbitrary<string> {
  const wellFormed = doc.map(jsonText);
  if (flat)
    return fc.oneof(
      { weight: 5, arbitrary: wellFormed },
      { weight: 3, arbitrary: mutatedText(wellFormed) },
      smallHostileString,
    );
  return fc.oneof(
    { weight: 5, arbitrary: wellFormed },
    { weight: 3, arbitrary: mutatedText(wellFormed) },
    { weight: 1, arbitrary: deepJsonText },
    { weight: 1, arbitrary: hostileString },
  );
}

/** Random bytes, and bytes that start like something valid. */
export function bytes(maxLength = 512): fc.Arbitrary<Buffer> {
  return fc.uint8Array({ maxLength }).map((a) => Buffer.from(a));
}
