/**
 * The etcd subnet manager's hold on its own key, over an in-memory store with etcd's semantics for what the
 * manager uses (revisions, lease IDs, create-if-absent, a prefix watch): a key taken over by another host,
 * or rewritten with our PublicIP but without our etcd lease. The same cases run against real etcd in
 * test/lab/weftd-etcd-takeover.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Lease } from "../../src/lease/lease.js";
import type { EtcdStore, PrefixWatchHandlers, StoredValue } from "../../src/subnet/etcd/etcd-store.js";
import { EtcdSubnetManager } from "../../src/subnet/etcd/etcd-subnet-manager.js";
import type { LeaseWatcher } from "../../src/subnet/subnet-manager.js";

const PREFIX = "/coreos.com/network";
const SUBNETS = `${PREFIX}/subnets/`;
const OURS = {
  publicIP: "172.31.0.1",
  publicIPv6: undefined,
  backendType: "vxlan",
  backendV6Data: undefined,
};
const OTHER_HOST =
  '{"PublicIP":"172.31.0.9","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"9a:00:00:00:00:09"}}';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** etcd's keyspace as the manager sees it; every write is recorded. */
class MemoryEtcd {
  readonly kvs = new Map<string, StoredValue>();
  readonly writes: string[] = [];
  private revision = 1n;
  private nextLease = 100;
  private watchers = new Map<PrefixWatchHandlers, string>();

  /** Watches stay open but hear nothing, as on a member cut off from the others. */
  deaf = false;

  async get(key: string): Promise<string | undefined> {
    return this.kvs.get(key)?.value;
  }
  async getStored(key: string): Promise<StoredValue | undefined> {
    return this.kvs.get(key);
  }
  async putIfValue(key: string, expected: string, value: string, leaseId: string): Promise<boolean> {
    if (this.kvs.get(key)?.value !== expected) return false;
    await this.put(key, value, leaseId);
    return true;
  }
  async list(prefix: string): Promise<{ values: StoredValue[]; revision: bigint }> {
    const values = [...this.kvs.values()].filter((kv) => kv.key.startsWith(prefix));
    return { values, revision: this.revision };
  }
  async grantLease(): Promise<string> {
    this.nextLease += 1;
    return String(this.nextLease);
  }
  async createIfAbsent(key: string, value: string, leaseId: string): Promise<boolean> {
    if (this.kvs.has(key)) return false;
    await this.put(key, value, leaseId);
    return true;
  }
  /** A put as any client makes it (the manager, or another host through etcdctl). */
  async put(key: string, value: string, leaseId: string): Promise<void> {
    this.revision += 1n;
    const createRevision = this.kvs.get(key)?.createRevision ?? this.revision;
    const kv = { key, value, modRevision: this.revision, createRevision, leaseId };
    this.kvs.set(key, kv);
    this.writes.push(`${key}=${value} lease ${leaseId}`);
    // etcd delivers events after the write is answered.
    setImmediate(() => {
      if (this.deaf) return;
      for (const [w, prefix] of this.watchers) if (key.startsWith(prefix)) w.onPut(kv);
    });
  }
  async delete(key: string): Promise<void> {
    this.revision += 1n;
    this.kvs.delete(key);
    const revision = this.revision;
    setImmediate(() => {
      if (this.deaf) return;
      for (const [w, prefix] of this.watchers) if (key.startsWith(prefix)) w.onDelete(key, revision);
    });
  }
  async watchPrefix(prefix: string, _from: bigint, handlers: PrefixWatchHandlers) {
    this.watchers.set(handlers, prefix);
    return { close: async () => void this.watchers.delete(handlers) };
  }
  /** Every watch breaks (etcd went away); writes meanwhile reach nobody until the re-list. */
  breakWatches(): void {
    const broken = [...this.watchers.keys()];
    this.watchers.clear();
    for (const w of broken) w.onBroken("test: etcd went away");
  }
  close(): void {}
}

interface Seen {
  warnings: string[];
  errors: string[];
  fatal: Error[];
  own: Lease[];
}

async function started(ttlSeconds = 3600) {
  const etcd = new MemoryEtcd();
  await etcd.put(`${PREFIX}/config`, '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}', "0");
  const seen: Seen = { warnings: [], errors: [], fatal: [], own: [] };
  const manager = new EtcdSubnetManager(etcd as unknown as EtcdStore, {
    prefix: PREFIX,
    leaseTtlSeconds: ttlSeconds,
    renewMarginSeconds: ttlSeconds - 1,
    log: () => {},
    logError: (message) => seen.errors.push(message),
  });
  const lease = await manager.acquireLease({
    attrs: { ...OURS, backendData: { VNI: 1, VtepMAC: "9a:00:00:00:00:01" } },
    previousSubnet: undefined,
    previousIPv6Subnet: undefined,
  });
  const watcher: LeaseWatcher = {
    onLeases: () => {},
    onOwnLease: (l) => seen.own.push(l),
    onWarning: (message) => seen.warnings.push(message),
    onFatal: (err) => seen.fatal.push(err),
  };
  manager.watchLeases(watcher);
  await sleep(20);
  etcd.writes.length = 0;
  return { etcd, manager, lease, seen, key: SUBNETS + lease.key };
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe("etcd subnet manager: our own key", () => {
  it("leaves a key taken over by another host alone, says so as an error, and takes a new lease", async () => {
    const { etcd, manager, seen, key } = await started(2);
    try {
      await etcd.put(key, OTHER_HOST, "555");
      await waitFor("fatal", () => seen.fatal.length > 0);
      assert.deepEqual(seen.errors, [
        `our lease ${key} was taken over by another host (PublicIP 172.31.0.9); leaving it to that host and taking a new lease`,
      ]);
      assert.match(seen.fatal[0]!.message, /another host took its subnet; we got 10\.244\.\d+\.0-24 instead/);
      // Past the renewal time of the old lease (1 s): nothing was ever written to the other host's key.
      await sleep(1500);
      assert.equal(etcd.kvs.get(key)?.value, OTHER_HOST);
      assert.deepEqual(
        etcd.writes.filter((w) => w.startsWith(`${key}=`)),
        [`${key}=${OTHER_HOST} lease 555`],
      );
      const mine = [...etcd.kvs.values()].filter((kv) => kv.value.includes('"172.31.0.1"'));
      assert.equal(mine.length, 1, "one new lease carries our address");
      assert.notEqual(mine[0]!.key, key);
    } finally {
      await manager.close();
    }
  });

  it("notices the takeover on the re-list when the watch missed it", async () => {
    const { etcd, manager, seen, key } = await started();
    try {
      etcd.breakWatches();
      await etcd.put(key, OTHER_HOST, "0");
      await waitFor("fatal", () => seen.fatal.length > 0);
      assert.equal(seen.errors.length, 1);
      assert.match(seen.errors[0]!, /taken over by another host \(PublicIP 172\.31\.0\.9\)/);
      assert.equal(etcd.kvs.get(key)?.value, OTHER_HOST);
    } finally {
      await manager.close();
    }
  });

  it("does not renew over a takeover the watch missed: the renewal notices it", async () => {
    const { etcd, manager, seen, key } = await started(2);
    try {
      etcd.deaf = true;
      await etcd.put(key, OTHER_HOST, "555");
      // The renewal comes after 1 s.
      await waitFor("fatal", () => seen.fatal.length > 0);
      assert.match(seen.errors.join("\n"), /taken over by another host \(PublicIP 172\.31\.0\.9\)/);
      assert.equal(etcd.kvs.get(key)?.value, OTHER_HOST);
      assert.deepEqual(
        etcd.writes.filter((w) => w.startsWith(`${key}=`)),
        [`${key}=${OTHER_HOST} lease 555`],
      );
    } finally {
      await manager.close();
    }
  });

  it("renews our key rewritten with our PublicIP in other bytes, as ours", async () => {
    const { etcd, manager, seen, key } = await started(2);
    try {
      etcd.deaf = true;
      const value = etcd.kvs.get(key)!.value;
      const respaced = value.replace('"PublicIP":', '"PublicIP": ');
      await etcd.put(key, respaced, etcd.kvs.get(key)!.leaseId);
      await waitFor("a renewal", () => etcd.kvs.get(key)?.value === value, 3000);
      assert.deepEqual([seen.errors, seen.fatal], [[], []]);
    } finally {
      await manager.close();
    }
  });

  it("keeps our key rewritten without a TTL as a reservation, and stops renewing it", async () => {
    const { etcd, manager, seen, key } = await started(2);
    try {
      const value = etcd.kvs.get(key)!.value;
      await etcd.put(key, value, "0");
      await waitFor("warning", () => seen.warnings.length > 0);
      assert.deepEqual(seen.warnings, [
        `our lease ${key} was rewritten without a TTL; keeping it as a reservation (no renewals)`,
      ]);
      await sleep(1500);
      assert.deepEqual(etcd.writes, [`${key}=${value} lease 0`], "no renewal gave it a TTL again");
      assert.deepEqual([seen.errors, seen.fatal], [[], []]);
    } finally {
      await manager.close();
    }
  });

  it("puts our key rewritten under another etcd lease back under ours, once per renewal period", async () => {
    const { etcd, manager, seen, key } = await started();
    try {
      const value = etcd.kvs.get(key)!.value;
      await etcd.put(key, value, "777");
      await waitFor("our lease again", () => etcd.kvs.get(key)?.leaseId !== "777");
      assert.match(seen.warnings.join("\n"), /not ours \(ID 777\); putting it back under ours/);
      const ours = etcd.kvs.get(key)!.leaseId;
      assert.ok(Number(ours) > 100, `lease ${ours} is one we granted`);
      // A second process claiming our PublicIP: reported, not fought over.
      await etcd.put(key, value, "778");
      await waitFor("error", () => seen.errors.length > 0);
      assert.match(
        seen.errors[0]!,
        /again under an etcd lease that is not ours \(ID 778\); is another weftd/,
      );
      await sleep(50);
      assert.equal(etcd.kvs.get(key)?.leaseId, "778");
      assert.equal(etcd.writes.length, 3);
      assert.deepEqual(seen.fatal, []);
    } finally {
      await manager.close();
    }
  });

  it("takes no action for our own renewals", async () => {
    const { etcd, manager, seen, key } = await started(2);
    try {
      await waitFor("a renewal", () => etcd.writes.length > 0);
      await sleep(50);
      assert.match(etcd.writes[0]!, new RegExp(`^${key}=.* lease 10[2-9]$`));
      assert.deepEqual([seen.warnings, seen.errors, seen.fatal], [[], [], []]);
    } finally {
      await manager.close();
    }
  });
});

describe("etcd subnet manager: two hosts starting together", () => {
  it("never leaves one IPv6 subnet with two dual-stack keys: the later key chooses again", async () => {
    const etcd = new MemoryEtcd();
    await etcd.put(
      `${PREFIX}/config`,
      '{"Network":"10.244.0.0/22","EnableIPv6":true,"IPv6Network":"fd44::/62","Backend":{"Type":"vxlan"}}',
      "0",
    );
    // Both pick the same IPv6 subnet (the same draw) but different IPv4 ones, so their keys differ.
    const draws = (first: number) => {
      const values = [first, 0.5];
      let i = 0;
      return () => values[i++ % values.length]!;
    };
    const manager = (random: () => number) =>
      new EtcdSubnetManager(etcd as unknown as EtcdStore, {
        prefix: PREFIX,
        leaseTtlSeconds: 3600,
        renewMarginSeconds: 60,
        random,
        log: () => {},
      });
    const request = (ip: string) => ({
      attrs: { ...OURS, publicIP: ip, backendData: { VNI: 1, VtepMAC: "9a:00:00:00:00:01" } },
      previousSubnet: undefined,
      previousIPv6Subnet: undefined,
    });
    const a = manager(draws(0.1));
    const b = manager(draws(0.9));
    try {
      // Concurrent: each lists before the other has created its key.
      const [leaseA, leaseB] = await Promise.all([
        a.acquireLease(request("172.31.0.1")),
        b.acquireLease(request("172.31.0.2")),
      ]);
      const keys = [...etcd.kvs.keys()]
        .filter((k) => k.startsWith(SUBNETS))
        .map((k) => k.slice(SUBNETS.length));
      assert.deepEqual(keys.sort(), [leaseA.key, leaseB.key].sort(), "only the two held leases remain");
      const v6 = (key: string) => key.split("&")[1];
      const v4 = (key: string) => key.split("&")[0];
      assert.notEqual(v6(leaseA.key), v6(leaseB.key), "the IPv6 subnets differ");
      assert.notEqual(v4(leaseA.key), v4(leaseB.key), "the IPv4 subnets differ");
      const created = etcd.writes
        .filter((w) => w.startsWith(SUBNETS))
        .map((w) => w.slice(SUBNETS.length, w.indexOf("=")));
      assert.equal(v6(created[0]!), v6(created[1]!), "both first took the same IPv6 subnet");
      assert.equal(created.length, 3, "the later key was chosen again once");
    } finally {
      await a.close();
      await b.close();
    }
  });
});
