/**
 * The userspace WireGuard devices: one wireguard-go per device (flannel-wg, flannel-wg-v6), started
 * by weftd where none answers on the device's UAPI socket, and reached over that socket. wireguard-go
 * runs in its own session, so it outlives a weftd restart and the tunnels keep their sessions: the next
 * weftd finds it answering and adopts it (as flanneld keeps the kernel device). When it dies, its TUN
 * device goes with it; the daemon sees the device deleted and calls attachLease, which starts it again
 * (and the exit handler below does too, for a child of ours).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { RtNetlink } from "../../netlink/index.js";
import { UserError } from "../../user-error.js";
import type { WireguardControl } from "./wireguard-control.js";
import {
  checkErrno,
  encodeRemovePeer,
  encodeSetDevice,
  encodeSetPeer,
  GET_REQUEST,
  parseGetAnswer,
  type UapiDevice,
  type UapiPeerSet,
} from "./wireguard-uapi.js";
import { UAPI_SOCKET_DIR, uapiRequest, uapiSocketPath } from "./wireguard-uapi-client.js";

const START_TIMEOUT_MS = 10_000;
const POLL_MS = 50;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The socket is absent or nobody listens: no wireguard-go runs for the device. */
function isAbsent(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === "ENOENT" || code === "ECONNREFUSED";
}

export class WireguardDevices implements WireguardControl {
  readonly datapath = "wireguard-go";
  private readonly children = new Map<string, ChildProcess>();
  private starting: Promise<void> = Promise.resolve();
  private closed = false;
  /** Starts of wireguard-go by this weftd, for /metrics. */
  starts = 0;

  constructor(
    readonly names: readonly string[],
    private readonly netlink: RtNetlink,
    private readonly log: (message: string) => void,
    private readonly warn: (message: string) => void,
    private readonly program = "wireguard-go",
  ) {}

  /** The device's state, or undefined when no wireguard-go answers for it. */
  async get(device: string): Promise<UapiDevice | undefined> {
    try {
      return parseGetAnswer(await uapiRequest(uapiSocketPath(device), GET_REQUEST));
    } catch (err) {
      if (isAbsent(err)) return undefined;
      throw err;
    }
  }

  setDevice(device: string, privateKeyHex: string, listenPort: number): Promise<void> {
    return this.set(device, encodeSetDevice(privateKeyHex, listenPort));
  }

  setPeer(device: string, peer: UapiPeerSet): Promise<void> {
    return this.set(device, encodeSetPeer(peer));
  }

  removePeer(device: string, publicKeyHex: string): Promise<void> {
    return this.set(device, encodeRemovePeer(publicKeyHex));
  }

  /**
   * A set to a device whose wireguard-go is gone starts it first: the reconciler's retries (with
   * backoff) then also retry a start that failed, which nothing else would.
   */
  private async set(device: string, request: string): Promise<void> {
    let answer: string;
    try {
      answer = await uapiRequest(uapiSocketPath(device), request);
    } catch (err) {
      if (!isAbsent(err) || this.closed) throw err;
      await this.ensureAll();
      answer = await uapiRequest(uapiSocketPath(device), request);
    }
    checkErrno(answer, `set on ${device}`);
  }

  /** Every device has a wireguard-go answering (started if needed). Serialized. */
  ensureAll(): Promise<void> {
    const next = this.starting.then(async () => {
      for (const device of this.names) await this.ensure(device);
    });
    this.starting = next.catch(() => undefined);
    return next;
  }

  private async ensure(device: string): Promise<void> {
    if (this.closed) return;
    if (await this.get(device)) return;
    // A device of that name that wireguard-go cannot take (a kernel wireguard link left by flanneld,
    // say) is replaced, as flannel replaces an existing device.
    const link = await this.netlink.linkFind(device);
    if (link && link.kind !== "tun") {
      this.log(
        `device ${device} exists as ${link.kind ?? "a plain device"}; replacing it with wireguard-go's`,
      );
      await this.netlink.linkDel(link.index);
    }
    await this.start(device);
  }

  private async start(device: string): Promise<void> {
    mkdirSync(UAPI_SOCKET_DIR, { recursive: true, mode: 0o755 });
    // Its own output goes to a file: a pipe to weftd would kill it (SIGPIPE) when weftd exits.
    const logPath = join(UAPI_SOCKET_DIR, `${device}.log`);
    const out = openSync(logPath, "a");
    let child: ChildProcess;
    try {
      child = spawn(this.program, ["-f", device], {
        detached: true,
        stdio: ["ignore", out, out],
        env: { ...process.env, WG_PROCESS_FOREGROUND: "1", LOG_LEVEL: process.env.LOG_LEVEL ?? "error" },
      });
    } finally {
      closeSync(out);
    }
    this.starts++;
    let exit: string | undefined;
    child.on("error", (err) => {
      exit = (err as { code?: string }).code === "ENOENT" ? "not installed" : err.message;
    });
    child.on("exit", (code, signal) => {
      exit = signal ? `killed by ${signal}` : `exit code ${code}`;
      if (this.closed) return;
      this.warn(`wireguard-go for ${device} (pid ${child.pid}) ended (${exit})`);
      // The device's loss may have started a new one already.
      if (this.children.get(device) !== child) return;
      this.children.delete(device);
      void this.ensureAll().catch((err) => this.warn(`restarting wireguard-go: ${(err as Error).message}`));
    });
    child.unref();
    this.children.set(device, child);
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (exit !== undefined) break;
      if (await this.get(device)) {
        this.log(`started wireguard-go for ${device} (pid ${child.pid})`);
        return;
      }
      await sleep(POLL_MS);
    }
    if (exit === undefined) child.kill("SIGKILL");
    this.children.delete(device);
    if (exit === "not installed")
      throw new UserError(
        `wireguard-go is not installed and this kernel has no WireGuard device for ${device}`,
        "install wireguard-go (apt-get install wireguard-go)",
      );
    throw new UserError(
      `wireguard-go for ${device} did not start (${exit ?? "no UAPI socket within 10 s"}): ${lastLine(logPath)}`,
      "see the log named above; another process may hold the device",
    );
  }

  /** weftd stops: wireguard-go keeps running, so traffic flows until the next weftd adopts it. */
  close(): void {
    this.closed = true;
    this.children.clear();
  }
}

function lastLine(path: string): string {
  try {
    const lines = readFileSync(path, "utf8").trim().split("\n");
    return lines.at(-1) ?? "";
  } catch {
    return "";
  }
}
