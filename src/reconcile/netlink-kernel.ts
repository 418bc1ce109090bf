/** The reconciler's view of the kernel, over rtnetlink: read routes/neighbours/FDB, apply changes. */
import { formatCIDR, parseCIDR } from "../ip/ip-network.js";
import {
  NTF_SELF,
  NUD_PERMANENT,
  RT_TABLE_MAIN,
  RTN_UNICAST,
  RTPROT_BOOT,
  RTPROT_KERNEL,
} from "../netlink/constants.js";
import { NetlinkError, type RtNetlink } from "../netlink/index.js";
import type { FdbEntry, KernelState, NeighEntry, RouteEntry } from "./kernel-state.js";
import type { KernelPort } from "./reconciler.js";
import type { Changes, StateChanges } from "./state-diff.js";

/** Errors that mean "already the way we want it" for a delete. */
const GONE = new Set(["ESRCH", "ENOENT", "ENODEV"]);

export class NetlinkKernel implements KernelPort {
  private indexByName = new Map<string, number>();

  constructor(private readonly netlink: RtNetlink) {}

  async read(devices: readonly string[]): Promise<KernelState> {
    const links = await this.netlink.linkList();
    this.indexByName = new Map(links.map((l) => [l.name, l.index]));
    const nameByIndex = new Map(links.map((l) => [l.index, l.name]));

    const routes: RouteEntry[] = [];
    for (const family of [4, 6] as const) {
      for (const r of await this.netlink.routeList(family, { table: RT_TABLE_MAIN })) {
        if (r.protocol === RTPROT_KERNEL || r.type !== RTN_UNICAST || r.oif === undefined) continue;
        const dst = parseCIDR(r.dst);
        const dev = nameByIndex.get(r.oif);
        if (!dst || !dev) continue;
        routes.push({
          dst: formatCIDR(dst),
          gateway: r.gateway,
          dev,
          onlink: r.onlink,
        });
      }
    }

    const neighs: NeighEntry[] = [];
    const fdbs: FdbEntry[] = [];
    for (const dev of devices) {
      const index = this.indexByName.get(dev);
      if (index === undefined) continue;
      for (const family of [4, 6] as const) {
        for (const n of await this.netlink.neighList(family, index)) {
          if (n.index === index && n.state & NUD_PERMANENT && n.mac)
            neighs.push({ dev, ip: n.ip, mac: n.mac.toLowerCase() });
        }
      }
      for (const f of await this.netlink.fdbList(index)) {
        if (f.index === index && f.dst !== undefined && f.flags & NTF_SELF && f.state & NUD_PERMANENT) {
          fdbs.push({ dev, mac: f.mac.toLowerCase(), dst: f.dst });
        }
      }
    }
    return { routes, neighs, fdbs };
  }

  async apply(changes: StateChanges): Promise<string[]> {
    const failures: string[] = [];
    // Remove routes before the entries they rely on; add entries before the routes that use them.
    await this.run(changes.routes.remove, (r) => this.routeDel(r), failures, true);
    await Promise.all([
      this.run(changes.neighs.remove, (n) => this.neighDel(n), failures, true),
      this.run(changes.fdbs.remove, (f) => this.fdbDel(f), failures, true),
    ]);
    await Promise.all([
      this.run(changes.fdbs.put, (f) => this.fdbPut(f), failures, false),
      this.run(changes.neighs.put, (n) => this.neighPut(n), failures, false),
    ]);
    await this.run(changes.routes.put, (r) => this.routePut(r), failures, false);
    return failures;
  }

  /** Sends every operation of a group at once (the socket pipelines them) and collects failures. */
  private async run<T>(
    entries: Changes<T>["put"],
    operation: (entry: T) => Promise<void>,
    failures: string[],
    isDelete: boolean,
  ): Promise<void> {
    const results = await Promise.allSettled(entries.map(operation));
    for (const result of results) {
      if (result.status === "fulfilled") continue;
      const err = result.reason;
      if (isDelete && err instanceof NetlinkError && GONE.has(err.code)) continue;
      failures.push(err instanceof Error ? err.message : String(err));
    }
  }

  private index(dev: string): number {
    const index = this.indexByName.get(dev);
    if (index === undefined) throw new Error(`device ${dev} does not exist`);
    return index;
  }

  private routePut(r: RouteEntry): Promise<void> {
    return this.netlink.routeReplace({
      dst: r.dst,
      gateway: r.gateway,
      oif: this.index(r.dev),
      onlink: r.onlink,
      table: RT_TABLE_MAIN,
      protocol: RTPROT_BOOT,
    });
  }

  private routeDel(r: RouteEntry): Promise<void> {
    return this.netlink.routeDel({
      dst: r.dst,
      gateway: r.gateway,
      oif: this.index(r.dev),
      table: RT_TABLE_MAIN,
    });
  }

  private neighPut(n: NeighEntry): Promise<void> {
    return this.netlink.neighReplace({
      index: this.index(n.dev),
      ip: n.ip,
      mac: n.mac,
      state: NUD_PERMANENT,
    });
  }

  private neighDel(n: NeighEntry): Promise<void> {
    return this.netlink.neighDel({ index: this.index(n.dev), ip: n.ip });
  }

  private fdbPut(f: FdbEntry): Promise<void> {
    return this.netlink.fdbReplace({ index: this.index(f.dev), mac: f.mac, dst: f.dst });
  }

  private fdbDel(f: FdbEntry): Promise<void> {
    return this.netlink.fdbDel({ index: this.index(f.dev), mac: f.mac, dst: f.dst });
  }
}
