/**
 * Runs the GCE stand-in as a process in the lab's fabric namespace, which plays Google's network: each
 * route the stand-in holds is installed there as "destRange via <next-hop instance's address>", so
 * traffic between hosts' subnets flows only through routes weft put in the "cloud".
 * Usage: node gce-standin-main.js '<StandinOptions JSON>' <host> <port>
 */
import { execFileSync } from "node:child_process";
import { GceStandin, type StoredRoute } from "./gce-standin.js";

const options = JSON.parse(process.argv[2] ?? "{}");
const host = process.argv[3] ?? "0.0.0.0";
const port = Number(process.argv[4] ?? 8181);
const installed = new Map<string, string>();

function install(routes: readonly StoredRoute[]): void {
  const wanted = new Map<string, string>();
  for (const r of routes) {
    const vm = standin.options.instances.find((i) => r.nextHopInstance?.endsWith(`/instances/${i.name}`));
    if (vm) wanted.set(r.destRange, vm.ip);
  }
  for (const [dst, via] of wanted)
    if (installed.get(dst) !== via) {
      execFileSync("ip", ["route", "replace", dst, "via", via]);
      installed.set(dst, via);
    }
  for (const dst of [...installed.keys()])
    if (!wanted.has(dst)) {
      execFileSync("ip", ["route", "del", dst]);
      installed.delete(dst);
    }
  console.log(`fabric routes: ${[...installed].map(([d, v]) => `${d} via ${v}`).join(", ") || "(none)"}`);
}

const standin = new GceStandin({
  ...options,
  onRoutesChanged: install,
  // Each mutation on stdout, so a lab test can count inserts and deletes.
  onMutation: (what: string) => console.log(`api: ${what}`),
});
const base = await standin.listen(port, host);
console.log(`gce stand-in listening on ${base}`);
process.on("SIGTERM", () => {
  for (const dst of installed.keys()) execFileSync("ip", ["route", "del", dst]);
  process.exit(0);
});
