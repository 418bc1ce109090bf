/**
 * Strategic merge patch (`application/strategic-merge-patch+json`) for the kinds this server serves. Lists
 * whose Go type carries `patchStrategy:"merge"` merge element by element on their merge key (Node
 * status.conditions by "type", as the real API does); every other list is replaced whole. Maps merge, null
 * deletes, and the $patch / $retainKeys / $setElementOrder / $deleteFromPrimitiveList directives are honoured.
 */
import { clone, isObject, type Json, type JsonObject, PatchError } from "./json-value.js";

/** Path (fields joined by ".", list elements as "[]") -> merge key; "" for a merged list of primitives. */
export type MergeSchema = ReadonlyMap<string, string>;

const containerLists: [string, string][] = [
  ["env", "name"],
  ["ports", "containerPort"],
  ["volumeMounts", "mountPath"],
  ["volumeDevices", "devicePath"],
];

function podSpecSchema(prefix: string): [string, string][] {
  const entries: [string, string][] = [
    [`${prefix}.volumes`, "name"],
    [`${prefix}.imagePullSecrets`, "name"],
    [`${prefix}.hostAliases`, "ip"],
  ];
  for (const list of ["containers", "initContainers", "ephemeralContainers"]) {
    entries.push([`${prefix}.${list}`, "name"]);
    for (const [field, key] of containerLists) entries.push([`${prefix}.${list}[].${field}`, key]);
  }
  return entries;
}

const metadataSchema: [string, string][] = [
  ["metadata.finalizers", ""],
  ["metadata.ownerReferences", "uid"],
];

export const NODE_SCHEMA: MergeSchema = new Map([
  ...metadataSchema,
  ["status.conditions", "type"],
  ["status.addresses", "type"],
  ["status.volumesAttached", "name"],
]);

export const POD_SCHEMA: MergeSchema = new Map([
  ...metadataSchema,
  ...podSpecSchema("spec"),
  ["status.conditions", "type"],
  ["status.podIPs", "ip"],
]);

/** Workloads embed a pod template. */
export const TEMPLATE_SCHEMA: MergeSchema = new Map([
  ...metadataSchema,
  ...podSpecSchema("spec.template.spec"),
]);

export const GENERIC_SCHEMA: MergeSchema = new Map(metadataSchema);

export function applyStrategicMergePatch(target: Json, patch: Json, schema: MergeSchema): Json {
  if (!isObject(patch)) throw new PatchError("strategic merge patch must be a JSON object", 400);
  return mergeMap(isObject(target) ? target : {}, patch, schema, "");
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

function mergeMap(original: JsonObject, patch: JsonObject, schema: MergeSchema, path: string): JsonObject {
  const directive = patch.$patch;
  if (directive === "replace") {
    const { $patch: _ignored, ...rest } = patch;
    return clone(rest);
  }
  if (directive === "delete") return {};
  if (directive !== undefined) throw new PatchError(`Unknown patch type: ${JSON.stringify(directive)}`);

  const result = clone(original);
  const retain = patch.$retainKeys;
  for (const [key, value] of Object.entries(patch)) {
    if (key === "$retainKeys" || key.startsWith("$setElementOrder/")) continue;
    if (key.startsWith("$deleteFromPrimitiveList/")) {
      const field = key.slice("$deleteFromPrimitiveList/".length);
      const current = result[field];
      if (Array.isArray(current) && Array.isArray(value))
        result[field] = current.filter((v) => !value.some((d) => d === v));
      continue;
    }
    if (value === null) {
      delete result[key];
      continue;
    }
    const childPath = join(path, key);
    const current = result[key];
    if (isObject(value)) {
      if (value.$patch === "delete") delete result[key];
      else result[key] = mergeMap(isObject(current) ? current : {}, value, schema, childPath);
    } else if (Array.isArray(value) && schema.has(childPath)) {
      result[key] = mergeList(Array.isArray(current) ? current : [], value, schema, childPath);
    } else result[key] = clone(value);
  }
  if (Array.isArray(retain)) {
    for (const key of Object.keys(result)) if (!retain.includes(key)) delete result[key];
  }
  return result;
}

function mergeList(original: Json[], patch: Json[], schema: MergeSchema, path: string): Json[] {
  const mergeKey = schema.get(path)!;
  if (patch.some((item) => isObject(item) && item.$patch === "replace")) {
    return clone(patch.filter((item) => !(isObject(item) && item.$patch === "replace")));
  }
  if (mergeKey === "") {
    // A merged list of primitives: union, original order first.
    const result = clone(original);
    for (const item of patch) if (!result.includes(item)) result.push(clone(item));
    return result;
  }
  const result = clone(original);
  const elementPath = `${path}[]`;
  for (const item of patch) {
    if (!isObject(item)) throw new PatchError(`${path}: expected objects with the merge key "${mergeKey}"`);
    if (!(mergeKey in item))
      throw new PatchError(`map: ${JSON.stringify(item)} does not contain declared merge key: ${mergeKey}`);
    const index = result.findIndex((e) => isObject(e) && e[mergeKey] === item[mergeKey]);
    if (item.$patch === "delete") {
      if (index >= 0) result.splice(index, 1);
      continue;
    }
    if (index >= 0) result[index] = mergeMap(result[index] as JsonObject, item, schema, elementPath);
    else result.push(mergeMap({}, item, schema, elementPath));
  }
  return result;
}
