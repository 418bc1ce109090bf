/**
 * flanneld's nftables rules (EnableNFTables) as a small normalized model: the tables weft wants, the nft
 * script that writes one, and the model read back from `nft -j`. Rules are compared as normalized
 * statements, never as text, so another nft version printing the same rule differently (a mark in hex,
 * a prefix as a string, flags as a list) is no reason to rewrite the table. Pure.
 */
import { formatIP, type IPFamily, parseIP } from "../ip/ip-address.js";
import { formatCIDR, parseCIDR } from "../ip/ip-network.js";
import { allFamilyNetworks, type FamilyNetworks, type WantedRules } from "./firewall.js";

/** A base chain and its rules; a rule is a list of normalized statements, e.g. "ip saddr == 10.244.0.0/16". */
export interface NftChain {
  readonly name: string;
  readonly type: string;
  readonly hook: string;
  readonly priority: number;
  readonly policy: string;
  readonly comment?: string;
  readonly rules: readonly (readonly string[])[];
}

export interface NftTable {
  /** nft's family keyword: "ip" or "ip6". */
  readonly family: "ip" | "ip6";
  readonly name: string;
  readonly comment?: string;
  readonly chains: readonly NftChain[];
  /** Anything else found in the table (a set, a map, a regular chain): never ours, so a reason to rewrite. */
  readonly others?: readonly string[];
}

export const NFT_FAMILIES = { 4: "ip", 6: "ip6" } as const;
/** flannel's table names: pkg/trafficmngr/nftables. */
export const NFT_TABLES = { 4: "flannel-ipv4", 6: "flannel-ipv6" } as const;
const POSTRTG_CHAIN = "postrtg";
const FORWARD_CHAIN = "forward";
/** kube-proxy's masquerade mark; flannel matches it exactly (meta mark 0x4000), not as a bit. */
const KUBE_MASQ_MARK = "16384";
/** nft's named priorities of the ip/ip6 families, for versions that print a name instead of a number. */
const PRIORITY_NAMES: Readonly<Record<string, number>> = {
  raw: -300,
  mangle: -150,
  dstnat: -100,
  filter: 0,
  security: 50,
  srcnat: 100,
};

/**
 * The table flanneld keeps for one family. It exists in nftables mode even with nothing in it (flannel
 * creates both tables at start); chains are postrtg (--ip-masq) and forward (--iptables-forward-rules),
 * each flushed and refilled in flannel's order.
 */
export function wantedTable(family: IPFamily, want: WantedRules): NftTable {
  const name = NFT_TABLES[family];
  const table = { family: NFT_FAMILIES[family], name, comment: `rules for ${name}` };
  const all = allFamilyNetworks(want, family);
  if (all.length === 0) return { ...table, chains: [] };
  const ip = NFT_FAMILIES[family];
  const multicast = family === 4 ? "224.0.0.0/4" : "ff00::/8";
  const masquerade = want.randomFully ? "masquerade fully-random" : "masquerade";
  // Several networks (multi-network mode) share each chain: their rules follow one another.
  const masqRules = (nets: FamilyNetworks): string[][] => {
    const cluster = formatCIDR(nets.network);
    const pod = formatCIDR(nets.subnet);
    return [
      // traffic inside the pod network keeps its addresses
      [`${ip} saddr == ${pod}`, `${ip} daddr == ${cluster}`, "return"],
      [`${ip} saddr == ${cluster}`, `${ip} daddr == ${pod}`, "return"],
      // external traffic arriving for a pod of this host keeps its source
      [`${ip} saddr != ${pod}`, `${ip} daddr == ${cluster}`, "return"],
      // pods leaving the network, except to multicast
      [`${ip} saddr == ${cluster}`, `${ip} daddr != ${multicast}`, masquerade],
      // the host talking to pods
      [`${ip} saddr != ${cluster}`, `${ip} daddr == ${cluster}`, masquerade],
    ];
  };
  const forwardRules = (nets: FamilyNetworks): string[][] => {
    const cluster = formatCIDR(nets.network);
    return [
      [`${ip} saddr == ${cluster}`, "accept"],
      [`${ip} daddr == ${cluster}`, "accept"],
    ];
  };
  const chains: NftChain[] = [];
  if (want.ipMasq)
    chains.push({
      name: POSTRTG_CHAIN,
      type: "nat",
      hook: "postrouting",
      priority: PRIORITY_NAMES.srcnat!,
      policy: "accept",
      comment: "chain to manage traffic masquerading by flannel",
      rules: [
        // kube-proxy masquerades these itself (double NAT breaks on some kernels)
        [`meta mark == ${KUBE_MASQ_MARK}`, "return"],
        ...all.flatMap(masqRules),
      ],
    });
  if (want.forwardRules)
    chains.push({
      name: FORWARD_CHAIN,
      type: "filter",
      hook: "forward",
      priority: PRIORITY_NAMES.filter!,
      policy: "accept",
      comment: "chain to accept flannel traffic",
      rules: all.flatMap(forwardRules),
    });
  return { ...table, chains };
}

const quote = (text: string) => `"${text.replace(/["\\]/g, "")}"`;

/** The `nft -f -` input that replaces the table as a whole, in one transaction (a missing table is fine). */
export function replaceTableScript(table: NftTable): string {
  const head = `table ${table.family} ${table.name}`;
  const lines = [head, `delete ${head}`, `${head} {`];
  if (table.comment) lines.push(`\tcomment ${quote(table.comment)}`);
  for (const chain of table.chains) {
    lines.push(`\tchain ${chain.name} {`);
    if (chain.comment) lines.push(`\t\tcomment ${quote(chain.comment)}`);
    lines.push(
      `\t\ttype ${chain.type} hook ${chain.hook} priority ${chain.priority}; policy ${chain.policy};`,
    );
    for (const rule of chain.rules) lines.push(`\t\t${rule.join(" ")}`);
    lines.push("\t}");
  }
  lines.push("}", "");
  return lines.join("\n");
}

/** Checked with `nft -c` (never applied): does the kernel take masquerade fully-random? flannel asks the same. */
export const FULLY_RANDOM_PROBE =
  "table ip weft-probe {\n\tchain c {\n\t\ttype nat hook postrouting priority 100;\n\t\tip saddr != 127.0.0.1 masquerade fully-random\n\t}\n}\n";

/** The families whose flannel table `nft -j list tables` shows. */
export function presentTables(json: string): IPFamily[] {
  const parsed = JSON.parse(json) as Json;
  const objects = isObject(parsed) && Array.isArray(parsed.nftables) ? parsed.nftables : [];
  return ([4, 6] as const).filter((f) =>
    objects.some(
      (o) =>
        isObject(o) &&
        isObject(o.table) &&
        o.table.family === NFT_FAMILIES[f] &&
        o.table.name === NFT_TABLES[f],
    ),
  );
}

/** The `nft -f -` input that deletes the tables, even one deleted meanwhile (creating it first makes that safe). */
export function deleteTablesScript(families: readonly IPFamily[]): string {
  return families
    .flatMap((f) => [
      `table ${NFT_FAMILIES[f]} ${NFT_TABLES[f]}`,
      `delete table ${NFT_FAMILIES[f]} ${NFT_TABLES[f]}`,
    ])
    .map((line) => `${line}\n`)
    .join("");
}

// --- reading `nft -j` back ---

type Json = unknown;
const isObject = (v: Json): v is Record<string, Json> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** JSON with sorted keys: a stable text for anything the model does not know. */
function stable(v: Json): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(",")}]`;
  if (isObject(v))
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stable(v[k])}`)
      .join(",")}}`;
  return JSON.stringify(v) ?? "null";
}

/** An address, prefix or number as one canonical text: "10.244.0.0/16", "fd00::1/128", "16384". */
function normalValue(v: Json): string {
  if (typeof v === "number") return String(v);
  if (typeof v === "string") {
    const cidr = parseCIDR(v);
    if (cidr) return formatCIDR(cidr);
    const ip = parseIP(v);
    if (ip) return `${formatIP(ip)}/${ip.family === 4 ? 32 : 128}`;
    if (/^(0x[0-9a-f]+|[0-9]+)$/i.test(v)) return String(Number(v));
    return JSON.stringify(v);
  }
  if (isObject(v) && isObject(v.prefix)) {
    const { addr, len } = v.prefix;
    const cidr = typeof addr === "string" ? parseCIDR(`${addr}/${String(len)}`) : undefined;
    if (cidr) return formatCIDR(cidr);
  }
  return stable(v);
}

/** What a match compares: "ip saddr", "meta mark". */
function normalLeft(v: Json): string {
  if (isObject(v) && isObject(v.payload)) {
    const { protocol, field } = v.payload;
    if (typeof protocol === "string" && typeof field === "string") return `${protocol} ${field}`;
  }
  if (isObject(v) && isObject(v.meta) && typeof v.meta.key === "string") return `meta ${v.meta.key}`;
  return stable(v);
}

const VERDICTS = new Set(["accept", "drop", "return", "continue"]);

/** One statement of a rule's "expr" list, in the form wantedTable writes. */
export function normalStatement(expr: Json): string {
  if (!isObject(expr)) return stable(expr);
  const keys = Object.keys(expr);
  if (keys.length !== 1) return stable(expr);
  const key = keys[0]!;
  const body = expr[key];
  if (key === "match" && isObject(body)) {
    // "op" may be left out where it is implicit; for a plain value that is equality.
    const op = typeof body.op === "string" && body.op !== "in" ? body.op : "==";
    return `${normalLeft(body.left)} ${op} ${normalValue(body.right)}`;
  }
  if (VERDICTS.has(key) && (body === null || (isObject(body) && Object.keys(body).length === 0))) return key;
  if (key === "masquerade" || key === "snat") {
    const flags = isObject(body) ? body.flags : undefined;
    const list = (Array.isArray(flags) ? flags : flags === undefined ? [] : [flags]).map(String).sort();
    const rest = isObject(body) ? Object.keys(body).filter((k) => k !== "flags") : [];
    if (rest.length === 0) return [key, list.join(",")].filter(Boolean).join(" ");
  }
  return stable(expr);
}

function priorityOf(v: Json): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "string") return PRIORITY_NAMES[v] ?? (/^-?[0-9]+$/.test(v) ? Number(v) : undefined);
  return undefined;
}

/**
 * Our table in the `nft -j list table ...` output, as the model; undefined when it is not there. Objects
 * of other tables are ignored; anything in ours the model does not know is kept in `others`.
 */
export function parseNftTable(json: string, family: "ip" | "ip6", name: string): NftTable | undefined {
  const parsed = JSON.parse(json) as Json;
  const objects = isObject(parsed) && Array.isArray(parsed.nftables) ? parsed.nftables : [];
  let found = false;
  let comment: string | undefined;
  const chains = new Map<string, { head: Omit<NftChain, "rules"> | undefined; rules: string[][] }>();
  const chainOf = (n: string) => {
    let c = chains.get(n);
    if (!c) {
      c = { head: undefined, rules: [] };
      chains.set(n, c);
    }
    return c;
  };
  const others: string[] = [];
  for (const object of objects) {
    if (!isObject(object)) continue;
    const [kind] = Object.keys(object);
    const body = kind === undefined ? undefined : object[kind];
    if (!kind || !isObject(body) || body.family !== family) continue;
    if (kind === "table") {
      if (body.name !== name) continue;
      found = true;
      if (typeof body.comment === "string") comment = body.comment;
      continue;
    }
    if (kind === "metainfo" || body.table !== name) continue;
    if (kind === "chain" && typeof body.name === "string") {
      const priority = priorityOf(body.prio);
      if (typeof body.type !== "string" || typeof body.hook !== "string" || priority === undefined) {
        others.push(`chain ${body.name}`);
        continue;
      }
      chainOf(body.name).head = {
        name: body.name,
        type: body.type,
        hook: body.hook,
        priority,
        policy: typeof body.policy === "string" ? body.policy : "accept",
        ...(typeof body.comment === "string" ? { comment: body.comment } : {}),
      };
    } else if (kind === "rule" && typeof body.chain === "string") {
      const expr = Array.isArray(body.expr) ? body.expr : [];
      chainOf(body.chain).rules.push(expr.map(normalStatement));
    } else others.push(`${kind} ${typeof body.name === "string" ? body.name : stable(body)}`);
  }
  if (!found) return undefined;
  const list: NftChain[] = [];
  for (const [chainName, { head, rules }] of chains) {
    if (head) list.push({ ...head, rules });
    else others.push(`rules of chain ${chainName}`);
  }
  return {
    family,
    name,
    ...(comment !== undefined ? { comment } : {}),
    chains: list,
    ...(others.length ? { others } : {}),
  };
}

function sameChain(a: NftChain, b: NftChain): boolean {
  return (
    a.name === b.name &&
    a.type === b.type &&
    a.hook === b.hook &&
    a.priority === b.priority &&
    a.policy === b.policy &&
    a.rules.length === b.rules.length &&
    a.rules.every((rule, i) => {
      const other = b.rules[i]!;
      return rule.length === other.length && rule.every((s, j) => s === other[j]);
    })
  );
}

/**
 * True when the kernel's table does what the wanted one says: same chains (any order) with the same hook,
 * priority, policy and rules in order. Comments and handles do not count (not every nft prints them).
 */
export function sameTable(want: NftTable, actual: NftTable | undefined): boolean {
  if (!actual || actual.family !== want.family || actual.name !== want.name) return false;
  if ((actual.others?.length ?? 0) > 0 || actual.chains.length !== want.chains.length) return false;
  return want.chains.every((chain) => {
    const other = actual.chains.find((c) => c.name === chain.name);
    return other !== undefined && sameChain(chain, other);
  });
}
