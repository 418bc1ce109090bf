// What the aws-vpc backend adds to weftd's resident memory: weftd on one lab host with host-gw (no AWS
// code loaded) against aws-vpc (the SigV4 signer imported, EC2 + IMDS stand-in in the fabric), each
// read once its datapath is programmed and the first cloud calls are done; plus the signer's import
// alone in a bare Node.
// Run: node dist/bench/aws-vpc-rss.js [runs]  (root; prints a JSON line and table rows).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Lab, type LabProcess } from "../test/lab/lab.js";

const RUNS = Number(process.argv[2] ?? 3);
const PORT = 8773;
const PREFIX = "/coreos.com/network";

function rssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]);
}

async function measure(lab: Lab, type: string, env: Record<string, string>): Promise<number> {
  await lab.etcdctl(["put", `${PREFIX}/config`, `{"Network":"10.244.0.0/16","Backend":{"Type":"${type}"}}`]);
  const weftd: LabProcess = await lab.startWeftd(lab.host(1), [], env);
  try {
    await weftd.waitForOutput(/datapath programmed/, 60_000);
    // Past the first full reconcile and GC settling.
    await new Promise((r) => setTimeout(r, 5000));
    return rssKb(weftd.pid);
  } finally {
    await weftd.stop();
  }
}

function importCostKb(): number {
  const script = `const before = process.memoryUsage().rss; await import("@smithy/signature-v4");
    globalThis.gc?.(); console.log(Math.round((process.memoryUsage().rss - before) / 1024));`;
  const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
  return Number(
    execFileSync(process.execPath, ["--expose-gc", "--input-type=module", "-e", script], {
      cwd: root,
      encoding: "utf8",
    }).trim(),
  );
}

async function main(): Promise<void> {
  const lab = await Lab.create({ hosts: 1, tag: "awsrss" });
  try {
    const standin = await lab.spawn(lab.fabric, [
      process.execPath,
      join(dirname(fileURLToPath(import.meta.url)), "..", "test", "cloud", "ec2-standin-main.js"),
      `--listen=${lab.fabricIp}:${PORT}`,
      `--instances=${lab.host(1).ip}`,
    ]);
    await standin.waitForOutput(/"url"/, 20_000);
    await lab.startEtcd();
    const endpoint = `http://${lab.fabricIp}:${PORT}`;
    const awsEnv = { AWS_EC2_METADATA_SERVICE_ENDPOINT: endpoint, AWS_ENDPOINT_URL_EC2: endpoint };
    const rows: { hostGwKb: number; awsVpcKb: number }[] = [];
    for (let i = 0; i < RUNS; i++) {
      const hostGwKb = await measure(lab, "host-gw", {});
      const awsVpcKb = await measure(lab, "aws-vpc", awsEnv);
      rows.push({ hostGwKb, awsVpcKb });
    }
    const importKb = importCostKb();
    console.log(JSON.stringify({ rows, importKb }));
    for (const [i, r] of rows.entries()) {
      const mb = (kb: number) => `${(kb / 1024).toFixed(1)} MB`;
      console.log(
        `| run ${i + 1} | ${mb(r.hostGwKb)} | ${mb(r.awsVpcKb)} | +${mb(r.awsVpcKb - r.hostGwKb)} |`,
      );
    }
    console.log(`signer import alone in bare Node: +${(importKb / 1024).toFixed(1)} MB RSS`);
  } finally {
    await lab.destroy();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
