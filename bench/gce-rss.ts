// weftd's resident memory with Backend gce (plain REST against the GCE stand-in in the fabric) next to
// host-gw on the same one-host lab, so the figure is what the gce backend adds. Plain REST was chosen over
// google-auth-library; BENCHMARKS.md has that library's own cost, measured apart.
// Run: node dist/bench/gce-rss.js  (root; prints a JSON line).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Lab } from "../test/lab/lab.js";

const RUNS = Number(process.env.RUNS ?? 3);
const PREFIX = "/coreos.com/network";
const PORT = 8181;

const rssKb = (pid: number) =>
  Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const lab = await Lab.create({ hosts: 1, tag: "gcerss" });
try {
  const host = lab.host(1);
  const main = fileURLToPath(new URL("../test/cloud/gce-standin-main.js", import.meta.url));
  const options = { project: "bench", instances: [{ name: "node1", zone: "z1", ip: host.ip }] };
  const standin = await lab.spawn(lab.fabric, [
    process.execPath,
    main,
    JSON.stringify(options),
    lab.fabricIp,
    String(PORT),
  ]);
  await standin.waitForOutput(/listening/, 10_000);
  await lab.startEtcd();
  const env = {
    GCE_METADATA_HOST: `${lab.fabricIp}:${PORT}`,
    CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE: `http://${lab.fabricIp}:${PORT}/compute/v1/`,
  };
  const result: Record<string, number[]> = { "host-gw": [], gce: [] };
  for (let run = 0; run < RUNS; run++) {
    for (const type of ["host-gw", "gce"]) {
      await lab.etcdctl([
        "put",
        `${PREFIX}/config`,
        JSON.stringify({ Network: "10.244.0.0/16", Backend: { Type: type } }),
      ]);
      const weftd = await lab.startWeftd(host, [], env);
      await weftd.waitForOutput(/datapath programmed/, 30_000);
      await new Promise((r) => setTimeout(r, 3000));
      result[type]!.push(rssKb(weftd.pid));
      await weftd.stop();
    }
  }
  const hostGw = median(result["host-gw"]!);
  const gce = median(result.gce!);
  console.log(
    JSON.stringify({
      runs: RUNS,
      hostGwRssKb: hostGw,
      gceRssKb: gce,
      addedKb: gce - hostGw,
      samples: result,
    }),
  );
} finally {
  await lab.destroy();
}
