/**
 * One iptables rule spec in a normal form, so the same rule printed by another iptables version (other
 * option order, quoting, a netmask for a prefix, a mark in decimal, "/32" spelled out) compares equal.
 * Pure. The form is only compared, never written: weft writes flanneld's exact text.
 */
import { formatIP, parseIP } from "../ip/ip-address.js";
import { formatCIDR, makeNetwork, parseCIDR } from "../ip/ip-network.js";

/** Splits like a shell: "a b" and 'a b' are one word, a backslash escapes the next character. */
export function splitWords(spec: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: string | undefined;
  for (let i = 0; i < spec.length; i++) {
    const c = spec[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === "\\" && quote === '"' && i + 1 < spec.length) word += spec[++i];
      else word += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      word ??= "";
    } else if (c === "\\" && i + 1 < spec.length) word = (word ?? "") + spec[++i];
    else if (c === " " || c === "\t") {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else word = (word ?? "") + c;
  }
  if (word !== undefined) words.push(word);
  return words;
}

/** Bits in a netmask such as 255.255.0.0; undefined if it is not one. */
function maskBits(text: string): number | undefined {
  const mask = parseIP(text);
  if (!mask) return undefined;
  const bits = mask.family === 4 ? 32 : 128;
  const s = mask.value.toString(2).padStart(bits, "0");
  return /^1*0*$/.test(s) ? (s.indexOf("0") === -1 ? bits : s.indexOf("0")) : undefined;
}

/** An address, prefix or number in one spelling; anything else as it is. */
function normalValue(text: string): string {
  const slash = text.indexOf("/");
  if (slash > 0) {
    const [head, tail] = [text.slice(0, slash), text.slice(slash + 1)];
    const ip = parseIP(head);
    const bits = ip && !/^[0-9]+$/.test(tail) ? maskBits(tail) : undefined;
    const net = bits !== undefined && ip ? makeNetwork(ip, bits) : parseCIDR(text);
    if (net) return formatCIDR(net);
    if (/^(0x[0-9a-f]+|[0-9]+)$/i.test(head) && /^(0x[0-9a-f]+|[0-9]+)$/i.test(tail))
      return `${Number(head)}/${Number(tail)}`;
  }
  const ip = parseIP(text);
  if (ip) return `${formatIP(ip)}/${ip.family === 4 ? 32 : 128}`;
  if (/^(0x[0-9a-f]+|[0-9]+)$/i.test(text)) return String(Number(text));
  return text;
}

/**
 * The rule as a sorted list of its options, each with its values and negation ("! -d 224.0.0.0/4"). All
 * matches of a rule must hold, so their order does not change what it does.
 */
export function normalRule(spec: string): string {
  const words = splitWords(spec);
  const isOption = (w: string | undefined) => w !== undefined && /^-[a-z-]/i.test(w);
  const groups: string[][] = [];
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    if (word === "!" && isOption(words[i + 1])) groups.push(["!", words[++i]!]);
    else if (word === "!" && groups.length > 0)
      groups.at(-1)!.unshift("!"); // the old "-s ! x"
    else if (isOption(word)) groups.push([word]);
    else if (groups.length > 0) groups.at(-1)!.push(normalValue(word));
    else groups.push([normalValue(word)]);
  }
  return groups
    .map((g) => g.join(" "))
    .sort()
    .join(" ; ");
}

export function sameRule(a: string, b: string): boolean {
  return a === b || normalRule(a) === normalRule(b);
}
