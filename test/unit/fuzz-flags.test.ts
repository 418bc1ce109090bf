// Fuzz: weftd's command line and FLANNELD_* environment, as an operator (or a templating mistake) gives them.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { FlagError, parseFlags } from "../../src/daemon/flags.js";
import { checkProperty, onlyOwnErrors } from "./fuzz-harness.js";
import { hostileString, nearIP, smallHostileString } from "./fuzz-inputs.js";

const names = [
  "etcd-endpoints",
  "etcd-prefix",
  "iface",
  "iface-regex",
  "subnet-file",
  "public-ip",
  "subnet-lease-renew-margin",
  "ip-masq",
  "kube-subnet-mgr",
  "healthz-ip",
  "healthz-port",
  "iptables-resync",
  "iptables-forward-rules",
  "v",
  "help",
];

function flagArgs(small: boolean) {
  const text = small ? smallHostileString : hostileString;
  const value = fc.oneof(
    text,
    nearIP,
    fc.constantFrom(
      "true",
      "FALSE",
      "t",
      "0",
      "1",
      "0x1F",
      "0o17",
      "017",
      "1_000",
      "-5",
      "99999",
      "9".repeat(400),
    ),
  );
  const name = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...names) }, text);
  const arg = fc.oneof(
    fc.tuple(fc.constantFrom("-", "--"), name, value).map(([dash, n, v]) => `${dash}${n}=${v}`),
    fc.tuple(fc.constantFrom("-", "--"), name).map(([dash, n]) => `${dash}${n}`),
    value,
    fc.constantFrom("--", "-", "---x", "-=1", "--="),
  );
  const env = fc.dictionary(
    fc.oneof(
      fc.constantFrom(...names).map((n) => `FLANNELD_${n.toUpperCase().replace(/-/g, "_")}`),
      text,
    ),
    value,
    { maxKeys: 4 },
  );
  return fc.tuple(fc.array(arg, { maxLength: 8 }), env);
}

describe("fuzz: weftd flags", () => {
  it("parseFlags throws nothing but FlagError, bounded and one line, for any argv and environment", (t) => {
    checkProperty(t, { runs: 3000 }, flagArgs(false), ([argv, env]) => {
      const flags = onlyOwnErrors([FlagError], () => parseFlags(argv, env));
      if (!flags) return;
      // Whatever was accepted reads back with the right type.
      assert.equal(typeof flags.bool("ip-masq"), "boolean");
      assert.equal(typeof flags.string("subnet-file"), "string");
      assert.ok(Array.isArray(flags.list("iface")));
    });
  });

  it("an int flag is a whole number in int64 range, or refused (Go's ParseInt)", (t) => {
    checkProperty(t, { runs: 3000 }, flagArgs(true), ([argv, env]) => {
      const flags = onlyOwnErrors([FlagError], () => parseFlags(argv, env));
      for (const name of ["healthz-port", "v", "iptables-resync", "subnet-lease-renew-margin"]) {
        const n = flags?.int(name) ?? 0;
        if (!Number.isSafeInteger(n)) assert.fail(`-${name} was accepted as ${n}`);
      }
    });
  });
});
