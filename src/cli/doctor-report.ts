/**
 * `weft doctor`'s findings: one check per line, ok or what is wrong and how to fix it, and the pure
 * verdicts that need no kernel (subnet.env text, kernel-state diffs, MTU room, sysctls). Pure.
 */
import { formatSubnetEnv, parseEnvLines, type SubnetEnv } from "../lease/subnet-env.js";
import { diffEntries } from "../reconcile/state-diff.js";
import type { KindShape } from "../reconcile/state-kind.js";

export type CheckStatus = "ok" | "warn" | "fail" | "skip";

export interface Check {
  /** Short and stable, for scripts: "subnet-env", "device flannel.1", "route"... */
  readonly name: string;
  readonly status: CheckStatus;
  readonly detail: string;
  /** What to do about it (fail and warn only). */
  readonly fix?: string;
}

/** Shown per failing kind: the first few entries, then a count. */
const MAX_LISTED = 8;

export function checkSubnetEnv(path: string, text: string | undefined, want: SubnetEnv): Check {
  const name = "subnet-env";
  const fix =
    "restart weftd, which rewrites it; then restart the pods started since, they got addresses from it";
  if (text === undefined) return { name, status: "fail", detail: `${path} does not exist`, fix };
  const expected = parseEnvLines(formatSubnetEnv(want));
  const found = parseEnvLines(text);
  const wrong: string[] = [];
  for (const [key, value] of expected) {
    const have = found.get(key);
    if (have !== value) wrong.push(`${key}=${have ?? "(missing)"}, expected ${value}`);
  }
  for (const key of found.keys())
    if (!expected.has(key) && key.startsWith("FLANNEL_")) wrong.push(`${key} should not be there`);
  if (wrong.length > 0) return { name, status: "fail", detail: `${path} is stale: ${wrong.join("; ")}`, fix };
  return {
    name,
    status: "ok",
    detail: `${path} matches the lease (${expected.get("FLANNEL_SUBNET") ?? expected.get("FLANNEL_IPV6_SUBNET")}, MTU ${expected.get("FLANNEL_MTU")})`,
  };
}

/** Desired against actual entries of one kind, as the reconciler diffs them: missing, different, stale. */
export function checkKind<E>(shape: KindShape<E>, desired: readonly E[], actual: readonly E[]): Check {
  const changes = diffEntries(desired, actual, shape.key, shape.same);
  const have = new Map(actual.map((e) => [shape.key(e), e]));
  const lines: string[] = [];
  for (const entry of changes.put) {
    const current = have.get(shape.key(entry));
    lines.push(
      current
        ? `wrong: ${shape.describe(current)}, expected ${shape.describe(entry)}`
        : `missing: ${shape.describe(entry)}`,
    );
  }
  for (const entry of changes.remove) lines.push(`stale: ${shape.describe(entry)}`);
  if (lines.length === 0) {
    return {
      name: shape.name,
      status: "ok",
      detail: `${desired.length} ${shape.plural} as weftd wants, nothing stale`,
    };
  }
  const shown = lines.slice(0, MAX_LISTED);
  if (lines.length > shown.length) shown.push(`and ${lines.length - shown.length} more`);
  return {
    name: shape.name,
    status: "fail",
    detail: `${lines.length} of the ${shape.plural} differ from what weftd wants: ${shown.join("; ")}`,
    fix: "start weftd, which repairs them within a second; if it runs, its log says why the change fails",
  };
}

export function checkMtuRoom(
  device: string,
  deviceMtu: number,
  overhead: number,
  ext: string,
  extMtu: number,
): Check {
  const name = "mtu";
  if (deviceMtu + overhead > extMtu) {
    return {
      name,
      status: "fail",
      detail: `${device} MTU ${deviceMtu} + ${overhead} bytes of encapsulation exceeds ${ext}'s MTU ${extMtu}: large packets between hosts are dropped`,
      fix: `set ${device}'s MTU to at most ${extMtu - overhead} (lower or drop Backend.MTU and restart weftd), or raise ${ext}'s MTU`,
    };
  }
  return {
    name,
    status: "ok",
    detail: `${device} MTU ${deviceMtu} + ${overhead} fits ${ext}'s MTU ${extMtu}`,
  };
}

export function checkForwarding(family: 4 | 6, value: string | undefined): Check {
  const key = family === 4 ? "net.ipv4.ip_forward" : "net.ipv6.conf.all.forwarding";
  const name = family === 4 ? "ip-forward" : "ipv6-forward";
  if (value === undefined) return { name, status: "skip", detail: `cannot read ${key}` };
  if (value.trim() !== "1") {
    return {
      name,
      status: "fail",
      detail: `${key} is ${value.trim()}: this host does not forward pod traffic`,
      fix: `sysctl -w ${key}=1, and set it in /etc/sysctl.d/ so it survives a reboot`,
    };
  }
  return { name, status: "ok", detail: `${key} = 1` };
}

const RP_MODES = ["off", "strict", "loose"];

/** The kernel uses the larger of conf/all and conf/<dev>; strict drops packets whose source route is elsewhere. */
export function checkRpFilter(values: ReadonlyMap<string, string | undefined>): Check {
  const all = Number(values.get("all") ?? 0);
  const parts: string[] = [];
  let strict: string[] = [];
  for (const [dev, raw] of values) {
    if (dev === "all" || raw === undefined) continue;
    const effective = Math.max(all, Number(raw));
    parts.push(`${dev} ${RP_MODES[effective] ?? effective}`);
    if (effective === 1) strict = [...strict, dev];
  }
  const detail = `rp_filter: all=${values.get("all") ?? "?"}; effective ${parts.join(", ")}`;
  if (strict.length > 0) {
    return {
      name: "rp-filter",
      status: "warn",
      detail: `${detail}: strict mode drops pod traffic from any peer whose route is missing or points elsewhere`,
      fix: `if the routes above are ok this is harmless; else use loose mode: sysctl -w net.ipv4.conf.${strict[0]}.rp_filter=2`,
    };
  }
  return { name: "rp-filter", status: "ok", detail };
}

/** flannel #1282/#1279: with some kernels and NAT between hosts, offloaded VXLAN checksums arrive broken. */
export function checkChecksumOffload(
  device: string,
  kernel: string,
  ethtoolOutput: string | undefined,
): Check {
  const name = `checksum-offload ${device}`;
  if (ethtoolOutput === undefined) {
    return {
      name,
      status: "skip",
      detail: "ethtool is not installed, so tx-checksum-ip-generic was not read",
      fix: "apt-get install ethtool",
    };
  }
  const state = /^\s*tx-checksum-ip-generic:\s*(on|off)/m.exec(ethtoolOutput)?.[1];
  if (state === undefined)
    return { name, status: "skip", detail: `ethtool -k ${device} shows no tx-checksum-ip-generic` };
  if (state === "on") {
    return {
      name,
      status: "warn",
      detail: `tx-checksum-ip-generic is on for ${device} (kernel ${kernel}); with some kernels, and when hosts reach each other through NAT, VXLAN packets leave with bad UDP checksums and are dropped (flannel #1282, #1279)`,
      fix: `if peers log "UDP: bad checksum" or services time out across hosts: ethtool -K ${device} tx-checksum-ip-generic off`,
    };
  }
  return { name, status: "ok", detail: `tx-checksum-ip-generic is off for ${device}` };
}

export function formatChecks(checks: readonly Check[]): string {
  const failed = checks.filter((c) => c.status === "fail").length;
  const warned = checks.filter((c) => c.status === "warn").length;
  const width = Math.max(...checks.map((c) => c.name.length));
  const lines = checks.flatMap((c) => {
    const status = c.status === "ok" ? "ok  " : c.status.toUpperCase().padEnd(4);
    const line = `${status}  ${c.name.padEnd(width)}  ${c.detail}`;
    return c.fix && c.status !== "ok" ? [line, `${" ".repeat(width + 8)}fix: ${c.fix}`] : [line];
  });
  const verdict = failed > 0 ? `${failed} problem(s) found` : "no problems found";
  return `${lines.join("\n")}\n${verdict}${warned > 0 ? `, ${warned} warning(s)` : ""}\n`;
}
