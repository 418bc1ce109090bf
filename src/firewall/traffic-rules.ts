/**
 * The masquerade and forward rules flanneld installs, as iptables-save prints them, so the rules weft
 * wants can be compared with the kernel's text for text. Pure: networks in, rule lines out.
 */
import type { IPFamily } from "../ip/ip-address.js";
import { formatCIDR, type IPNetwork } from "../ip/ip-network.js";
import { allFamilyNetworks, type FamilyNetworks, type WantedRules } from "./firewall.js";

export interface ChainRules {
  readonly table: "nat" | "filter";
  /** Our chain, e.g. FLANNEL-POSTRTG. */
  readonly chain: string;
  /** The built-in chain that jumps to ours, e.g. POSTROUTING. */
  readonly parent: string;
  /** Marks every rule of ours; also finds leftovers of older flanneld versions in the parent chain. */
  readonly comment: string;
  /** Rule specs of our chain (what follows "-A <chain> "), in order. */
  readonly rules: readonly string[];
}

const MASQ_CHAIN = "FLANNEL-POSTRTG";
const FORWARD_CHAIN = "FLANNEL-FWD";
const MASQ_COMMENT = "flanneld masq";
const FORWARD_COMMENT = "flanneld forward";

/** kube-proxy marks packets it will masquerade itself with this bit. */
const KUBE_MASQ_MARK = "0x4000/0x4000";

function multicast(family: IPFamily): string {
  return family === 4 ? "224.0.0.0/4" : "ff00::/8";
}

function withComment(spec: string, comment: string, target: string): string {
  return `${spec}${spec ? " " : ""}-m comment --comment "${comment}" -j ${target}`;
}

/** Pods' traffic leaving the pod network is masqueraded; traffic inside it is not. */
export function masqueradeRules(network: IPNetwork, subnet: IPNetwork, randomFully: boolean): ChainRules {
  const net = formatCIDR(network);
  const masquerade = randomFully ? "MASQUERADE --random-fully" : "MASQUERADE";
  const rule = (spec: string, target: string) => withComment(spec, MASQ_COMMENT, target);
  return {
    table: "nat",
    chain: MASQ_CHAIN,
    parent: "POSTROUTING",
    comment: MASQ_COMMENT,
    rules: [
      rule(`-m mark --mark ${KUBE_MASQ_MARK}`, "RETURN"),
      rule(`-s ${net} -d ${net}`, "RETURN"),
      rule(`-s ${net} ! -d ${multicast(network.family)}`, masquerade),
      rule(`! -s ${net} -d ${formatCIDR(subnet)}`, "RETURN"),
      rule(`! -s ${net} -d ${net}`, masquerade),
    ],
  };
}

/** Accept forwarding to and from the pod network even when the FORWARD policy is DROP. */
export function forwardRules(network: IPNetwork): ChainRules {
  const net = formatCIDR(network);
  const rule = (spec: string) => withComment(spec, FORWARD_COMMENT, "ACCEPT");
  return {
    table: "filter",
    chain: FORWARD_CHAIN,
    parent: "FORWARD",
    comment: FORWARD_COMMENT,
    rules: [rule(`-s ${net}`), rule(`-d ${net}`)],
  };
}

/** The rule in the parent chain that sends packets to ours. */
export function jumpRule(chain: ChainRules): string {
  return withComment("", chain.comment, chain.chain);
}

/** The chains flanneld keeps for one family: forward first, then masquerade, as it sets them up. */
export function wantedChains(family: IPFamily, want: WantedRules): ChainRules[] {
  const [nets, ...others] = allFamilyNetworks(want, family);
  if (!nets) return [];
  const chains: ChainRules[] = [];
  // Several networks (multi-network mode) share each chain: their rules follow one another.
  const joined = (build: (n: FamilyNetworks) => ChainRules, skip: number): ChainRules => {
    const first = build(nets);
    const more = others.flatMap((n) => build(n).rules.slice(skip));
    return { ...first, rules: [...first.rules, ...more] };
  };
  if (want.forwardRules) chains.push(joined((n) => forwardRules(n.network), 0));
  // The kube-proxy mark rule comes once, first.
  if (want.ipMasq) chains.push(joined((n) => masqueradeRules(n.network, n.subnet, want.randomFully), 1));
  return chains;
}

/** Every chain weft writes in iptables mode, by table (removed when the host switches to nftables). */
export const OUR_CHAINS: ReadonlyArray<{ readonly table: "nat" | "filter"; readonly chain: string }> = [
  { table: "nat", chain: MASQ_CHAIN },
  { table: "filter", chain: FORWARD_CHAIN },
];
