/**
 * The rtnetlink kinds every kernel backend shares, over one netlink socket and one device-name cache.
 * The daemon makes one set and hands it to the backend through its context.
 */
import type { RtEvent, RtNetlink } from "../../netlink/index.js";
import type { StateKind } from "../state-kind.js";
import { type FdbEntry, fdbKind } from "./fdb-kind.js";
import { LinkNames } from "./link-names.js";
import { type NeighEntry, neighKind } from "./neigh-kind.js";
import { type RouteEntry, routeKind } from "./route-kind.js";

export interface KernelKinds {
  readonly route: StateKind<RouteEntry>;
  readonly neigh: StateKind<NeighEntry>;
  readonly fdb: StateKind<FdbEntry>;
  /** Re-lists device names; the reconciler calls it before each full run reads the kinds. */
  refresh(): Promise<void>;
  /** Link notifications keep device names current between full runs. */
  noteEvent(event: RtEvent): void;
}

export function createKernelKinds(netlink: RtNetlink): KernelKinds {
  const links = new LinkNames(netlink);
  return {
    route: routeKind(netlink, links),
    neigh: neighKind(netlink, links),
    fdb: fdbKind(netlink, links),
    refresh: () => links.refresh(),
    noteEvent: (event) => links.noteEvent(event),
  };
}
