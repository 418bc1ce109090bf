/**
 * The reconciler over kinds held in memory: coalescing, quick vs full runs, repair after a foreign change,
 * one failing entry among many, retries with backoff, readiness only after a clean run.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseCIDR } from "../../src/ip/ip-network.js";
import { RT_TABLE_MAIN, RTN_UNICAST, RTPROT_BOOT } from "../../src/netlink/constants.js";
import type { RtEvent } from "../../src/netlink/index.js";
import { decodeRouteEntry, type RouteEntry, routeShape } from "../../src/reconcile/kinds/route-kind.js";
import { isOurRoute, type OwnershipScope, Reconciler } from "../../src/reconcile/reconciler.js";
import type { StateKind } from "../../src/reconcile/state-kind.js";

const scope: OwnershipScope = {
  networks: [parseCIDR("10.244.0.0/16")!],
  ownSubnets: [parseCIDR("10.244.63.0/24")!],
  routeDevices: ["flannel.1", "eth0"],
  ownedDevices: ["flannel.1"],
};

/** A table standing in for the kernel, with the route kind's own key, compare and ownership. */
class MemoryRoutes implements StateKind<RouteEntry> {
  readonly name = routeShape.name;
  readonly plural = routeShape.plural;
  readonly layer: number;
  readonly table = new Map<string, RouteEntry>();
  readonly ops: string[] = [];
  reads = 0;
  /** dst -> error thrown by put. */
  readonly failing = new Map<string, Error>();
  /** Resolves reads only when released, to hold a run open. */
  gate: Promise<void> | undefined;
  readonly events = {
    groups: ["ipv4-route" as const],
    changeOf: (event: RtEvent) => {
      if (event.kind !== "route") return undefined;
      const entry = decodeRouteEntry(event.route, (i) =>
        i === 5 ? "flannel.1" : i === 2 ? "eth0" : undefined,
      );
      return entry && { action: event.action, entry };
    },
  };

  constructor(layer = 1) {
    this.layer = layer;
  }
  key(e: RouteEntry) {
    return routeShape.key(e);
  }
  same(a: RouteEntry, b: RouteEntry) {
    return routeShape.same(a, b);
  }
  describe(e: RouteEntry) {
    return routeShape.describe(e);
  }
  owns(e: RouteEntry, s: OwnershipScope) {
    return isOurRoute(e, s);
  }
  async readActual() {
    this.reads++;
    await this.gate;
    return [...this.table.values()];
  }
  async put(e: RouteEntry) {
    this.ops.push(`put ${e.dst}`);
    const failure = this.failing.get(e.dst);
    if (failure) throw failure;
    this.table.set(e.dst, e);
  }
  async remove(e: RouteEntry) {
    this.ops.push(`remove ${e.dst}`);
    this.table.delete(e.dst);
  }
}

const via = (n: number, dev = "flannel.1"): RouteEntry => ({
  dst: `10.244.${n}.0/24`,
  gateway: `10.244.${n}.0`,
  dev,
  onlink: true,
});
const routes = (...ns: number[]) => ({ route: ns.map((n) => via(n)) });

function reconciler(kinds: StateKind<RouteEntry>[], extra: { onClean?: () => void; logs?: string[] } = {}) {
  return new Reconciler({
    kinds,
    scope,
    log: (m) => extra.logs?.push(m),
    retry: { minMs: 5, maxMs: 20, jitter: 0 },
    onClean: extra.onClean,
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `done` holds (bounded, generous under load). */
async function until(what: string, done: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** A code-carrying error as the netlink socket rejects with. */
function kernelError(code: string, text: string): Error {
  return Object.assign(new Error(`route replace: ${code} (${text})`), { code });
}

describe("reconciler", () => {
  it("does nothing before the first desired state, so a restart keeps the datapath", async () => {
    const kind = new MemoryRoutes();
    kind.table.set("10.244.4.0/24", via(4));
    const r = reconciler([kind]);
    await r.trigger();
    assert.equal(kind.reads, 0);
    assert.equal(kind.table.size, 1);
    await r.close();
  });

  it("reads on the first run and after a trigger, and diffs against its last result otherwise", async () => {
    const kind = new MemoryRoutes();
    const r = reconciler([kind]);
    await r.setDesired(routes(1, 2));
    assert.equal(kind.reads, 1, "first run is full");
    await r.setDesired(routes(1, 2, 3));
    assert.equal(kind.reads, 1, "a lease change is a quick run");
    assert.deepEqual(kind.ops, ["put 10.244.1.0/24", "put 10.244.2.0/24", "put 10.244.3.0/24"]);
    await r.trigger();
    assert.equal(kind.reads, 2);
    assert.equal(r.stats.fullRuns, 2);
    assert.equal(r.stats.runs, 3);
    await r.close();
  });

  it("coalesces a burst of changes during a run into one more run, ending at the last state", async () => {
    const kind = new MemoryRoutes();
    let release!: () => void;
    kind.gate = new Promise((resolve) => {
      release = resolve;
    });
    const r = reconciler([kind]);
    const first = r.setDesired(routes(1));
    const burst = [];
    for (let n = 2; n <= 50; n++)
      burst.push(r.setDesired(routes(...Array.from({ length: n }, (_, i) => i + 1))));
    burst.push(r.trigger());
    release();
    await Promise.all([first, ...burst]);
    assert.equal(r.stats.runs, 2, "one run, then one more for the whole burst");
    assert.equal(kind.table.size, 50);
    await r.close();
  });

  it("repairs a foreign change it is told about, and ignores notifications of its own writes", async () => {
    const kind = new MemoryRoutes();
    const r = reconciler([kind]);
    await r.setDesired(routes(1, 2));
    const event = (action: "new" | "del", dst: string, gateway: string, oif = 5): RtEvent => ({
      kind: "route",
      action,
      route: {
        family: 4,
        dst,
        gateway,
        oif,
        table: RT_TABLE_MAIN,
        protocol: RTPROT_BOOT,
        scope: 0,
        type: RTN_UNICAST,
        flags: 0,
        onlink: true,
        priority: undefined,
        prefsrc: undefined,
      },
    });
    assert.ok(!r.concerns(event("new", "10.244.1.0/24", "10.244.1.0")), "our own write");
    assert.ok(r.concerns(event("del", "10.244.1.0/24", "10.244.1.0")), "a wanted route deleted");
    assert.ok(r.concerns(event("new", "10.244.1.0/24", "10.244.9.9")), "a wanted route altered");
    assert.ok(r.concerns(event("new", "10.244.7.0/24", "10.244.7.0")), "an unwanted route in our scope");
    assert.ok(
      !r.concerns(event("new", "192.168.7.0/24", "172.31.0.7", 2)),
      "a foreign route on a shared device",
    );
    assert.ok(r.concerns(event("new", "192.168.7.0/24", "10.244.7.0")), "anything on our own device");
    assert.ok(!r.concerns(event("del", "10.244.7.0/24", "10.244.7.0")), "an unwanted route gone");

    kind.table.delete("10.244.1.0/24");
    kind.table.set("10.244.2.0/24", via(9));
    kind.table.set("10.244.7.0/24", via(7));
    kind.table.set("192.168.7.0/24", { ...via(7, "eth0"), dst: "192.168.7.0/24" });
    await r.trigger();
    assert.deepEqual(kind.table.get("10.244.1.0/24"), via(1));
    assert.deepEqual(kind.table.get("10.244.2.0/24"), via(2));
    assert.ok(!kind.table.has("10.244.7.0/24"), "stale route in our scope removed");
    assert.ok(kind.table.has("192.168.7.0/24"), "foreign route left alone");
    await r.close();
  });

  it("applies the others when one entry fails, logs each cause once, retries with backoff until clean", async () => {
    const kind = new MemoryRoutes();
    const logs: string[] = [];
    let cleans = 0;
    const r = reconciler([kind], { logs, onClean: () => cleans++ });
    kind.failing.set("10.244.2.0/24", kernelError("ENETUNREACH", "Network is unreachable"));
    kind.failing.set("10.244.3.0/24", kernelError("ENETUNREACH", "Network is unreachable"));
    kind.failing.set("10.244.4.0/24", kernelError("EEXIST", "File exists"));
    await r.setDesired(routes(1, 2, 3, 4, 5));
    assert.deepEqual([...kind.table.keys()].sort(), ["10.244.1.0/24", "10.244.5.0/24"]);
    assert.equal(r.stats.failures, 3);
    assert.equal(r.stats.failuresByKind.get("route"), 3);
    assert.equal(r.stats.failedRuns, 1);
    assert.equal(cleans, 0, "not ready after a run with failures");
    await until("three retries", () => r.stats.failedRuns >= 4);
    assert.ok(r.stats.fullRuns >= 3, "retries read the state again");
    const unreachable = logs.filter((l) => l.includes("ENETUNREACH"));
    assert.equal(unreachable.length, 1, `one line per cause: ${logs.join(" | ")}`);
    assert.match(
      unreachable[0]!,
      /cannot put routes: ENETUNREACH \(Network is unreachable\) \(2 entries, e\.g\. route 10\.244\.2\.0\/24/,
    );
    assert.equal(logs.filter((l) => l.includes("EEXIST")).length, 1);

    kind.failing.clear();
    await until("a clean run", () => cleans > 0);
    assert.equal(cleans, 1, "ready after the first clean run");
    assert.equal(kind.table.size, 5);
    const runs = r.stats.runs;
    await sleep(50);
    assert.equal(r.stats.runs, runs, "no more retries once clean");
    // A new failure after a clean run is logged again.
    kind.failing.set("10.244.6.0/24", kernelError("ENETUNREACH", "Network is unreachable"));
    await r.setDesired(routes(1, 2, 3, 4, 5, 6));
    assert.equal(logs.filter((l) => l.includes("ENETUNREACH")).length, 2);
    await r.close();
  });

  it("fails only the entry whose device is missing, even if the kind throws at once", async () => {
    const kind = new MemoryRoutes();
    const original = kind.put.bind(kind);
    kind.put = (e: RouteEntry) => {
      if (e.dev === "gone0") throw new Error("device gone0 does not exist");
      return original(e);
    };
    const logs: string[] = [];
    const r = reconciler([kind], { logs });
    await r.setDesired({ route: [via(1), via(2, "gone0"), via(3)] });
    assert.deepEqual([...kind.table.keys()].sort(), ["10.244.1.0/24", "10.244.3.0/24"]);
    assert.ok(logs.some((l) => /cannot put routes: device gone0 does not exist/.test(l)));
    await r.close();
  });

  it("removes from the upper layer down and puts from the lower layer up", async () => {
    const order: string[] = [];
    const lower = new MemoryRoutes(0);
    const upper = new MemoryRoutes(1);
    Object.defineProperty(lower, "name", { value: "lower" });
    for (const [kind, label] of [
      [lower, "lower"],
      [upper, "upper"],
    ] as const) {
      const put = kind.put.bind(kind);
      const remove = kind.remove.bind(kind);
      kind.put = async (e) => {
        order.push(`${label} put`);
        await put(e);
      };
      kind.remove = async (e) => {
        order.push(`${label} remove`);
        await remove(e);
      };
    }
    lower.table.set("10.244.8.0/24", via(8));
    upper.table.set("10.244.8.0/24", via(8));
    const r = reconciler([upper, lower]);
    await r.setDesired({ route: [via(1)], lower: [via(1)] });
    assert.deepEqual(order, ["upper remove", "lower remove", "lower put", "upper put"]);
    await r.close();
  });

  it("treats a kind left out of the desired state as wanted empty", async () => {
    const kind = new MemoryRoutes();
    const r = reconciler([kind]);
    await r.setDesired(routes(1));
    await r.setDesired({});
    assert.equal(kind.table.size, 0);
    await r.close();
  });

  it("ignores entries of a kind the backend does not declare, saying so once", async () => {
    const kind = new MemoryRoutes();
    const logs: string[] = [];
    const r = reconciler([kind], { logs });
    await r.setDesired({ ...routes(1), "udp-peer": [{}] });
    await r.setDesired({ ...routes(1, 2), "udp-peer": [{}] });
    assert.equal(kind.table.size, 2);
    assert.equal(logs.filter((l) => l.includes("udp-peer")).length, 1);
    await r.close();
  });

  it("refuses two kinds with one name, whose desired entries could not be told apart", () => {
    assert.throws(
      () => reconciler([new MemoryRoutes(), new MemoryRoutes()]),
      /two kinds of state are named "route"/,
    );
  });
});
