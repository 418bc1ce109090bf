// Fuzz: subnet.env, written by weftd and read back by weftd (its previous subnets) and by the CNI plugin;
// anyone with access to /run/flannel may have edited it, and a half-written or foreign file must not crash either.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import { parseSubnetEnv } from "../../src/cni/subnet-env.js";
import { formatCIDR, makeNetwork } from "../../src/ip/ip-network.js";
import { formatSubnetEnv, parseEnvLines, readPreviousSubnets } from "../../src/lease/subnet-env.js";
import { checkAsyncProperty, checkProperty, onlyOwnErrors, onlyOwnErrorsAsync } from "./fuzz-harness.js";
import { hostileString, mutatedText, nearCIDR, smallHostileString } from "./fuzz-inputs.js";

const dir = mkdtempSync(join(tmpdir(), "weft-fuzz-subnet-env-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const v4 = fc
  .tuple(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 1, max: 30 }))
  .map(([ip, len]) => makeNetwork({ family: 4, value: BigInt(ip) }, len));
const v6 = fc
  .tuple(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), fc.integer({ min: 1, max: 126 }))
  .map(([ip, len]) => makeNetwork({ family: 6, value: ip }, len));

/** What weftd writes: its networks and its lease's subnets, MTU and masquerade setting. */
const env = fc.record({
  network: fc.option(v4, { nil: undefined }),
  subnet: fc.option(v4, { nil: undefined }),
  ipv6Network: fc.option(v6, { nil: undefined }),
  ipv6Subnet: fc.option(v6, { nil: undefined }),
  mtu: fc.integer({ min: 0, max: 65535 }),
  ipMasq: fc.boolean(),
});

const line = fc.oneof(
  fc
    .tuple(
      fc.constantFrom(
        "FLANNEL_NETWORK",
        "FLANNEL_SUBNET",
        "FLANNEL_IPV6_NETWORK",
        "FLANNEL_IPV6_SUBNET",
        "FLANNEL_MTU",
        "FLANNEL_IPMASQ",
        "#X",
        "",
      ),
      fc.oneof(
        nearCIDR,
        fc.array(nearCIDR, { maxLength: 3 }).map((l) => l.join(",")),
        fc.constantFrom("1450", "true", "-1", "99999999999"),
        hostileString,
      ),
    )
    .map(([k, v]) => `${k}=${v}`),
  fc.constantFrom("FLANNEL_SUBNET", "=", "FLANNEL_MTU=1450\r", " FLANNEL_MTU = 1450"),
  smallHostileString,
);

/** subnet.env text: what weftd writes, damaged, or anything at all. */
const envText = fc.oneof(
  env.map(formatSubnetEnv),
  mutatedText(env.map(formatSubnetEnv)),
  fc
    .array(line, { maxLength: 10 })
    .map((lines) => lines.join(fc.sample(fc.constantFrom("\n", "\r\n"), 1)[0])),
  hostileString,
);

describe("fuzz: subnet.env", () => {
  it("what weftd writes, the CNI plugin reads back as the same networks, subnets, MTU and masquerade", (t) => {
    checkProperty(t, { runs: 1500 }, env, (e) => {
      const text = formatSubnetEnv(e);
      const complete = (e.network && e.subnet) || (e.ipv6Network && e.ipv6Subnet);
      if (!complete) return assert.throws(() => parseSubnetEnv(text, "subnet.env"), /is missing/);
      const read = parseSubnetEnv(text, "subnet.env");
      assert.equal(read.mtu, e.mtu);
      assert.equal(read.ipMasq, e.ipMasq);
      if (e.network && e.subnet) {
        assert.deepEqual(
          read.networks.map((n) => `${bytesText(n.network)}/${n.prefix}`),
          [formatCIDR(e.network)].map(goForm),
        );
        assert.equal(
          `${bytesText(read.subnet!.network)}/${read.subnet!.prefix}`,
          goForm(formatCIDR(e.subnet)),
        );
      }
    });
  });

  it("weftd reads back the subnets it wrote; parseEnvLines never throws on any text", (t) => {
    checkProperty(t, { runs: 2000 }, fc.oneof(env.map(formatSubnetEnv), envText), (text) => {
      const vars = onlyOwnErrors([], () => parseEnvLines(text));
      for (const [k, v] of vars ?? []) {
        assert.ok(!k.includes("\n") && !v.includes("\n"));
      }
    });
  });

  it("readPreviousSubnets never rejects on any file content; what it returns is a network", async (t) => {
    const path = join(dir, "subnet.env");
    await checkAsyncProperty(t, { runs: 300 }, envText, async (text) => {
      writeFileSync(path, text);
      const prev = await onlyOwnErrorsAsync([], () => readPreviousSubnets(path));
      if (prev?.subnet) assert.equal(prev.subnet.family, 4);
      if (prev?.ipv6Subnet) assert.equal(prev.ipv6Subnet.family, 6);
    });
  });

  it("the CNI plugin's reader throws only its upstream-worded Error, bounded and one line", (t) => {
    checkProperty(t, { runs: 3000 }, envText, (text) => {
      onlyOwnErrors([Error], () => parseSubnetEnv(text, "/run/flannel/subnet.env"));
    });
  });

  it("a long FLANNEL_NETWORK list is read in linear time", (t) => {
    const list = fc.integer({ min: 1000, max: 20000 }).map((n) => {
      const nets = Array.from({ length: n }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.0/24`).join(",");
      return `FLANNEL_NETWORK=${nets}\nFLANNEL_SUBNET=10.0.0.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n`;
    });
    checkProperty(t, { runs: 20 }, list, (text) => {
      onlyOwnErrors([Error], () => parseSubnetEnv(text, "/run/flannel/subnet.env"));
    });
  });
});

function bytesText(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join(".");
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return words.join(":");
}

/** A CIDR in bytesText's uncompressed form, to compare weft's IP module with the plugin's Go-style one. */
function goForm(cidr: string): string {
  const [ip, len] = cidr.split("/");
  if (!ip!.includes(":")) return cidr;
  const [head, tail] = ip!.split("::");
  const h = head ? head.split(":") : [];
  const tl = tail ? tail.split(":") : [];
  const groups = ip!.includes("::") ? [...h, ...Array(8 - h.length - tl.length).fill("0"), ...tl] : h;
  return `${groups.map((g) => Number.parseInt(g, 16).toString(16)).join(":")}/${len}`;
}
