/**
 * Helpers for the flannel CNI plugin tests: run the shipped plugin (the executable dist/cni/flannel) as a
 * runtime would, with a recorder standing in for the delegate, in a private temp directory.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pluginArgv, pluginPath } from "../helpers/cni-plugin.js";
import { referencePath } from "../helpers/reference.js";

export { pluginPath } from "../helpers/cni-plugin.js";
export const goldenDir = referencePath("flannel-cni-v1.9.1");

export interface PluginRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function runFlannel(
  env: Record<string, string>,
  stdin: string | undefined,
  timeoutMs = 20_000,
): PluginRun {
  const [cmd, ...args] = pluginArgv(pluginPath);
  const run = spawnSync(cmd!, args, {
    input: stdin ?? "",
    env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", ...env },
    timeout: timeoutMs,
    encoding: "utf8",
  });
  if (run.error) throw run.error;
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** What a recorder delegate does when called. */
export interface RecorderBehaviour {
  /** Printed on stdout; "%V" becomes the cniVersion of the config it was given. */
  readonly stdout?: string;
  readonly exitCode?: number;
  readonly stderr?: string;
}

export const defaultResult =
  '{"cniVersion":"%V","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/x"}],' +
  '"ips":[{"version":"4","interface":0,"address":"10.250.3.2/24","gateway":"10.250.3.1"}],"dns":{}}';

/** A temp dir with subnet.env, dataDir and a CNI_PATH holding a recorder named `name` (default bridge). */
export class Sandbox {
  readonly dir: string;
  readonly binDir: string;
  readonly recordDir: string;
  readonly dataDir: string;
  readonly subnetFile: string;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "weft-cni-"));
    this.binDir = join(this.dir, "bin");
    this.recordDir = join(this.dir, "records");
    this.dataDir = join(this.dir, "data");
    this.subnetFile = join(this.dir, "subnet.env");
    mkdirSync(this.binDir);
    mkdirSync(this.recordDir);
  }

  writeSubnetEnv(lines: readonly string[], path = this.subnetFile): void {
    writeFileSync(path, lines.map((l) => `${l}\n`).join(""));
  }

  /** The recorder keeps each command's stdin in records/<COMMAND> and appends the command to records/calls. */
  addRecorder(name = "bridge", behaviour: RecorderBehaviour = {}): void {
    const out = (behaviour.stdout ?? defaultResult).replace(/'/g, "'\\''");
    const script = [
      "#!/bin/sh",
      `cat > '${this.recordDir}/'"$CNI_COMMAND"`,
      `echo "$CNI_COMMAND" >> '${this.recordDir}/calls'`,
      `v=$(sed -n 's/.*"cniVersion":"\\([^"]*\\)".*/\\1/p' '${this.recordDir}/'"$CNI_COMMAND")`,
      `printf '%s' '${out}' | sed "s/%V/$v/"`,
      behaviour.stderr ? `echo '${behaviour.stderr}' >&2` : "",
      `exit ${behaviour.exitCode ?? 0}`,
      "",
    ].join("\n");
    const path = join(this.binDir, name);
    writeFileSync(path, script);
    chmodSync(path, 0o755);
  }

  recorded(command: string): string | undefined {
    try {
      return readFileSync(join(this.recordDir, command), "utf8");
    } catch {
      return undefined;
    }
  }

  calls(): string[] {
    const text = this.recorded("calls") ?? "";
    return text.split("\n").filter((l) => l !== "");
  }

  savedFiles(): string[] {
    try {
      return readdirSync(this.dataDir).sort();
    } catch {
      return [];
    }
  }

  env(command: string, containerID = "ctr1", extra: Record<string, string> = {}): Record<string, string> {
    return {
      CNI_COMMAND: command,
      CNI_CONTAINERID: containerID,
      CNI_NETNS: "/var/run/netns/test-not-used",
      CNI_IFNAME: "eth0",
      CNI_PATH: this.binDir,
      ...extra,
    };
  }

  /** A flannel network config pointing at this sandbox's files. */
  config(extra: Record<string, unknown> = {}): string {
    return JSON.stringify({
      cniVersion: "0.3.1",
      name: "cbr0",
      type: "flannel",
      subnetFile: this.subnetFile,
      dataDir: this.dataDir,
      ...extra,
    });
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export const ipv4SubnetEnv = [
  "FLANNEL_NETWORK=10.250.0.0/16",
  "FLANNEL_SUBNET=10.250.3.1/24",
  "FLANNEL_MTU=1450",
  "FLANNEL_IPMASQ=true",
];

/** A CNI error printed by the plugin, parsed. */
export function parseError(stdout: string): { code: number; msg: string; details?: string } {
  return JSON.parse(stdout) as { code: number; msg: string; details?: string };
}
