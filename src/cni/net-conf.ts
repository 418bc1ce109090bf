/**
 * The flannel plugin's network configuration (stdin), decoded with Go's encoding/json rules that upstream
 * relies on: keys match struct fields case-insensitively (the last match wins), null leaves a field at its
 * default, and a value of the wrong JSON type is an error.
 */
import { boundText } from "../text/untrusted-text.js";
import { CniError, ErrorCode } from "./cni-error.js";

export const defaultSubnetFile = "/run/flannel/subnet.env";
export const defaultDataDir = "/var/lib/cni/flannel";

export type JsonObject = Record<string, unknown>;

export interface FlannelNetConf {
  readonly cniVersion: string;
  readonly name: string;
  readonly type: string;
  readonly subnetFile: string;
  readonly dataDir: string;
  readonly ipam: JsonObject | undefined;
  readonly delegate: JsonObject | undefined;
  readonly runtimeConfig: JsonObject | undefined;
  readonly prevResult: JsonObject | undefined;
  /** The whole decoded document, for keys flannel passes along untouched (e.g. GC's valid attachments). */
  readonly raw: JsonObject;
}

export function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function jsonTypeName(v: unknown): string {
  if (Array.isArray(v)) return "array";
  if (typeof v === "boolean") return "bool";
  return typeof v;
}

/** The value Go would decode into struct field `field`: exact key match, else case-insensitive; last wins. */
export function goField(doc: JsonObject, field: string): unknown {
  const folded = field.toLowerCase();
  let found: unknown;
  for (const key of Object.keys(doc)) {
    if (key === field || key.toLowerCase() === folded) found = doc[key];
  }
  return found;
}

function stringField(doc: JsonObject, field: string, fallback: string, struct: string): string {
  const v = goField(doc, field);
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "string") {
    throw new Error(
      `json: cannot unmarshal ${jsonTypeName(v)} into Go struct field ${struct}.${field} of type string`,
    );
  }
  return v;
}

function objectField(doc: JsonObject, field: string, struct: string): JsonObject | undefined {
  const v = goField(doc, field);
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) {
    throw new Error(
      `json: cannot unmarshal ${jsonTypeName(v)} into Go struct field ${struct}.${field} of type map[string]interface {}`,
    );
  }
  return v;
}

/**
 * Deeper than any network config nests; Go's decoder stops at 10,000 ("exceeded max depth"), and our
 * Go-style JSON printer recurses, so past a few thousand levels it would overflow the stack.
 */
const MAX_DEPTH = 1000;

/** Whether `value` nests deeper than `max` (arrays and objects), walked without recursion. */
function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== "object" || v === null) continue;
    if (depth > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

/** stdin as a JSON object, or the CNI decoding error upstream's skeleton reports. */
export function parseConfigDocument(stdin: string): JsonObject {
  let doc: unknown;
  try {
    doc = JSON.parse(stdin);
  } catch (err) {
    const why = stdin.trim() === "" ? "unexpected end of JSON input" : boundText((err as Error).message, 200);
    throw new CniError(
      ErrorCode.decodingFailure,
      `error unmarshall network config: ${why}`,
      "stdin must hold the network configuration as JSON; the container runtime passes it (check the .conf/.conflist file)",
    );
  }
  if (nestsDeeperThan(doc, MAX_DEPTH)) {
    throw new CniError(
      ErrorCode.decodingFailure,
      "error unmarshall network config: exceeded max depth",
      `the network config nests deeper than ${MAX_DEPTH} levels`,
    );
  }
  if (!isObject(doc)) {
    throw new CniError(
      ErrorCode.decodingFailure,
      `error unmarshall network config: json: cannot unmarshal ${jsonTypeName(doc)} into Go value of type struct { Name string "json:\\"name\\"" }`,
    );
  }
  return doc;
}

/** The network name, checked as the CNI skeleton does before any command but VERSION runs. */
export function validatedNetworkName(doc: JsonObject): string {
  let name: string;
  try {
    name = stringField(doc, "name", "", "");
  } catch (err) {
    throw new CniError(
      ErrorCode.decodingFailure,
      `error unmarshall network config: ${(err as Error).message}`,
    );
  }
  if (name === "") throw new CniError(ErrorCode.invalidNetworkConfig, "missing network name");
  if (!validName.test(name)) {
    throw new CniError(
      ErrorCode.invalidNetworkConfig,
      "invalid characters found in network name",
      boundText(name, 300),
    );
  }
  return name;
}

/** Container IDs and network names: CNI's allowed characters (which also keeps them safe as file names). */
export const validName = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** cniVersion as the CNI version decoder reads it: absent or empty means 0.1.0. */
export function configVersion(doc: JsonObject): string {
  try {
    return stringField(doc, "cniVersion", "", "") || "0.1.0";
  } catch (err) {
    throw new CniError(
      ErrorCode.decodingFailure,
      `decoding version from network config: ${(err as Error).message}`,
    );
  }
}

/** loadFlannelNetConf: the fields flannel reads, with upstream's defaults. */
export function decodeFlannelNetConf(doc: JsonObject): FlannelNetConf {
  try {
    return {
      cniVersion: stringField(doc, "cniVersion", "", "NetConf"),
      name: stringField(doc, "name", "", "NetConf"),
      type: stringField(doc, "type", "", "NetConf"),
      subnetFile: stringField(doc, "subnetFile", defaultSubnetFile, "NetConf"),
      dataDir: stringField(doc, "dataDir", defaultDataDir, "NetConf"),
      ipam: objectField(doc, "ipam", "NetConf"),
      delegate: objectField(doc, "delegate", "NetConf"),
      runtimeConfig: objectField(doc, "runtimeConfig", "NetConf"),
      prevResult: objectField(doc, "prevResult", "NetConf"),
      raw: doc,
    };
  } catch (err) {
    throw new Error(`loadFlannelNetConf failed: failed to load netconf: ${(err as Error).message}`);
  }
}
