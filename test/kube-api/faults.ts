/**
 * Fault injection for the test API server: the first requests of a kind fail the way a real cluster's
 * do, with the bytes kube-apiserver (or the network) sends, not shaped to any client:
 * - "503": a Status ServiceUnavailable, "the server is currently unable to handle the request"
 *   (an API server starting, or its etcd without a leader);
 * - "429": the max-in-flight / priority-and-fairness filter's answer: Retry-After: 1 and a plain-text body;
 * - "500": etcd lost its leader: a Status with reason unset and the etcd error as its message, as the
 *   API server's ErrorToAPIStatus renders a storage error;
 * - "504": a Status Timeout (the request did not finish within the server's deadline);
 * - "reset": the TCP connection is reset before any answer (a load balancer or a crashing server);
 * - "stall": a watch is answered 200 and then nothing more is sent while the connection stays open (a
 *   half-open connection, as seen from the client); any other request gets no answer at all;
 * - "hang": no answer at all, not even the headers of a watch (the connection died before the answer).
 * Faults run after authentication and before authorization, where the real filter chain throttles.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";

export type Fault = "503" | "429" | "500" | "504" | "reset" | "stall" | "hang";
export const FAULTS: readonly Fault[] = ["503", "429", "500", "504", "reset", "stall", "hang"];

export interface FaultRule {
  /** The RBAC verb of the requests it hits: get, list, watch, patch, ... */
  readonly verb: string;
  /** plural[/subresource], e.g. "nodes" or "nodes/status"; any resource when absent. */
  readonly resource?: string;
  /** Only this user's requests; anyone's when absent. */
  readonly user?: string;
  /** One fault per matching request, in order; requests after the last are served normally. */
  readonly faults: readonly Fault[];
}

export interface InjectedFault {
  readonly verb: string;
  readonly resource: string;
  readonly user: string;
  readonly fault: Fault;
}

/** Parses a fault plan (from a flag or a test-control request); throws on anything malformed. */
export function parseFaultRules(value: unknown): FaultRule[] {
  if (!Array.isArray(value)) throw new Error("a fault plan is a JSON array of rules");
  return value.map((rule, i) => {
    const r = rule as Partial<FaultRule>;
    if (typeof r.verb !== "string" || !Array.isArray(r.faults))
      throw new Error(`fault rule ${i}: needs "verb" and "faults"`);
    for (const f of r.faults)
      if (!FAULTS.includes(f)) throw new Error(`fault rule ${i}: unknown fault ${JSON.stringify(f)}`);
    return {
      verb: r.verb,
      faults: [...r.faults],
      ...(typeof r.resource === "string" ? { resource: r.resource } : {}),
      ...(typeof r.user === "string" ? { user: r.user } : {}),
    };
  });
}

export class FaultPlan {
  private rules: { rule: FaultRule; next: number }[] = [];
  readonly injected: InjectedFault[] = [];
  private readonly stalled = new Set<Socket>();

  /** A new plan; `injected` then lists only this plan's faults. */
  set(rules: readonly FaultRule[]): void {
    this.rules = rules.map((rule) => ({ rule, next: 0 }));
    this.injected.length = 0;
  }

  /** The fault for this request, if a rule still has one for it (consuming it). */
  take(verb: string, resource: string, user: string): Fault | undefined {
    for (const entry of this.rules) {
      const { rule } = entry;
      if (rule.verb !== verb || (rule.resource !== undefined && rule.resource !== resource)) continue;
      if (rule.user !== undefined && rule.user !== user) continue;
      const fault = rule.faults[entry.next];
      if (fault === undefined) continue;
      entry.next++;
      this.injected.push({ verb, resource, user, fault });
      return fault;
    }
    return undefined;
  }

  /** Answers (or does not answer) the request as the fault says. */
  apply(fault: Fault, verb: string, req: IncomingMessage, res: ServerResponse): void {
    switch (fault) {
      case "503":
        sendStatus(res, 503, {
          message: "the server is currently unable to handle the request",
          reason: "ServiceUnavailable",
        });
        return;
      case "500":
        sendStatus(res, 500, { message: "etcdserver: leader changed" });
        return;
      case "504":
        sendStatus(res, 504, {
          message: "Timeout: request did not complete within requested timeout - context deadline exceeded",
          reason: "Timeout",
          details: {},
        });
        return;
      case "429": {
        // net/http's http.Error, as the filter calls it.
        const body = "Too many requests, please try again later.\n";
        res.writeHead(429, {
          "retry-after": "1",
          "content-type": "text/plain; charset=utf-8",
          "x-content-type-options": "nosniff",
          "content-length": Buffer.byteLength(body),
        });
        res.end(body);
        return;
      }
      case "reset": {
        // An RST on the TCP socket under the TLS one (the TLS socket itself cannot send one).
        const tcp = (req.socket as Socket & { _parent?: Socket })._parent ?? req.socket;
        try {
          tcp.resetAndDestroy();
        } catch {
          tcp.destroy();
        }
        req.socket.destroy();
        return;
      }
      case "stall":
      case "hang": {
        // Holds the connection open and silent until the client gives up or the server closes.
        this.stalled.add(req.socket);
        req.socket.once("close", () => this.stalled.delete(req.socket));
        if (fault === "stall" && verb === "watch") {
          res.writeHead(200, {
            "content-type": "application/json",
            "cache-control": "no-cache, private",
            "transfer-encoding": "chunked",
          });
          res.flushHeaders();
        }
        return;
      }
    }
  }

  /** Drops the connections held silent (at server close). */
  releaseStalled(): void {
    for (const socket of this.stalled) socket.destroy();
    this.stalled.clear();
  }
}

function sendStatus(
  res: ServerResponse,
  code: number,
  fields: { message: string; reason?: string; details?: object },
): void {
  // Field order as metav1.Status marshals: kind, apiVersion, metadata, status, message, reason, details, code.
  const text = JSON.stringify({
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message: fields.message,
    ...(fields.reason ? { reason: fields.reason } : {}),
    ...(fields.details ? { details: fields.details } : {}),
    code,
  });
  res.writeHead(code, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-cache, private",
  });
  res.end(text);
}
