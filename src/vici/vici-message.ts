/**
 * VICI messages (strongSwan's src/libcharon/plugins/vici/README.md, "Message format"): a tree of
 * sections, key/values and lists as a sequence of elements. Each element is an 8-bit type; named ones
 * (section start, key/value, list start) carry an 8-bit-length name, valued ones (key/value, list item)
 * a 16-bit big-endian-length blob. charon sends and reads values as strings.
 */

export const SECTION_START = 1;
export const SECTION_END = 2;
export const KEY_VALUE = 3;
export const LIST_START = 4;
export const LIST_ITEM = 5;
export const LIST_END = 6;

export type ViciValue = string | readonly string[] | ViciSection;
/** A section; keys keep their insertion order (charon reads child SAs and auth rounds in order). */
export interface ViciSection {
  readonly [key: string]: ViciValue;
}

export class ViciFormatError extends Error {
  override name = "ViciFormatError";
}

function nameBytes(name: string): Buffer {
  const bytes = Buffer.from(name, "utf8");
  if (bytes.length > 255)
    throw new ViciFormatError(`VICI name longer than 255 bytes: ${name.slice(0, 40)}...`);
  return Buffer.concat([Buffer.from([bytes.length]), bytes]);
}

function valueBytes(value: string): Buffer {
  const bytes = Buffer.from(value, "utf8");
  if (bytes.length > 0xffff) throw new ViciFormatError("VICI value longer than 65535 bytes");
  const length = Buffer.alloc(2);
  length.writeUInt16BE(bytes.length, 0);
  return Buffer.concat([length, bytes]);
}

function encodeInto(section: ViciSection, out: Buffer[]): void {
  for (const [key, value] of Object.entries(section)) {
    if (typeof value === "string") {
      out.push(Buffer.from([KEY_VALUE]), nameBytes(key), valueBytes(value));
    } else if (Array.isArray(value)) {
      out.push(Buffer.from([LIST_START]), nameBytes(key));
      for (const item of value as readonly string[]) out.push(Buffer.from([LIST_ITEM]), valueBytes(item));
      out.push(Buffer.from([LIST_END]));
    } else {
      out.push(Buffer.from([SECTION_START]), nameBytes(key));
      encodeInto(value as ViciSection, out);
      out.push(Buffer.from([SECTION_END]));
    }
  }
}

export function encodeViciMessage(message: ViciSection): Buffer {
  const out: Buffer[] = [];
  encodeInto(message, out);
  return Buffer.concat(out);
}

/** Decodes a whole message; throws ViciFormatError for a truncated or unbalanced one. */
export function decodeViciMessage(bytes: Uint8Array): ViciSection {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  let at = 0;
  const need = (n: number) => {
    if (at + n > buf.length) throw new ViciFormatError(`VICI message truncated at byte ${at}`);
  };
  const readName = () => {
    need(1);
    const n = buf[at++]!;
    need(n);
    const name = buf.toString("utf8", at, at + n);
    at += n;
    return name;
  };
  const readValue = () => {
    need(2);
    const n = buf.readUInt16BE(at);
    at += 2;
    need(n);
    const value = buf.toString("utf8", at, at + n);
    at += n;
    return value;
  };
  const root: Record<string, ViciValue> = {};
  const stack: Record<string, ViciValue>[] = [root];
  let list: string[] | undefined;
  while (at < buf.length) {
    const type = buf[at++]!;
    const current = stack[stack.length - 1]!;
    if (list && type !== LIST_ITEM && type !== LIST_END)
      throw new ViciFormatError(`VICI element type ${type} inside a list at byte ${at - 1}`);
    switch (type) {
      case SECTION_START: {
        const section: Record<string, ViciValue> = {};
        current[readName()] = section;
        stack.push(section);
        break;
      }
      case SECTION_END:
        if (stack.length === 1)
          throw new ViciFormatError(`VICI section end without a start at byte ${at - 1}`);
        stack.pop();
        break;
      case KEY_VALUE: {
        const key = readName();
        current[key] = readValue();
        break;
      }
      case LIST_START:
        list = [];
        current[readName()] = list;
        break;
      case LIST_ITEM:
        if (!list) throw new ViciFormatError(`VICI list item outside a list at byte ${at - 1}`);
        list.push(readValue());
        break;
      case LIST_END:
        if (!list) throw new ViciFormatError(`VICI list end without a start at byte ${at - 1}`);
        list = undefined;
        break;
      default:
        throw new ViciFormatError(`unknown VICI element type ${type} at byte ${at - 1}`);
    }
  }
  if (list || stack.length !== 1) throw new ViciFormatError("VICI message ends inside a section or list");
  return root;
}
