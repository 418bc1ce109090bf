/**
 * The cost of one resync check of the traffic rules (both families, nothing to repair): iptables mode
 * (iptables-save per table, text compare) against nftables mode (`nft -j list table`, model compare), on an
 * empty host and with 2000 foreign rules (a kube-proxy-sized nat table) beside ours. Needs root: it runs in
 * a network namespace of its own (`ip netns`), removed at the end.
 *
 *   node dist/bench/rule-check.js [rounds]
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Firewall, WantedRules } from "../src/firewall/firewall.js";
import { iptablesFirewall } from "../src/firewall/iptables.js";
import { nftablesFirewall } from "../src/firewall/nft.js";
import { type IPNetwork, parseCIDR } from "../src/ip/ip-network.js";

const cidr = (t: string) => parseCIDR(t) as IPNetwork;
const WANT: WantedRules = {
  v4: { network: cidr("10.244.0.0/16"), subnet: cidr("10.244.1.0/24") },
  v6: { network: cidr("fd44::/56"), subnet: cidr("fd44:0:0:1::/64") },
  ipMasq: true,
  randomFully: true,
  forwardRules: true,
};

async function check(firewall: Firewall): Promise<number> {
  let repaired = 0;
  for (const family of firewall.families(WANT)) repaired += await firewall.ensure(family, WANT);
  return repaired;
}

async function measure(firewall: Firewall, rounds: number): Promise<string> {
  await check(firewall);
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const started = performance.now();
    const repaired = await check(firewall);
    times.push(performance.now() - started);
    if (repaired !== 0)
      throw new Error(`${firewall.mode}: a check repaired ${repaired} (it should find them equal)`);
  }
  times.sort((a, b) => a - b);
  const pct = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))]!.toFixed(1);
  return `${firewall.mode.padEnd(9)} median ${pct(0.5)} ms  p90 ${pct(0.9)} ms`;
}

function foreignRules(): void {
  const nat = ["*nat", ":KUBE-SVC - [0:0]"];
  for (let i = 0; i < 2000; i++)
    nat.push(`-A KUBE-SVC -d 10.96.${i >> 8}.${i & 255}/32 -p tcp --dport 80 -j RETURN`);
  nat.push("COMMIT", "");
  const r = spawnSync("iptables-restore", ["--noflush"], { input: nat.join("\n") });
  if (r.status !== 0) throw new Error(`iptables-restore: ${r.stderr}`);
}

async function inside(rounds: number): Promise<void> {
  for (const load of ["empty host", "2000 foreign nat rules"]) {
    if (load !== "empty host") foreignRules();
    console.log(`${load}, ${rounds} checks of both families:`);
    for (const firewall of [iptablesFirewall, nftablesFirewall]) {
      console.log(`  ${await measure(firewall, rounds)}`);
      await firewall.removeAll();
    }
  }
}

const rounds = Number(process.argv[2] ?? 50);
if (process.env.WEFT_BENCH_INSIDE === "1") await inside(rounds);
else {
  const ns = `weft-bench-rules-${process.pid}`;
  const add = spawnSync("ip", ["netns", "add", ns], { stdio: "inherit" });
  if (add.status !== 0) process.exit(1);
  try {
    const self = fileURLToPath(import.meta.url);
    spawnSync("ip", ["netns", "exec", ns, process.execPath, self, String(rounds)], {
      stdio: "inherit",
      env: { ...process.env, WEFT_BENCH_INSIDE: "1" },
    });
  } finally {
    spawnSync("ip", ["netns", "del", ns], { stdio: "inherit" });
  }
}
