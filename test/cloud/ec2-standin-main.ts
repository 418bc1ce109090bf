#!/usr/bin/env node
/**
 * The EC2 stand-in as its own process, for the lab: it runs in the fabric namespace and plays the VPC's
 * router too, installing every instance route of the instances' subnet table into this namespace's
 * kernel (dst via the instance's address), so hosts' pods reach each other only through routes weft
 * put in the cloud.
 *   node dist/test/cloud/ec2-standin-main.js --listen=172.31.0.254:8773 --instances=172.31.0.1,172.31.0.2
 *     [--log-requests]
 * Prints one JSON line {"url"} once it listens; stops on SIGTERM.
 */
import { execFile } from "node:child_process";
import { Ec2Standin, type StandinRouteTable } from "./ec2-standin.js";
import { testOptions } from "./ec2-standin-fixture.js";

function option(name: string, fallback: string): string {
  const prefix = `--${name}=`;
  const arg = process.argv.slice(2).find((a) => a.startsWith(prefix));
  return arg ? arg.slice(prefix.length) : fallback;
}

const ip = (args: string[]): Promise<void> =>
  new Promise((resolve) => {
    execFile("ip", args, (err, _out, stderr) => {
      if (err) process.stderr.write(`ip ${args.join(" ")}: ${stderr.trim()}\n`);
      resolve();
    });
  });

async function main(): Promise<void> {
  const [host, port] = option("listen", "127.0.0.1:0").split(":");
  const addresses = option("instances", "").split(",").filter(Boolean);
  const logRequests = process.argv.includes("--log-requests");
  /** dst -> via, as installed in this namespace. */
  const installed = new Map<string, string>();
  let syncing: Promise<void> = Promise.resolve();
  const options = testOptions(addresses, { host: host!, port: Number(port) });
  const sync = (table: StandinRouteTable) => {
    if (!table.subnetIds.includes(options.instances[0]?.subnetId ?? "")) return;
    const want = new Map<string, string>();
    for (const r of table.routes) {
      const instance = options.instances.find((i) => i.instanceId === r.instanceId);
      if (instance) want.set(r.destination, instance.privateIp);
    }
    syncing = syncing.then(async () => {
      for (const [dst, via] of want) {
        if (installed.get(dst) === via) continue;
        await ip(["route", "replace", dst, "via", via, "proto", "static"]);
        installed.set(dst, via);
      }
      for (const dst of [...installed.keys()]) {
        if (want.has(dst)) continue;
        await ip(["route", "del", dst, "proto", "static"]);
        installed.delete(dst);
      }
    });
  };
  const standin = new Ec2Standin({ ...options, onRoutesChanged: sync });
  const url = await standin.listen();
  if (logRequests) {
    const calls = standin.calls;
    const push = calls.push.bind(calls);
    calls.push = (...items) => {
      for (const c of items)
        process.stderr.write(`ec2 ${c.action} from ${c.from} ${JSON.stringify(c.params)}\n`);
      return push(...items);
    };
  }
  process.stdout.write(`${JSON.stringify({ url })}\n`);
  const stop = () => void standin.close().finally(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  process.stderr.write(`ec2 stand-in: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
