/** CNI spec versions this plugin speaks, and the comparisons the CNI skeleton makes. */
import { CniError, ErrorCode } from "./cni-error.js";
import { goQuote } from "./go-errors.js";

export const supportedVersions = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;
export const currentVersion = "1.1.0";

function parseVersion(v: string): [number, number, number] {
  const m = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(v);
  if (!m) throw new CniError(ErrorCode.decodingFailure, `unable to parse version ${goQuote(v)}`);
  return [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)];
}

export function versionAtLeast(v: string, min: string): boolean {
  const a = parseVersion(v);
  const b = parseVersion(min);
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! > b[i]!;
  return true;
}

/** The skeleton's reconciler: the config's version must be one we support. */
export function requireSupportedVersion(v: string): void {
  if ((supportedVersions as readonly string[]).includes(v)) return;
  const list = supportedVersions.map((s) => `"${s}"`).join(" ");
  throw new CniError(
    ErrorCode.incompatibleVersion,
    "incompatible CNI versions",
    `config is ${goQuote(v)}, plugin supports [${list}]`,
  );
}

/** CHECK needs 0.4.0, GC and STATUS 1.1.0: older configs cannot ask for them. */
export function requireVersionFor(command: string, v: string, min: string): void {
  if (!versionAtLeast(v, min)) {
    throw new CniError(ErrorCode.incompatibleVersion, `config version does not allow ${command}`);
  }
}

/** The VERSION answer, byte for byte as Go's json.Encoder writes PluginInfo. */
export function versionInfoJson(): string {
  return `${JSON.stringify({ cniVersion: currentVersion, supportedVersions })}\n`;
}
