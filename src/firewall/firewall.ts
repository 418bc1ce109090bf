/**
 * What the masquerade and forward rules depend on, and the small interface both rule writers (iptables,
 * nftables) implement, so the resync loop does not care which one the config picked.
 */
import type { IPFamily } from "../ip/ip-address.js";
import type { IPNetwork } from "../ip/ip-network.js";

/** The pod network and this host's subnet of one family. */
export interface FamilyNetworks {
  readonly network: IPNetwork;
  readonly subnet: IPNetwork;
}

export interface WantedRules {
  readonly v4: FamilyNetworks | undefined;
  readonly v6: FamilyNetworks | undefined;
  /** --ip-masq */
  readonly ipMasq: boolean;
  /** not --ip-masq-fully-random-disable */
  readonly randomFully: boolean;
  /** --iptables-forward-rules */
  readonly forwardRules: boolean;
  /** Multi-network mode (flanneld v0.7): the other networks, whose rules follow in the same chains. */
  readonly others?: readonly Pick<WantedRules, "v4" | "v6">[];
}

export function familyNetworks(want: WantedRules, family: IPFamily): FamilyNetworks | undefined {
  return family === 4 ? want.v4 : want.v6;
}

/** Every network's pair of one family: the first network's, then the others' in order. */
export function allFamilyNetworks(want: WantedRules, family: IPFamily): FamilyNetworks[] {
  return [want, ...(want.others ?? [])]
    .map((w) => (family === 4 ? w.v4 : w.v6))
    .filter((n): n is FamilyNetworks => n !== undefined);
}

export interface Firewall {
  /** "iptables" or "nftables", for logs. */
  readonly mode: string;
  /** The families whose rules the resync loop keeps (none: no loop). */
  families(want: WantedRules): readonly IPFamily[];
  /** Makes one family's rules exactly as wanted; resolves with how many chains or tables it rewrote. */
  ensure(family: IPFamily, want: WantedRules): Promise<number>;
  /** Removes every rule this mode writes: a host switched to the other mode keeps only that one's. */
  removeAll(): Promise<void>;
}
