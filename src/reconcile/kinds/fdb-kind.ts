/**
 * Permanent FDB entries on a backend's own vxlan device: a peer's VTEP MAC is reached at its host's
 * underlay address. Only NTF_SELF entries with a remote (dst) are weft's kind.
 */
import { NTF_SELF, NUD_PERMANENT } from "../../netlink/constants.js";
import type { FdbSpec, FdbEntry as NetlinkFdb, RtNetlink } from "../../netlink/index.js";
import type { KindShape, StateKind } from "../state-kind.js";
import { removeUnlessGone } from "./gone.js";
import type { LinkNames } from "./link-names.js";

export interface FdbEntry {
  readonly dev: string;
  readonly mac: string;
  /** The peer host's underlay address the MAC is reached at. */
  readonly dst: string;
}

export const fdbShape: KindShape<FdbEntry> = {
  name: "fdb",
  plural: "fdb entries",
  // One remote per MAC: a second one for the same MAC is a duplicate and is removed.
  key: (f) => `${f.dev}|${f.mac}`,
  same: (a, b) => a.dev === b.dev && a.mac === b.mac && a.dst === b.dst,
  describe: (f) => `fdb ${f.mac} dst ${f.dst} dev ${f.dev}`,
};

export function decodeFdbEntry(
  f: NetlinkFdb,
  nameOf: (index: number | undefined) => string | undefined,
  deleted = false,
): FdbEntry | undefined {
  const dev = nameOf(f.index);
  const ours =
    f.dst !== undefined && (f.flags & NTF_SELF) !== 0 && (deleted || (f.state & NUD_PERMANENT) !== 0);
  return dev && ours ? { dev, mac: f.mac, dst: f.dst! } : undefined;
}

export function encodeFdb(f: FdbEntry, index: number): FdbSpec {
  return { index, mac: f.mac, dst: f.dst };
}

export function fdbKind(netlink: RtNetlink, links: LinkNames): StateKind<FdbEntry> {
  const nameOf = (index: number | undefined) => links.nameOf(index);
  return {
    ...fdbShape,
    layer: 0,
    events: {
      groups: ["neigh"],
      changeOf: (event) => {
        if (event.kind !== "fdb") return undefined;
        const entry = decodeFdbEntry(event.fdb, nameOf, event.action === "del");
        return entry && { action: event.action, entry };
      },
    },
    owns: (entry, scope) => scope.ownedDevices.includes(entry.dev),
    async readActual(scope) {
      const out: FdbEntry[] = [];
      for (const dev of scope.ownedDevices) {
        const index = links.findIndex(dev);
        if (index === undefined) continue;
        for (const f of await netlink.fdbList(index)) {
          const entry = f.index === index ? decodeFdbEntry(f, nameOf) : undefined;
          if (entry) out.push(entry);
        }
      }
      return out;
    },
    async put(entry) {
      await netlink.fdbReplace(encodeFdb(entry, links.indexOf(entry.dev)));
    },
    remove(entry) {
      return removeUnlessGone(() => netlink.fdbDel(encodeFdb(entry, links.indexOf(entry.dev))));
    },
  };
}
