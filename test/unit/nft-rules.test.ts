/** flanneld's nftables rules (EnableNFTables): the wanted tables, the nft script, and the comparison with `nft -j`. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { WantedRules } from "../../src/firewall/firewall.js";
import {
  deleteTablesScript,
  normalStatement,
  parseNftTable,
  presentTables,
  replaceTableScript,
  sameTable,
  wantedTable,
} from "../../src/firewall/nft-rules.js";
import { type IPNetwork, parseCIDR } from "../../src/ip/ip-network.js";

const cidr = (text: string) => parseCIDR(text) as IPNetwork;
const WANT: WantedRules = {
  v4: { network: cidr("10.244.0.0/16"), subnet: cidr("10.244.1.0/24") },
  v6: { network: cidr("fd44::/56"), subnet: cidr("fd44:0:0:3::/64") },
  ipMasq: true,
  randomFully: true,
  forwardRules: true,
};

/** `nft -j list table ip flannel-ipv4` (nft 1.0.6) after flannel's rules for 10.244.0.0/16, subnet 10.244.1.0/24. */
const NFT_106_V4 = JSON.stringify({
  nftables: [
    { metainfo: { version: "1.0.6", release_name: "Lester Gooch #5", json_schema_version: 1 } },
    { table: { family: "ip", name: "flannel-ipv4", handle: 1 } },
    {
      chain: {
        family: "ip",
        table: "flannel-ipv4",
        name: "postrtg",
        handle: 1,
        type: "nat",
        hook: "postrouting",
        prio: 100,
        policy: "accept",
      },
    },
    {
      chain: {
        family: "ip",
        table: "flannel-ipv4",
        name: "forward",
        handle: 2,
        type: "filter",
        hook: "forward",
        prio: 0,
        policy: "accept",
      },
    },
    {
      rule: {
        family: "ip",
        table: "flannel-ipv4",
        chain: "postrtg",
        handle: 3,
        expr: [{ match: { op: "==", left: { meta: { key: "mark" } }, right: 16384 } }, { return: null }],
      },
    },
    {
      rule: {
        family: "ip",
        table: "flannel-ipv4",
        chain: "postrtg",
        handle: 4,
        expr: [
          {
            match: {
              op: "==",
              left: { payload: { protocol: "ip", field: "saddr" } },
              right: { prefix: { addr: "10.244.1.0", len: 24 } },
            },
          },
          {
            match: {
              op: "==",
              left: { payload: { protocol: "ip", field: "daddr" } },
              right: { prefix: { addr: "10.244.0.0", len: 16 } },
            },
          },
          { return: null },
        ],
      },
    },
    {
      rule: {
        family: "ip",
        table: "flannel-ipv4",
        chain: "postrtg",
        handle: 5,
        expr: [
          {
            match: {
              op: "==",
              left: { payload: { protocol: "ip", field: "saddr" } },
              right: { prefix: { addr: "10.244.0.0", len: 16 } },
            },
          },
          {
            match: {
              op: "==",
              left: { payload: { protocol: "ip", field: "daddr" } },
              right: { prefix: { addr: "10.244.1.0", len: 24 } },
            },
          },
          { return: null },
        ],
      },
    },
    {
      rule: {
        family: "ip",
        table: "flannel-ipv4",
        chain: "postrtg",
        handle: 6,
        expr: [
          {
            match: {
              op: "!=",
              left: { payload: { protocol: "ip", field: "saddr" } },
              right: { prefix: { addr: "10.244.1.0", len: 24 } },
            },
          },
          {
            match: {
              op: "==",
              left: { payload: { protocol: "ip", field: "daddr" } },
              right: { prefix: { addr: "10.244.0.0", len: 16 } },
            },
          },
          { return: null },
        ],
      },
    },
    {
      rule: {
        family: "ip",
        table: "flannel-ipv4",
        chain: "postrtg",
        handle: 7,
        expr: [
          {
            match: {
              op: "==",
              left: { payload: { protocol: "ip", field: "saddr" } },
              right: { prefix: { addr: "10.244.0.0", len: 16 } },
            },
          },
          {
            match: {
              op: "!=",
              left: { payload: { protocol: "ip", field: "daddr" } },
              right: { prefix: { addr: "224.0.0.0", len: 4 } },
            },
          },
          { masquerade: { flags: "fully-random" } },
        ],
      },
    },
    {
      rule: {
        family: "ip",
        table: "flannel-ipv4",
        chain: "postrtg",
        handle: 8,
        expr: [
          {
            match: {
              op: "!=",
              left: { payload: { protocol: "ip", field: "saddr" } },
              right: { prefix: { addr: "10.244.0.0", len: 16 } },
            },
          },
          {
            match: {
              op: "==",
              left: { payload: { protocol: "ip", field: "daddr" } },
              right: { prefix: { addr: "10.244.0.0", len: 16 } },
            },
          },
          { masquerade: { flags: "fully-random" } },
        ],
      },
    },
    {
      rule: {
        family: "ip",
        table: "flannel-ipv4",
        chain: "forward",
        handle: 9,
        expr: [
          {
            match: {
              op: "==",
              left: { payload: { protocol: "ip", field: "saddr" } },
              right: { prefix: { addr: "10.244.0.0", len: 16 } },
            },
          },
          { accept: null },
        ],
      },
    },
    {
      rule: {
        family: "ip",
        table: "flannel-ipv4",
        chain: "forward",
        handle: 10,
        expr: [
          {
            match: {
              op: "==",
              left: { payload: { protocol: "ip", field: "daddr" } },
              right: { prefix: { addr: "10.244.0.0", len: 16 } },
            },
          },
          { accept: null },
        ],
      },
    },
  ],
});

type Json = Record<string, unknown>;

/**
 * The same table as another nft version might print it: rules before their chains and out of chain
 * order, other handles, prefixes as "addr/len" strings, the mark in hex, flags as a list, implicit "==",
 * priorities by name, comments present.
 */
function reprinted(json: string): string {
  const objects = (JSON.parse(json) as { nftables: Json[] }).nftables;
  const out = objects.map((object) => {
    const [kind] = Object.keys(object);
    const body = { ...(object[kind!] as Json) };
    if (body.handle !== undefined) body.handle = Number(body.handle) + 100;
    if (kind === "table") body.comment = "rules for flannel-ipv4";
    if (kind === "chain") body.prio = body.prio === 100 ? "srcnat" : "filter";
    if (kind === "rule")
      body.expr = (body.expr as Json[]).map((e) => {
        const m = e.match as Json | undefined;
        if (m) {
          const right = m.right as { prefix?: { addr: string; len: number } } | number;
          const r =
            typeof right === "number"
              ? `0x${right.toString(16).padStart(8, "0")}`
              : `${right.prefix!.addr}/${right.prefix!.len}`;
          const { op, ...rest } = m;
          return { match: op === "==" ? { ...rest, right: r } : { ...m, right: r } };
        }
        if (e.masquerade) return { masquerade: { flags: ["fully-random"] } };
        if ("return" in e) return { return: {} };
        return e;
      });
    return { [kind!]: body };
  });
  const rules = out.filter((o) => "rule" in o).reverse();
  const chains = out.filter((o) => "chain" in o);
  const rest = out.filter((o) => !("rule" in o) && !("chain" in o));
  // reverse() put each chain's rules backwards: restore order within each chain, keep chains swapped.
  const byChain = (name: string) => rules.filter((o) => (o.rule as Json).chain === name).reverse();
  return JSON.stringify({
    nftables: [...rest, ...byChain("forward"), chains[1], ...byChain("postrtg"), chains[0]],
  });
}

describe("nftables rules (EnableNFTables)", () => {
  it("are flannel's table, chains, hooks, priorities and rule order for IPv4", () => {
    const table = wantedTable(4, WANT);
    assert.equal(table.family, "ip");
    assert.equal(table.name, "flannel-ipv4");
    assert.deepEqual(
      table.chains.map((c) => [c.name, c.type, c.hook, c.priority, c.policy]),
      [
        ["postrtg", "nat", "postrouting", 100, "accept"],
        ["forward", "filter", "forward", 0, "accept"],
      ],
    );
    assert.deepEqual(table.chains[0]!.rules, [
      ["meta mark == 16384", "return"],
      ["ip saddr == 10.244.1.0/24", "ip daddr == 10.244.0.0/16", "return"],
      ["ip saddr == 10.244.0.0/16", "ip daddr == 10.244.1.0/24", "return"],
      ["ip saddr != 10.244.1.0/24", "ip daddr == 10.244.0.0/16", "return"],
      ["ip saddr == 10.244.0.0/16", "ip daddr != 224.0.0.0/4", "masquerade fully-random"],
      ["ip saddr != 10.244.0.0/16", "ip daddr == 10.244.0.0/16", "masquerade fully-random"],
    ]);
    assert.deepEqual(table.chains[1]!.rules, [
      ["ip saddr == 10.244.0.0/16", "accept"],
      ["ip daddr == 10.244.0.0/16", "accept"],
    ]);
  });

  it("are the same for IPv6 in table ip6 flannel-ipv6, with ff00::/8 as multicast", () => {
    const table = wantedTable(6, { ...WANT, randomFully: false });
    assert.equal(table.family, "ip6");
    assert.equal(table.name, "flannel-ipv6");
    assert.deepEqual(table.chains[0]!.rules[4], [
      "ip6 saddr == fd44::/56",
      "ip6 daddr != ff00::/8",
      "masquerade",
    ]);
    assert.deepEqual(table.chains[0]!.rules[1], [
      "ip6 saddr == fd44:0:0:3::/64",
      "ip6 daddr == fd44::/56",
      "return",
    ]);
    assert.deepEqual(table.chains[1]!.rules, [
      ["ip6 saddr == fd44::/56", "accept"],
      ["ip6 daddr == fd44::/56", "accept"],
    ]);
  });

  it("have only the chains the flags ask for; a family without a network keeps an empty table", () => {
    assert.deepEqual(
      wantedTable(4, { ...WANT, ipMasq: false }).chains.map((c) => c.name),
      ["forward"],
    );
    assert.deepEqual(
      wantedTable(4, { ...WANT, forwardRules: false }).chains.map((c) => c.name),
      ["postrtg"],
    );
    assert.deepEqual(wantedTable(4, { ...WANT, ipMasq: false, forwardRules: false }).chains, []);
    const v6Off = wantedTable(6, { ...WANT, v6: undefined });
    assert.equal(v6Off.name, "flannel-ipv6");
    assert.deepEqual(v6Off.chains, []);
  });

  it("are written by replacing the whole table in one script", () => {
    const script = replaceTableScript(wantedTable(4, WANT));
    const lines = script.split("\n");
    assert.deepEqual(lines.slice(0, 4), [
      "table ip flannel-ipv4",
      "delete table ip flannel-ipv4",
      "table ip flannel-ipv4 {",
      '\tcomment "rules for flannel-ipv4"',
    ]);
    assert.ok(lines.includes("\t\ttype nat hook postrouting priority 100; policy accept;"));
    assert.ok(
      lines.includes("\t\tip saddr == 10.244.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random"),
    );
    assert.equal(
      deleteTablesScript([4, 6]),
      "table ip flannel-ipv4\ndelete table ip flannel-ipv4\ntable ip6 flannel-ipv6\ndelete table ip6 flannel-ipv6\n",
    );
  });
});

describe("nftables semantic comparison", () => {
  const want = wantedTable(4, WANT);

  it("finds what nft 1.0.6 printed equal to the wanted table", () => {
    const actual = parseNftTable(NFT_106_V4, "ip", "flannel-ipv4");
    assert.ok(actual);
    assert.ok(sameTable(want, actual), JSON.stringify(actual));
  });

  it("finds the same rules printed another way equal too", () => {
    const actual = parseNftTable(reprinted(NFT_106_V4), "ip", "flannel-ipv4");
    assert.ok(sameTable(want, actual), JSON.stringify(actual));
    assert.equal(actual?.comment, "rules for flannel-ipv4");
  });

  it("normalizes statements: prefixes, bare addresses, marks, flags, verdicts", () => {
    const ip = (field: string) => ({ payload: { protocol: "ip", field } });
    assert.equal(
      normalStatement({
        match: { op: "==", left: ip("saddr"), right: { prefix: { addr: "10.244.1.7", len: 24 } } },
      }),
      "ip saddr == 10.244.1.0/24",
    );
    assert.equal(
      normalStatement({ match: { left: ip("daddr"), right: "10.0.0.1" } }),
      "ip daddr == 10.0.0.1/32",
    );
    assert.equal(
      normalStatement({ match: { op: "==", left: { meta: { key: "mark" } }, right: "0x4000" } }),
      "meta mark == 16384",
    );
    assert.equal(normalStatement({ masquerade: { flags: "fully-random" } }), "masquerade fully-random");
    assert.equal(normalStatement({ masquerade: null }), "masquerade");
    assert.equal(normalStatement({ accept: null }), "accept");
    assert.match(normalStatement({ counter: { packets: 0, bytes: 0 } }), /counter/);
  });

  const objects = () => (JSON.parse(NFT_106_V4) as { nftables: Json[] }).nftables;
  const rebuild = (list: Json[]) => JSON.stringify({ nftables: list });
  const rules = (list: Json[]) => list.filter((o) => "rule" in o);

  it("finds a changed rule different", () => {
    const changed = NFT_106_V4.replace('"addr":"224.0.0.0","len":4', '"addr":"224.0.0.0","len":8');
    assert.notEqual(changed, NFT_106_V4);
    assert.ok(!sameTable(want, parseNftTable(changed, "ip", "flannel-ipv4")));
    const otherSubnet = wantedTable(4, { ...WANT, v4: { ...WANT.v4!, subnet: cidr("10.244.2.0/24") } });
    assert.ok(!sameTable(otherSubnet, parseNftTable(NFT_106_V4, "ip", "flannel-ipv4")));
    const noRandom = wantedTable(4, { ...WANT, randomFully: false });
    assert.ok(!sameTable(noRandom, parseNftTable(NFT_106_V4, "ip", "flannel-ipv4")));
  });

  it("finds a deleted, an added or a reordered rule different", () => {
    const list = objects();
    const deleted = list.filter((o) => o !== rules(list)[2]);
    assert.ok(!sameTable(want, parseNftTable(rebuild(deleted), "ip", "flannel-ipv4")));
    const added = [...list, rules(list)[0]!];
    assert.ok(!sameTable(want, parseNftTable(rebuild(added), "ip", "flannel-ipv4")));
    const [a, b] = [list.indexOf(rules(list)[1]!), list.indexOf(rules(list)[2]!)];
    const swapped = [...list];
    [swapped[a], swapped[b]] = [swapped[b]!, swapped[a]!];
    assert.ok(!sameTable(want, parseNftTable(rebuild(swapped), "ip", "flannel-ipv4")));
  });

  it("finds a changed hook or priority, an extra chain or set, or a missing table different", () => {
    assert.ok(
      !sameTable(want, parseNftTable(NFT_106_V4.replace('"prio":100', '"prio":99'), "ip", "flannel-ipv4")),
    );
    const extra = [
      ...objects(),
      { set: { family: "ip", table: "flannel-ipv4", name: "x", type: "ipv4_addr", handle: 50 } },
    ];
    assert.ok(!sameTable(want, parseNftTable(rebuild(extra), "ip", "flannel-ipv4")));
    const noForward = objects().filter(
      (o) =>
        !("chain" in o && (o.chain as Json).name === "forward") &&
        !("rule" in o && (o.rule as Json).chain === "forward"),
    );
    assert.ok(!sameTable(want, parseNftTable(rebuild(noForward), "ip", "flannel-ipv4")));
    assert.equal(parseNftTable(NFT_106_V4, "ip6", "flannel-ipv6"), undefined, "another family's table");
    assert.ok(!sameTable(want, undefined));
  });

  it("finds which of flannel's tables `nft -j list tables` shows", () => {
    const tables = (...t: Array<[string, string]>) =>
      JSON.stringify({
        nftables: [
          { metainfo: { version: "1.0.6", json_schema_version: 1 } },
          ...t.map(([family, name], handle) => ({ table: { family, name, handle } })),
        ],
      });
    assert.deepEqual(presentTables(tables()), []);
    assert.deepEqual(presentTables(tables(["ip", "nat"], ["ip6", "flannel-ipv6"])), [6]);
    assert.deepEqual(presentTables(tables(["ip", "flannel-ipv4"], ["ip6", "flannel-ipv6"])), [4, 6]);
    assert.deepEqual(
      presentTables(tables(["inet", "flannel-ipv4"], ["ip", "flannel-ipv6"])),
      [],
      "other families",
    );
  });

  it("ignores other tables in the same output", () => {
    const list = [
      ...objects(),
      { table: { family: "ip", name: "nat", handle: 9 } },
      {
        chain: {
          family: "ip",
          table: "nat",
          name: "POSTROUTING",
          handle: 1,
          type: "nat",
          hook: "postrouting",
          prio: 100,
          policy: "accept",
        },
      },
    ];
    assert.ok(sameTable(want, parseNftTable(rebuild(list), "ip", "flannel-ipv4")));
  });
});
