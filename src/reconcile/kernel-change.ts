/** A change the kernel reported for one entry weft may manage (decoded from a netlink notification). */
import type { FdbEntry, NeighEntry, RouteEntry } from "./kernel-state.js";

export type KernelChange =
  | { kind: "route"; action: "new" | "del"; entry: RouteEntry }
  | { kind: "neigh"; action: "new" | "del"; entry: NeighEntry }
  | { kind: "fdb"; action: "new" | "del"; entry: FdbEntry };
