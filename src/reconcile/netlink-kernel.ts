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
import {
  type Neigh,
  NetlinkError,
  type FdbEntry as NetlinkFdb,
  type Route,
  type RtEvent,
  type RtNetlink,
} from "../netlink/index.js";
import type { KernelChange } from "./kernel-change.js";
import type { FdbEntry, KernelState, NeighEntry, RouteEntry } from "./kernel-state.js";
import type { KernelPort } from "./reconciler.js";
import type { Changes, StateChanges } from "./state-diff.js";

const APPLY_SLICE = 1024;

/** Errors that mean "already the way we want it" for a delete. */
const GONE = new Set(["ESRCH", "ENOENT", "ENODEV"]);

export class NetlinkKernel implements KernelPort {
  private indexByName = new Map<string, number>();
  private nameByIndex = new Map<number, string>();

  constructor(private readonly netlink: RtNetlink) {}

  /** A main-table unicast route not made by the kernel itself, as weft writes routes. */
  private routeEntry(r: Route): RouteEntry | undefined {
    if (
      r.table !== RT_TABLE_MAIN ||
      r.protocol === RTPROT_KERNEL ||
      r.type !== RTN_UNICAST ||
      r.oif === undefined
    ) {
      return undefined;
    }
    const dst = parseCIDR(r.dst);
    const dev = this.nameByIndex.get(r.oif);
    return dst && dev ? { dst: formatCIDR(dst), gateway: r.gateway, dev, onlink: r.onlink } : undefined;
  }

  /** A permanent neighbour; a deletion notification no longer carries the state, so `deleted` skips that check. */
  private neighEntry(n: Neigh, deleted = false): NeighEntry | undefined {
    const dev = this.nameByIndex.get(n.index);
    const permanent = deleted || (n.state & NUD_PERMANENT) !== 0;
    return dev && permanent ? { dev, ip: n.ip, mac: n.mac ?? "" } : undefined;
  }

  private fdbEntry(f: NetlinkFdb, deleted = false): FdbEntry | undefined {
    const dev = this.nameByIndex.get(f.index);
    const ours =
      f.dst !== undefined && (f.flags & NTF_SELF) !== 0 && (deleted || (f.state & NUD_PERMANENT) !== 0);
    return dev && ours ? { dev, mac: f.mac, dst: f.dst! } : undefined;
  }

  /** The managed entry a notification is about, if any; link notifications keep device names current. */
  changeOf(event: RtEvent): KernelChange | undefined {
    switch (event.kind) {
      case "link":
        if (event.action === "new") {
          this.nameByIndex.set(event.link.index, event.link.name);
          this.indexByName.set(event.link.name, event.link.index);
        }
        return undefined;
      case "route": {
        const entry = this.routeEntry(event.route);
        return entry && { kind: "route", action: event.action, entry };
      }
      case "neigh": {
        const entry = this.neighEntry(event.neigh, event.action === "del");
        return entry && { kind: "neigh", action: event.action, entry };
      }
      case "fdb": {
        const entry = this.fdbEntry(event.fdb, event.action === "del");
        return entry && { kind: "fdb", action: event.action, entry };
      }
      default:
        return undefined;
    }
  }

  async read(devices: readonly string[]): Promise<KernelState> {
    const links = await this.netlink.linkList();
    this.indexByName = new Map(links.map((l) => [l.name, l.index]));
    this.nameByIndex = new Map(links.map((l) => [l.index, l.name]));
    const keep = <T, E>(items: T[], convert: (item: T) => E | undefined): E[] => {
      const out: E[] = [];
      for (const item of items) {
        const entry = convert(item);
        if (entry) out.push(entry);
      }
      return out;
    };

    const routes: RouteEntry[] = [];
    for (const family of [4, 6] as const) {
      routes.push(
        ...keep(await this.netlink.routeList(family, { table: RT_TABLE_MAIN }), (r) => this.routeEntry(r)),
      );
    }
    const neighs: NeighEntry[] = [];
    const fdbs: FdbEntry[] = [];
    for (const dev of devices) {
      const index = this.indexByName.get(dev);
      if (index === undefined) continue;
      for (const family of [4, 6] as const) {
        const list = (await this.netlink.neighList(family, index)).filter((n) => n.index === index);
        neighs.push(...keep(list, (n) => (n.mac ? this.neighEntry(n) : undefined)));
      }
      const list = (await this.netlink.fdbList(index)).filter((f) => f.index === index);
      fdbs.push(...keep(list, (f) => this.fdbEntry(f)));
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
    // In slices of what the socket keeps in flight anyway: encoding 15,000 requests at once only
    // grows the heap, which the process then keeps.
    for (let from = 0; from < entries.length; from += APPLY_SLICE) {
      const results = await Promise.allSettled(entries.slice(from, from + APPLY_SLICE).map(operation));
      for (const result of results) {
        if (result.status === "fulfilled") continue;
        const err = result.reason;
        if (isDelete && err instanceof NetlinkError && GONE.has(err.code)) continue;
        failures.push(err instanceof Error ? err.message : String(err));
      }
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
