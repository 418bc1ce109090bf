// Fuzz: the flannel CNI plugin's stdin and CNI_* environment, as a container runtime (or a broken .conflist)
// hands them over. What the runtime sees is the CNI error JSON; no input may crash the plugin or hang it.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import { readCniEnv, validateContainerID, validateInterfaceName } from "../../src/cni/cni-env.js";
import { asCniError, CniError, formatCniError } from "../../src/cni/cni-error.js";
import { requireSupportedVersion } from "../../src/cni/cni-version.js";
import { buildDelegateConfig } from "../../src/cni/delegate-config.js";
import {
  configVersion,
  decodeFlannelNetConf,
  parseConfigDocument,
  validatedNetworkName,
} from "../../src/cni/net-conf.js";
import { runPlugin } from "../../src/cni/plugin.js";
import { parseSubnetEnv, SubnetEnvError } from "../../src/cni/subnet-env.js";
import {
  checkAsyncProperty,
  checkProperty,
  errorFinding,
  onlyOwnErrors,
  textFinding,
} from "./fuzz-harness.js";
import {
  fieldValue,
  flatWrongJson,
  hostileString,
  jsonDocumentText,
  jsonText,
  nearCIDR,
  recordOf,
  smallHostileString,
  wrongJson,
} from "./fuzz-inputs.js";

/**
 * The plugin's errors: CniError, and plain Errors worded as upstream's Go errors (which the entry point
 * turns into code 999, as the CNI skeleton does). A TypeError or RangeError is a crash in disguise.
 */
const CNI_ERRORS = [CniError, SubnetEnvError, Error];

const dir = mkdtempSync(join(tmpdir(), "weft-fuzz-cni-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const cniPath = join(dir, "bin"); // empty: no delegate is ever found, so none is ever run
const dataDir = join(dir, "data");
const subnetFile = join(dir, "subnet.env");
mkdirSync(cniPath);
mkdirSync(dataDir);
writeFileSync(
  subnetFile,
  "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_IPV6_NETWORK=fd44::/56\nFLANNEL_IPV6_SUBNET=fd44:0:0:7::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
);
const subnetEnv = parseSubnetEnv(
  "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
  subnetFile,
);

const version = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom("0.1.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0", "") },
  {
    weight: 1,
    arbitrary: fc.constantFrom("2.0.0", "1", "1.1", "01.0.0", "1.0.0-rc1", "99999999999999999999.0.0"),
  },
  { weight: 1, arbitrary: smallHostileString },
);
function netConf(flat: boolean) {
  const junk = flat ? flatWrongJson : wrongJson;
  const route = recordOf(
    {
      dst: fieldValue(nearCIDR, flat),
      gw: fieldValue(fc.ipV4(), flat),
      mtu: fieldValue(fc.integer(), flat),
      priority: fieldValue(fc.integer(), flat),
    },
    junk,
  );
  const ipam = recordOf(
    {
      type: fieldValue(fc.constantFrom("host-local", "dhcp"), flat),
      routes: fc.oneof(fc.array(fc.oneof(route, junk), { maxLength: 4 }), junk),
      ranges: junk,
    },
    junk,
  );
  const delegate = recordOf(
    {
      type: fieldValue(fc.constantFrom("bridge", "ptp", "macvlan", "../bin/sh", ""), flat),
      isDefaultGateway: fieldValue(fc.boolean(), flat),
      ipMasq: fieldValue(fc.boolean(), flat),
      mtu: fieldValue(fc.integer({ min: 0, max: 9000 }), flat),
      name: junk,
      ipam: junk,
    },
    junk,
  );
  /** A network config document as a .conflist entry would be. */
  return recordOf(
    {
      cniVersion: fieldValue(version, flat),
      name: fieldValue(
        fc.oneof(fc.constantFrom("cbr0", "k8s-pod-network"), flat ? smallHostileString : hostileString),
        flat,
      ),
      type: fieldValue(fc.constant("flannel"), flat),
      delegate: fc.oneof({ weight: 4, arbitrary: delegate }, junk),
      ipam: fc.oneof({ weight: 3, arbitrary: ipam }, junk),
      runtimeConfig: junk,
      prevResult: junk,
      "cni.dev/valid-attachments": fc.oneof(
        fc.array(
          recordOf(
            {
              containerID: fieldValue(fc.constantFrom("abc", "c1"), flat),
              ifname: fieldValue(fc.constant("eth0"), flat),
            },
            junk,
          ),
        ),
        junk,
      ),
    },
    junk,
  );
}

const cniEnv = recordOf({
  CNI_COMMAND: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom("ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION") },
    { weight: 1, arbitrary: fc.constantFrom("add", "", "ADD ") },
    { weight: 1, arbitrary: hostileString },
  ),
  CNI_CONTAINERID: fc.oneof(fc.constantFrom("abc", "c1", "0123456789abcdef".repeat(4)), hostileString),
  CNI_NETNS: fc.oneof(fc.constantFrom("/var/run/netns/x", "/proc/self/ns/net", ""), smallHostileString),
  CNI_IFNAME: fc.oneof(fc.constantFrom("eth0", "net1", "a".repeat(16), "."), hostileString),
  CNI_ARGS: fc.oneof(fc.constantFrom("IgnoreUnknown=1;K8S_POD_NAME=x"), hostileString),
  CNI_PATH: fc.oneof(fc.constant("/opt/cni/bin"), hostileString),
}).map((env) => {
  // recordOf varies key case; the environment is case-sensitive, so keep what a runtime sets.
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (typeof v === "string") out[k.toUpperCase()] = v;
  return out;
});

describe("fuzz: CNI environment", () => {
  it("readCniEnv and the name checks throw only CniError, bounded and one line", (t) => {
    checkProperty(t, { runs: 3000 }, cniEnv, (env) => {
      const read = onlyOwnErrors([CniError], () => readCniEnv(env));
      if (!read) return;
      onlyOwnErrors([CniError], () => validateContainerID(read.containerID));
      onlyOwnErrors([CniError], () => validateInterfaceName(read.ifName));
    });
  });
});

const stdinText = jsonDocumentText(netConf(false));
const flatStdinText = jsonDocumentText(netConf(true), true);

/** Every stage the plugin runs on stdin before it touches anything: parse, name, version, netconf, delegate. */
function decodeStdin(text: string, check: boolean): void {
  const options = { checkText: check };
  const doc = onlyOwnErrors(CNI_ERRORS, () => parseConfigDocument(text), options);
  if (!doc) return;
  if (onlyOwnErrors(CNI_ERRORS, () => validatedNetworkName(doc), options) === undefined) return;
  const v = onlyOwnErrors(CNI_ERRORS, () => configVersion(doc), options);
  if (v === undefined) return;
  onlyOwnErrors(CNI_ERRORS, () => requireSupportedVersion(v), options);
  const conf = onlyOwnErrors(CNI_ERRORS, () => decodeFlannelNetConf(doc), options);
  if (!conf) return;
  const built = onlyOwnErrors(CNI_ERRORS, () => buildDelegateConfig(conf, subnetEnv), options);
  if (!built) return;
  const bytes = JSON.parse(built.bytes) as Record<string, unknown>;
  assert.equal(bytes["type"], built.type);
  assert.equal(typeof bytes["name"], "string");
}

describe("fuzz: CNI stdin", () => {
  it("decoding any stdin (deep and huge included) throws only the plugin's errors, bounded", (t) => {
    checkProperty(t, { runs: 1500 }, stdinText, (text) => decodeStdin(text, true));
  });

  it("decoding flat stdin to the delegate's config: only the plugin's errors, bounded and one line", (t) => {
    checkProperty(t, { runs: 2000 }, flatStdinText, (text) => decodeStdin(text, true));
  });
});

describe("fuzz: the whole plugin", () => {
  const commands = fc.constantFrom("ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION");
  // Mostly a runtime's valid call with a few things wrong, so runs get past the first checks.
  const validEnv = { CNI_CONTAINERID: "c1", CNI_NETNS: "/var/run/netns/x", CNI_IFNAME: "eth0", CNI_ARGS: "" };
  const validDoc = {
    cniVersion: "1.1.0",
    name: "cbr0",
    type: "flannel",
    delegate: { isDefaultGateway: true },
    ipam: {},
    runtimeConfig: null,
    prevResult: null,
  };
  /** `valid` with each of its keys replaced by the generated one's value about a third of the time. */
  const mix = (valid: Record<string, unknown>, generated: fc.Arbitrary<object>) =>
    fc.tuple(generated, fc.array(fc.nat(2), { minLength: 8, maxLength: 8 })).map(([g, dice]) => {
      const out: Record<string, unknown> = { ...g };
      Object.entries(valid).forEach(([k, v], i) => {
        if (dice[i] !== 0) out[k] = v;
      });
      return out;
    });
  const runsOf = (flat: boolean) =>
    fc.record({
      env: mix(validEnv, cniEnv) as fc.Arbitrary<Record<string, string>>,
      command: commands,
      // Deep values stay RawJson text until jsonText writes stdin (a recursive writer would overflow first).
      doc: mix(validDoc, netConf(flat) as fc.Arbitrary<object>),
    });
  const runs = runsOf(false);

  it("runPlugin, from environment and stdin to the CNI error JSON: only the plugin's errors, valid JSON out", async (t) => {
    const outcomes = new Map<string, number>();
    await checkAsyncProperty(
      t,
      { runs: 400, timeLimitMs: 5000 },
      runsOf(true),
      async ({ env, command, doc }) => {
        // The plugin may only touch this test's files: its subnet.env, dataDir and an empty CNI_PATH.
        const conf = doc as Record<string, unknown>;
        for (const key of Object.keys(conf)) if (/^(subnetfile|datadir)$/i.test(key)) delete conf[key];
        conf["subnetFile"] = subnetFile;
        conf["dataDir"] = dataDir;
        const processEnv = { ...env, CNI_COMMAND: command, CNI_PATH: cniPath };
        let thrown: unknown;
        try {
          await runPlugin(processEnv, () => jsonText(conf));
        } catch (err) {
          thrown = err;
        }
        const outcome =
          thrown === undefined ? `${command} ok` : `${command} ${asCniError(thrown).message.slice(0, 30)}`;
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        if (thrown === undefined) return;
        const finding = errorFinding(thrown, CNI_ERRORS, false);
        if (finding) assert.fail(finding);
        const printed = JSON.parse(formatCniError(asCniError(thrown))) as { code: unknown; msg: unknown };
        assert.equal(typeof printed.code, "number");
        assert.equal(typeof printed.msg, "string");
        assert.deepEqual(readdirSync(cniPath), []);
      },
    );
    t.diagnostic(
      [...outcomes]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 8)
        .map(([o, n]) => `${n} × ${o}`)
        .join("; "),
    );
    const delegated = [...outcomes].filter(([o]) => /failed to (find|delegate)/.test(o));
    assert.ok(delegated.length > 0, "some runs got as far as looking for the delegate");
    // A failed ADD leaves no delegate config behind (nothing else may have been saved either).
    assert.deepEqual(
      readdirSync(dataDir, { withFileTypes: true }).filter((e) => e.name.startsWith(".")),
      [],
      "no temp file left in dataDir",
    );
  });

  it("runPlugin with deep and huge stdin: only the plugin's errors", async (t) => {
    await checkAsyncProperty(t, { runs: 150, timeLimitMs: 3000 }, runs, async ({ env, command, doc }) => {
      const conf = doc as Record<string, unknown>;
      for (const key of Object.keys(conf)) if (/^(subnetfile|datadir)$/i.test(key)) delete conf[key];
      conf["subnetFile"] = subnetFile;
      conf["dataDir"] = dataDir;
      try {
        await runPlugin({ ...env, CNI_COMMAND: command, CNI_PATH: cniPath }, () => jsonText(conf));
      } catch (err) {
        const finding = errorFinding(err, CNI_ERRORS, false);
        if (finding) assert.fail(finding);
      }
    });
  });

  it("what the runtime reads (code, msg, details) is bounded and one line", async (t) => {
    await checkAsyncProperty(t, { runs: 300, timeLimitMs: 5000 }, runs, async ({ env, command, doc }) => {
      const conf = doc as Record<string, unknown>;
      for (const key of Object.keys(conf)) if (/^(subnetfile|datadir)$/i.test(key)) delete conf[key];
      conf["subnetFile"] = subnetFile;
      conf["dataDir"] = dataDir;
      try {
        await runPlugin({ ...env, CNI_COMMAND: command, CNI_PATH: cniPath }, () => jsonText(conf));
      } catch (err) {
        const e = asCniError(err);
        for (const text of [e.message, e.details]) {
          const finding = textFinding(text);
          if (finding) assert.fail(`${finding}: ${text.slice(0, 200)}`);
        }
      }
    });
  });
});
