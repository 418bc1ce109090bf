// Kernel change notifications: a socket joined to rtnetlink multicast groups, decoded per object.
import { EventEmitter } from "node:events";
import { type Address, decodeAddress } from "./address.js";
import {
  AF_BRIDGE,
  RTM_DELADDR,
  RTM_DELLINK,
  RTM_DELNEIGH,
  RTM_DELROUTE,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWNEIGH,
  RTM_NEWROUTE,
  RTNLGRP_IPV4_IFADDR,
  RTNLGRP_IPV4_ROUTE,
  RTNLGRP_IPV6_IFADDR,
  RTNLGRP_IPV6_ROUTE,
  RTNLGRP_LINK,
  RTNLGRP_NEIGH,
} from "./constants.js";
import { NetlinkDecodeError } from "./errors.js";
import { decodeFdb, type FdbEntry } from "./fdb.js";
import { decodeLink, type Link } from "./link.js";
import type { NetlinkMessage } from "./message.js";
import { decodeNeigh, type Neigh } from "./neigh.js";
import { decodeRoute, type Route } from "./route.js";
import { NetlinkSocket } from "./socket.js";

export type RtGroup = "link" | "neigh" | "ipv4-addr" | "ipv6-addr" | "ipv4-route" | "ipv6-route";

export const RT_GROUPS: Record<RtGroup, number> = {
  link: RTNLGRP_LINK,
  neigh: RTNLGRP_NEIGH,
  "ipv4-addr": RTNLGRP_IPV4_IFADDR,
  "ipv6-addr": RTNLGRP_IPV6_IFADDR,
  "ipv4-route": RTNLGRP_IPV4_ROUTE,
  "ipv6-route": RTNLGRP_IPV6_ROUTE,
};

export type RtAction = "new" | "del";

export type RtEvent =
  | { kind: "link"; action: RtAction; link: Link }
  | { kind: "addr"; action: RtAction; address: Address }
  | { kind: "route"; action: RtAction; route: Route }
  | { kind: "neigh"; action: RtAction; neigh: Neigh }
  | { kind: "fdb"; action: RtAction; fdb: FdbEntry };

/** Decodes one notification; undefined for message types and families weft does not follow. */
export function decodeEvent(message: NetlinkMessage): RtEvent | undefined {
  switch (message.type) {
    case RTM_NEWLINK:
    case RTM_DELLINK:
      return {
        kind: "link",
        action: message.type === RTM_NEWLINK ? "new" : "del",
        link: decodeLink(message),
      };
    case RTM_NEWADDR:
    case RTM_DELADDR: {
      const address = decodeAddress(message);
      return address && { kind: "addr", action: message.type === RTM_NEWADDR ? "new" : "del", address };
    }
    case RTM_NEWROUTE:
    case RTM_DELROUTE: {
      const route = decodeRoute(message);
      return route && { kind: "route", action: message.type === RTM_NEWROUTE ? "new" : "del", route };
    }
    case RTM_NEWNEIGH:
    case RTM_DELNEIGH: {
      const action = message.type === RTM_NEWNEIGH ? "new" : "del";
      if (message.payload[0] === AF_BRIDGE) {
        const fdb = decodeFdb(message);
        return fdb && { kind: "fdb", action, fdb };
      }
      const neigh = decodeNeigh(message);
      return neigh && { kind: "neigh", action, neigh };
    }
    default:
      return undefined;
  }
}

export interface RtEventsOptions {
  netns?: string;
  groups: readonly RtGroup[];
  /** Receive buffer bytes (8 MiB by default): how many events may queue up unread. */
  rcvbuf?: number;
}

interface RtEventsMap {
  event: [RtEvent];
  /** Events were lost (receive buffer overrun): re-list whatever state is being tracked. */
  overrun: [];
  error: [Error];
}

/** A subscription on its own socket; requests never share it, so events cannot delay replies. */
export class RtEvents extends EventEmitter<RtEventsMap> {
  private readonly socket: NetlinkSocket;

  private constructor(socket: NetlinkSocket) {
    super();
    this.socket = socket;
    socket.on("message", (message: NetlinkMessage) => {
      let event: RtEvent | undefined;
      try {
        event = decodeEvent(message);
      } catch (err) {
        if (!(err instanceof NetlinkDecodeError)) throw err;
        // Thrown here it would end the process from inside the socket's callback. The change it
        // carried is lost, as in an overrun: say why, then let listeners re-list.
        if (this.listenerCount("error") > 0) this.emit("error", err);
        this.emit("overrun");
        return;
      }
      if (event !== undefined) this.emit("event", event);
    });
    socket.on("overrun", () => this.emit("overrun"));
    socket.on("error", (err: Error) => this.emit("error", err));
  }

  static open(options: RtEventsOptions): RtEvents {
    const groups = options.groups.map((g) => RT_GROUPS[g]);
    return new RtEvents(NetlinkSocket.open({ netns: options.netns, groups, rcvbuf: options.rcvbuf }));
  }

  close(): void {
    this.socket.close();
  }
}
