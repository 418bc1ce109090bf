// weft's rtnetlink client: one pipelined request socket per namespace, events on their own socket.
import { closeSync, openSync } from "node:fs";
import type { IpFamily } from "./addr-bytes.js";
import {
  type Address,
  type AddressSpec,
  decodeAddress,
  encodeAddrAdd,
  encodeAddrDel,
  encodeAddrDump,
  encodeAddrReplace,
} from "./address.js";
import { RT_TABLE_MAIN, RT_TABLE_UNSPEC } from "./constants.js";
import { RtEvents, type RtGroup } from "./events.js";
import {
  decodeFdb,
  encodeFdbAdd,
  encodeFdbAppend,
  encodeFdbDel,
  encodeFdbDump,
  encodeFdbReplace,
  type FdbEntry,
  type FdbSpec,
} from "./fdb.js";
import {
  decodeLink,
  encodeLinkAdd,
  encodeLinkDel,
  encodeLinkDump,
  encodeLinkGet,
  encodeLinkSet,
  type Link,
  type LinkChanges,
  type LinkRef,
  type LinkSpec,
} from "./link.js";
import type { NetlinkMessage } from "./message.js";
import {
  decodeNeigh,
  encodeNeighAdd,
  encodeNeighDel,
  encodeNeighDump,
  encodeNeighReplace,
  type Neigh,
  type NeighSpec,
} from "./neigh.js";
import {
  decodeRoute,
  encodeRouteAdd,
  encodeRouteDel,
  encodeRouteDump,
  encodeRouteGet,
  encodeRouteReplace,
  type Route,
  type RouteSpec,
} from "./route.js";
import { NetlinkSocket } from "./socket.js";

export type { IpFamily } from "./addr-bytes.js";
export type { Address, AddressSpec } from "./address.js";
export { NetlinkDecodeError, NetlinkError } from "./errors.js";
export { type RtAction, type RtEvent, RtEvents, type RtGroup } from "./events.js";
export type { FdbEntry, FdbSpec } from "./fdb.js";
export type { Link, LinkChanges, LinkRef, LinkSpec, VxlanInfo } from "./link.js";
export type { Neigh, NeighSpec } from "./neigh.js";
export type { Route, RouteSpec } from "./route.js";

export interface RtNetlinkOptions {
  /** Namespace to work in, e.g. "/run/netns/blue"; the caller's own by default. */
  netns?: string;
  /** Most requests in flight at once (see NetlinkSocketOptions.window). */
  window?: number;
}

export interface RouteListOptions {
  /** Default main (254); 0 for every table. */
  table?: number;
  /** Only routes out of this interface. */
  oif?: number;
}

const describeLink = (ref: LinkRef) => (typeof ref === "number" ? `#${ref}` : ref);
const describeRoute = (r: RouteSpec) =>
  `${r.dst}${r.gateway ? ` via ${r.gateway}` : ""}${r.oif !== undefined ? ` dev #${r.oif}` : ""}${r.onlink ? " onlink" : ""}`;

function decodeAll<T>(messages: NetlinkMessage[], decode: (m: NetlinkMessage) => T | undefined): T[] {
  const out: T[] = [];
  for (const m of messages) {
    const value = decode(m);
    if (value !== undefined) out.push(value);
  }
  return out;
}

export class RtNetlink {
  readonly netns: string | undefined;
  private readonly socket: NetlinkSocket;

  private constructor(socket: NetlinkSocket, netns: string | undefined) {
    this.socket = socket;
    this.netns = netns;
  }

  /** Opens the request socket; rejects (e.g. ENOENT for a missing namespace) instead of throwing. */
  static async open(options: RtNetlinkOptions = {}): Promise<RtNetlink> {
    return new RtNetlink(NetlinkSocket.open({ netns: options.netns, window: options.window }), options.netns);
  }

  /** Fails whatever is still pending with ECANCELED. */
  close(): void {
    this.socket.close();
  }

  /** Subscribes to change notifications in the same namespace, on a socket of their own. */
  subscribe(groups: readonly RtGroup[], options: { rcvbuf?: number } = {}): RtEvents {
    return RtEvents.open({ netns: this.netns, groups, rcvbuf: options.rcvbuf });
  }

  private async call(message: Buffer, operation: string): Promise<NetlinkMessage[]> {
    return this.socket.request(message, { operation });
  }

  private async dump(message: Buffer, operation: string): Promise<NetlinkMessage[]> {
    return this.socket.request(message, { operation, dump: true });
  }

  // Links

  async linkList(): Promise<Link[]> {
    return (await this.dump(encodeLinkDump(), "link list")).map(decodeLink);
  }

  /** Rejects with code ENODEV when there is no such device. */
  async linkGet(ref: LinkRef): Promise<Link> {
    const replies = await this.call(encodeLinkGet(ref), `link get ${describeLink(ref)}`);
    if (replies.length === 0) throw new Error(`link get ${describeLink(ref)}: the kernel sent no link`);
    return decodeLink(replies[0]!);
  }

  /** Like linkGet, but undefined when the device does not exist. */
  async linkFind(ref: LinkRef): Promise<Link | undefined> {
    try {
      return await this.linkGet(ref);
    } catch (err) {
      if ((err as { code?: string }).code === "ENODEV") return undefined;
      throw err;
    }
  }

  /** Creates a device; rejects with EEXIST when the name is taken. */
  async linkAdd(spec: LinkSpec): Promise<void> {
    const operation = `link add ${spec.name} (${spec.kind})`;
    if (spec.kind !== "veth" || spec.peer.netns === undefined) {
      await this.call(encodeLinkAdd(spec), operation);
      return;
    }
    // The kernel takes the peer's namespace as an fd that only has to live for the request.
    const { netns, ...peer } = spec.peer;
    const fd = openSync(netns, "r");
    try {
      await this.call(encodeLinkAdd({ ...spec, peer: { ...peer, netnsFd: fd } }), operation);
    } finally {
      closeSync(fd);
    }
  }

  async linkSet(ref: LinkRef, changes: LinkChanges): Promise<void> {
    await this.call(encodeLinkSet(ref, changes), `link set ${describeLink(ref)} ${JSON.stringify(changes)}`);
  }

  async linkSetUp(ref: LinkRef): Promise<void> {
    await this.call(encodeLinkSet(ref, { up: true }), `link set ${describeLink(ref)} up`);
  }

  async linkSetDown(ref: LinkRef): Promise<void> {
    await this.call(encodeLinkSet(ref, { up: false }), `link set ${describeLink(ref)} down`);
  }

  async linkSetMtu(ref: LinkRef, mtu: number): Promise<void> {
    await this.call(encodeLinkSet(ref, { mtu }), `link set ${describeLink(ref)} mtu ${mtu}`);
  }

  async linkSetMac(ref: LinkRef, mac: string): Promise<void> {
    await this.call(encodeLinkSet(ref, { mac }), `link set ${describeLink(ref)} address ${mac}`);
  }

  /** Enslaves the device to a bridge (0 releases it). */
  async linkSetMaster(ref: LinkRef, masterIndex: number): Promise<void> {
    await this.call(
      encodeLinkSet(ref, { masterIndex }),
      `link set ${describeLink(ref)} master #${masterIndex}`,
    );
  }

  /** Moves the device into another namespace, e.g. "/run/netns/blue". */
  async linkSetNetns(ref: LinkRef, netns: string): Promise<void> {
    const fd = openSync(netns, "r");
    try {
      await this.call(encodeLinkSet(ref, { netnsFd: fd }), `link set ${describeLink(ref)} netns ${netns}`);
    } finally {
      closeSync(fd);
    }
  }

  async linkDel(ref: LinkRef): Promise<void> {
    await this.call(encodeLinkDel(ref), `link del ${describeLink(ref)}`);
  }

  // Addresses

  /** Addresses of one family (0 for both), optionally of one interface. */
  async addrList(family: IpFamily | 0 = 0, index = 0): Promise<Address[]> {
    const all = decodeAll(await this.dump(encodeAddrDump(family, index), "address list"), decodeAddress);
    return index > 0 ? all.filter((a) => a.index === index) : all;
  }

  async addrAdd(spec: AddressSpec): Promise<void> {
    await this.call(encodeAddrAdd(spec), `address add ${spec.address}/${spec.prefixlen} dev #${spec.index}`);
  }

  async addrReplace(spec: AddressSpec): Promise<void> {
    await this.call(
      encodeAddrReplace(spec),
      `address replace ${spec.address}/${spec.prefixlen} dev #${spec.index}`,
    );
  }

  async addrDel(spec: AddressSpec): Promise<void> {
    await this.call(encodeAddrDel(spec), `address del ${spec.address}/${spec.prefixlen} dev #${spec.index}`);
  }

  // Routes

  async routeList(family: IpFamily, options: RouteListOptions = {}): Promise<Route[]> {
    const table = options.table ?? RT_TABLE_MAIN;
    const routes = decodeAll(
      await this.dump(encodeRouteDump(family, table), `route list (IPv${family})`),
      decodeRoute,
    );
    // The kernel filters too when strict checking is on; older kernels send every table.
    return routes.filter(
      (r) =>
        (table === RT_TABLE_UNSPEC || r.table === table) &&
        (options.oif === undefined || r.oif === options.oif),
    );
  }

  /** The route the kernel would use to reach an address. */
  async routeGet(address: string): Promise<Route> {
    const replies = await this.call(encodeRouteGet(address), `route get ${address}`);
    const route = replies.length > 0 ? decodeRoute(replies[0]!) : undefined;
    if (route === undefined) throw new Error(`route get ${address}: the kernel sent no route`);
    return route;
  }

  /** Rejects with EEXIST when the route exists. */
  async routeAdd(spec: RouteSpec): Promise<void> {
    await this.call(encodeRouteAdd(spec), `route add ${describeRoute(spec)}`);
  }

  async routeReplace(spec: RouteSpec): Promise<void> {
    await this.call(encodeRouteReplace(spec), `route replace ${describeRoute(spec)}`);
  }

  /** Rejects with ESRCH when no route matches. */
  async routeDel(spec: RouteSpec): Promise<void> {
    await this.call(encodeRouteDel(spec), `route del ${describeRoute(spec)}`);
  }

  // Neighbours

  async neighList(family: IpFamily, index = 0): Promise<Neigh[]> {
    const all = decodeAll(
      await this.dump(encodeNeighDump(family, index), `neigh list (IPv${family})`),
      decodeNeigh,
    );
    return index > 0 ? all.filter((n) => n.index === index) : all;
  }

  async neighAdd(spec: NeighSpec): Promise<void> {
    await this.call(encodeNeighAdd(spec), `neigh add ${spec.ip} lladdr ${spec.mac} dev #${spec.index}`);
  }

  async neighReplace(spec: NeighSpec): Promise<void> {
    await this.call(
      encodeNeighReplace(spec),
      `neigh replace ${spec.ip} lladdr ${spec.mac} dev #${spec.index}`,
    );
  }

  async neighDel(spec: { index: number; ip: string }): Promise<void> {
    await this.call(encodeNeighDel(spec), `neigh del ${spec.ip} dev #${spec.index}`);
  }

  // Bridge FDB

  /** FDB entries of one device (e.g. the vxlan device), or of all devices. */
  async fdbList(index = 0): Promise<FdbEntry[]> {
    const all = decodeAll(await this.dump(encodeFdbDump(index), "fdb list"), decodeFdb);
    return index > 0 ? all.filter((e) => e.index === index) : all;
  }

  async fdbAdd(spec: FdbSpec): Promise<void> {
    await this.call(encodeFdbAdd(spec), `fdb add ${spec.mac} dst ${spec.dst ?? "-"} dev #${spec.index}`);
  }

  async fdbAppend(spec: FdbSpec): Promise<void> {
    await this.call(
      encodeFdbAppend(spec),
      `fdb append ${spec.mac} dst ${spec.dst ?? "-"} dev #${spec.index}`,
    );
  }

  async fdbReplace(spec: FdbSpec): Promise<void> {
    await this.call(
      encodeFdbReplace(spec),
      `fdb replace ${spec.mac} dst ${spec.dst ?? "-"} dev #${spec.index}`,
    );
  }

  async fdbDel(spec: FdbSpec): Promise<void> {
    await this.call(encodeFdbDel(spec), `fdb del ${spec.mac} dst ${spec.dst ?? "-"} dev #${spec.index}`);
  }
}
