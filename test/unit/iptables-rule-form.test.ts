/** iptables rules compared in normal form: the same rule printed another way is equal, a changed one is not. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { normalRule, sameRule, splitWords } from "../../src/firewall/iptables-rule-form.js";
import { repairInput } from "../../src/firewall/rule-diff.js";
import { masqueradeRules } from "../../src/firewall/traffic-rules.js";
import { type IPNetwork, parseCIDR } from "../../src/ip/ip-network.js";

const cidr = (t: string) => parseCIDR(t) as IPNetwork;
const want = masqueradeRules(cidr("10.244.0.0/16"), cidr("10.244.1.0/24"), true);

/** What another iptables might print for flanneld's masquerade chain: same rules, other spellings. */
const OTHER_PRINTING = [
  "-m mark --mark 16384/16384 -m comment --comment 'flanneld masq' -j RETURN",
  "-d 10.244.0.0/255.255.0.0 -s 10.244.0.0/16 -m comment --comment flanneld\\ masq -j RETURN",
  '-s 10.244.0.0/16 -d ! 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully',
  '! -s 10.244.0.0/16 -d 10.244.1.0/24 -m comment --comment "flanneld masq" -j RETURN',
  '-m comment --comment "flanneld masq" ! -s 10.244.0.0/16 -d 10.244.0.0/16 -j MASQUERADE --random-fully',
];

function save(chainRules: readonly string[]): string {
  return [
    "*nat",
    ":POSTROUTING ACCEPT [0:0]",
    ":FLANNEL-POSTRTG - [0:0]",
    "-A POSTROUTING -m comment --comment 'flanneld masq' -j FLANNEL-POSTRTG",
    ...chainRules.map((r) => `-A FLANNEL-POSTRTG ${r}`),
    "COMMIT",
    "",
  ].join("\n");
}

describe("iptables rules in normal form", () => {
  it("splits words like a shell", () => {
    assert.deepEqual(splitWords(`-m comment --comment "a b" -x 'c d' e\\ f`), [
      "-m",
      "comment",
      "--comment",
      "a b",
      "-x",
      "c d",
      "e f",
    ]);
  });

  it("finds flanneld's rules printed another way equal, rule by rule", () => {
    for (const [i, rule] of want.rules.entries())
      assert.ok(
        sameRule(rule, OTHER_PRINTING[i]!),
        `${rule}\n${OTHER_PRINTING[i]}\n${normalRule(OTHER_PRINTING[i]!)}`,
      );
  });

  it("finds a changed rule different", () => {
    const [mark, inside, egress] = [want.rules[0]!, want.rules[1]!, want.rules[2]!];
    assert.ok(!sameRule(inside, inside.replace("-d 10.244.0.0/16", "-d 10.245.0.0/16")));
    assert.ok(!sameRule(egress, egress.replace("! -d", "-d")), "negation matters");
    assert.ok(!sameRule(egress, egress.replace("! -d", "! -s")), "which option it negates matters");
    assert.ok(!sameRule(egress, egress.replace(" --random-fully", "")));
    assert.ok(!sameRule(mark, mark.replace("0x4000/0x4000", "0x4000/0xffff")));
    assert.ok(!sameRule(mark, mark.replace("RETURN", "ACCEPT")));
    assert.ok(
      !sameRule(inside, inside.replace("flanneld masq", "flanneld  masq")),
      "the comment is compared",
    );
  });

  it("repairs nothing when the whole chain is printed another way, and repairs a changed one", () => {
    assert.equal(repairInput(save(OTHER_PRINTING), want), undefined);
    const changed = [...OTHER_PRINTING];
    changed[2] = changed[2]!.replace("224.0.0.0/4", "224.0.0.0/8");
    assert.match(repairInput(save(changed), want) ?? "", /^:FLANNEL-POSTRTG - \[0:0\]$/m);
  });
});
