/**
 * Multi-network mode over a server (flanneld v0.7's `--remote --networks=blue,green`): one remote manager
 * per network (/v1/<network>/...), and the networks list as v0.7's long poll GET /v1/?next=<cursor>.
 */
import http from "node:http";
import https from "node:https";
import { sleep } from "../../retry/backoff.js";
import { describeError } from "../../user-error.js";
import type { NetworkListWatcher, NetworkSource } from "../network-source.js";
import type { SubnetManager } from "../subnet-manager.js";
import { RemoteSubnetManager, type RemoteSubnetManagerOptions } from "./remote-subnet-manager.js";
import { usesTls } from "./remote-tls.js";

const RETRY_MS = 1000;
const ANSWER_MAX = 1024 * 1024;

export class RemoteNetworkSource implements NetworkSource {
  readonly name = "remote";
  private closed = false;
  private current: http.ClientRequest | undefined;

  constructor(private readonly options: Omit<RemoteSubnetManagerOptions, "network">) {}

  managerFor(network: string): SubnetManager {
    return new RemoteSubnetManager({ ...this.options, network });
  }

  watchNetworks(watcher: NetworkListWatcher): void {
    void this.loop(watcher);
  }

  private get(path: string): Promise<string> {
    const tls = usesTls(this.options.tls);
    const url = new URL(`${tls ? "https" : "http"}://${this.options.server}${path}`);
    return new Promise((resolve, reject) => {
      const request = tls
        ? https.request(url, {
            ca: this.options.tls.ca,
            cert: this.options.tls.cert,
            key: this.options.tls.key,
          })
        : http.request(url);
      this.current = request;
      request.on("response", (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > ANSWER_MAX) request.destroy(new Error("answer too large"));
          else chunks.push(c);
        });
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if (res.statusCode === 200) resolve(text);
          else reject(new Error(`${res.statusCode} ${res.statusMessage}: ${text.trim().slice(0, 300)}`));
        });
      });
      request.on("error", reject);
      request.end();
    });
  }

  /** The snapshot, then one network event per answer, from the cursor on (a server restart loses none). */
  private async loop(watcher: NetworkListWatcher): Promise<void> {
    const names = new Set<string>();
    let cursor: string | undefined;
    let lastFailure = "";
    while (!this.closed) {
      try {
        const text = await this.get(
          cursor === undefined ? "/v1/" : `/v1/?next=${encodeURIComponent(cursor)}`,
        );
        lastFailure = "";
        const answer = JSON.parse(text) as {
          snapshot?: unknown;
          events?: Array<{ type?: unknown; network?: unknown }> | null;
          cursor?: unknown;
        };
        if (Array.isArray(answer.snapshot)) {
          names.clear();
          for (const n of answer.snapshot) if (typeof n === "string") names.add(n);
        } else {
          for (const e of answer.events ?? []) {
            if (typeof e.network !== "string") continue;
            if (e.type === "removed") names.delete(e.network);
            else names.add(e.network);
          }
        }
        cursor = typeof answer.cursor === "string" ? answer.cursor : undefined;
        watcher.onNetworks(names);
      } catch (err) {
        if (this.closed) return;
        const text = describeError(err);
        if (text !== lastFailure)
          watcher.onWarning(
            `watching the networks on ${this.options.server}: ${text}; retrying every second`,
          );
        lastFailure = text;
        await sleep(RETRY_MS);
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.current?.destroy();
  }
}
