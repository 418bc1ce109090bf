/** JSON patch (RFC 6902), what `application/json-patch+json` means: add, remove, replace, move, copy, test. */
import { clone, isObject, type Json, jsonEqual, PatchError } from "./json-value.js";

interface Operation {
  op: string;
  path: string;
  from?: string;
  value?: Json;
}

function parsePointer(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw new PatchError(`invalid JSON pointer ${JSON.stringify(pointer)}`);
  return pointer
    .slice(1)
    .split("/")
    .map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
}

/** The value at `tokens` below `doc`; a missing step fails as the real API says it. */
function walk(doc: Json, tokens: string[], pointer: string): Json {
  let node: Json = doc;
  for (const token of tokens) {
    const next: Json | undefined = Array.isArray(node)
      ? node[Number(token)]
      : isObject(node)
        ? node[token]
        : undefined;
    if (next === undefined) throw new PatchError(`doc is missing path: ${pointer}: missing value`);
    node = next;
  }
  return node;
}

function parent(doc: Json, tokens: string[], pointer: string): { container: Json; key: string } {
  return { container: walk(doc, tokens.slice(0, -1), pointer), key: tokens[tokens.length - 1]! };
}

function get(doc: Json, pointer: string): Json {
  return walk(doc, parsePointer(pointer), pointer);
}

function add(doc: Json, pointer: string, value: Json): Json {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return clone(value);
  const { container, key } = parent(doc, tokens, pointer);
  if (Array.isArray(container)) {
    const index = key === "-" ? container.length : Number(key);
    if (!Number.isInteger(index) || index < 0 || index > container.length)
      throw new PatchError(`add operation does not apply: index out of bounds: ${pointer}`);
    container.splice(index, 0, clone(value));
  } else if (isObject(container)) container[key] = clone(value);
  else throw new PatchError(`add operation does not apply: doc is missing path: ${pointer}`);
  return doc;
}

function remove(doc: Json, pointer: string): Json {
  const tokens = parsePointer(pointer);
  const { container, key } = parent(doc, tokens, pointer);
  if (Array.isArray(container)) {
    const index = Number(key);
    if (!Number.isInteger(index) || index < 0 || index >= container.length)
      throw new PatchError(`remove operation does not apply: doc is missing path: ${pointer}`);
    container.splice(index, 1);
  } else if (isObject(container) && key in container) delete container[key];
  else
    throw new PatchError(`remove operation does not apply: doc is missing path: "${pointer}": missing value`);
  return doc;
}

export function applyJsonPatch(target: Json, patch: Json): Json {
  if (!Array.isArray(patch)) throw new PatchError("json patch must be an array of operations", 400);
  let doc = clone(target);
  for (const raw of patch) {
    if (!isObject(raw) || typeof raw.op !== "string" || typeof raw.path !== "string")
      throw new PatchError("each json patch operation needs op and path", 400);
    const op = raw as unknown as Operation;
    switch (op.op) {
      case "add":
        doc = add(doc, op.path, op.value ?? null);
        break;
      case "remove":
        doc = remove(doc, op.path);
        break;
      case "replace":
        get(doc, op.path);
        doc = add(remove(doc, op.path), op.path, op.value ?? null);
        break;
      case "move": {
        const value = get(doc, op.from ?? "");
        doc = add(remove(doc, op.from ?? ""), op.path, value);
        break;
      }
      case "copy":
        doc = add(doc, op.path, get(doc, op.from ?? ""));
        break;
      case "test":
        if (!jsonEqual(get(doc, op.path), op.value ?? null))
          throw new PatchError(`testing value ${op.path} failed: test failed`);
        break;
      default:
        throw new PatchError(`Unexpected kind: ${op.op}`, 400);
    }
  }
  return doc;
}
