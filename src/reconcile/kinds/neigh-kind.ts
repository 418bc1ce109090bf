/**
 * Permanent neighbour (ARP/NDP) entries on a backend's own device: vxlan maps a peer's VTEP address to
 * its VTEP MAC. Only entries on devices the backend owns are weft's.
 */
import { NUD_PERMANENT } from "../../netlink/constants.js";
import type { Neigh, NeighSpec, RtNetlink } from "../../netlink/index.js";
import type { KindShape, StateKind } from "../state-kind.js";
import { removeUnlessGone } from "./gone.js";
import type { LinkNames } from "./link-names.js";

export interface NeighEntry {
  readonly dev: string;
  readonly ip: string;
  readonly mac: string;
}

export const neighShape: KindShape<NeighEntry> = {
  name: "neigh",
  plural: "neighbours",
  key: (n) => `${n.dev}|${n.ip}`,
  same: (a, b) => a.dev === b.dev && a.ip === b.ip && a.mac === b.mac,
  describe: (n) => `neighbour ${n.ip} lladdr ${n.mac} dev ${n.dev}`,
};

/**
 * A permanent neighbour as an entry. A deletion notification no longer carries the state, so `deleted`
 * skips that check.
 */
export function decodeNeighEntry(
  n: Neigh,
  nameOf: (index: number | undefined) => string | undefined,
  deleted = false,
): NeighEntry | undefined {
  const dev = nameOf(n.index);
  const permanent = deleted || (n.state & NUD_PERMANENT) !== 0;
  return dev && permanent ? { dev, ip: n.ip, mac: n.mac ?? "" } : undefined;
}

export function encodeNeighPut(n: NeighEntry, index: number): NeighSpec {
  return { index, ip: n.ip, mac: n.mac, state: NUD_PERMANENT };
}

export function neighKind(netlink: RtNetlink, links: LinkNames): StateKind<NeighEntry> {
  const nameOf = (index: number | undefined) => links.nameOf(index);
  return {
    ...neighShape,
    layer: 0,
    events: {
      groups: ["neigh"],
      changeOf: (event) => {
        if (event.kind !== "neigh") return undefined;
        const entry = decodeNeighEntry(event.neigh, nameOf, event.action === "del");
        return entry && { action: event.action, entry };
      },
    },
    owns: (entry, scope) => scope.ownedDevices.includes(entry.dev),
    async readActual(scope) {
      const out: NeighEntry[] = [];
      for (const dev of scope.ownedDevices) {
        const index = links.findIndex(dev);
        if (index === undefined) continue;
        for (const family of [4, 6] as const) {
          for (const n of await netlink.neighList(family, index)) {
            const entry = n.index === index && n.mac ? decodeNeighEntry(n, nameOf) : undefined;
            if (entry) out.push(entry);
          }
        }
      }
      return out;
    },
    async put(entry) {
      await netlink.neighReplace(encodeNeighPut(entry, links.indexOf(entry.dev)));
    },
    remove(entry) {
      return removeUnlessGone(() => netlink.neighDel({ index: links.indexOf(entry.dev), ip: entry.ip }));
    },
  };
}
