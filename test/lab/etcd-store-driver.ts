/**
 * Runs EtcdStore steps inside a lab namespace (where etcd is reachable) for test/lab/etcd-store.test.ts.
 * Usage: node etcd-store-driver.js '<json {connect, steps}>'. Prints one JSON line per step result and per
 * watch event (a failed step prints its error and the run goes on); exits 0 after the last step.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import { type EtcdConnectionOptions, EtcdStore } from "../../src/subnet/etcd/etcd-store.js";

export type DriverStep =
  | { op: "get"; key: string }
  | { op: "list"; prefix: string }
  | { op: "grant"; ttl: number }
  /** lease "$lease" stands for the ID of the last grant. */
  | { op: "create"; key: string; value: string; lease: string }
  | { op: "put"; key: string; value: string; lease: string }
  | { op: "putIfValue"; key: string; expected: string; value: string; lease: string }
  | { op: "getStored"; key: string }
  | { op: "delete"; key: string }
  /** from "$next" stands for the last list's revision + 1. */
  | { op: "watch"; prefix: string; from: string }
  | { op: "closeWatch" }
  /** Waits until this many watch lines (events and breaks together) were printed. */
  | { op: "waitWatch"; count: number; timeoutMs: number }
  | { op: "sleep"; ms: number }
  /** Waits until the test creates this file. */
  | { op: "waitFile"; path: string; timeoutMs: number }
  | { op: "etcdctl"; args: string[]; endpoint: string }
  | { op: "say"; text: string };

export interface DriverInput {
  connect: EtcdConnectionOptions;
  steps: DriverStep[];
}

export type DriverLine =
  | { step: number; op: string; result: unknown }
  | { step: number; op: string; error: string }
  | { watch: "put"; key: string; value: string; modRevision: string; leaseId: string }
  | { watch: "delete"; key: string; revision: string }
  | { watch: "broken"; reason: string }
  | { say: string };

const print = (line: DriverLine) => process.stdout.write(`${JSON.stringify(line)}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const bigints = (_key: string, value: unknown) => (typeof value === "bigint" ? value.toString() : value);

async function main(): Promise<number> {
  const input = JSON.parse(process.argv[2] ?? "") as DriverInput;
  const store = await EtcdStore.connect(input.connect);
  let lease = "0";
  let nextRevision = 0n;
  let watchLines = 0;
  let watch: { close(): Promise<void> } | undefined;
  const printWatch = (line: DriverLine) => {
    watchLines += 1;
    print(line);
  };
  for (const [step, s] of input.steps.entries()) {
    try {
      let result: unknown = null;
      switch (s.op) {
        case "get":
          result = (await store.get(s.key)) ?? null;
          break;
        case "list": {
          const listed = await store.list(s.prefix);
          nextRevision = listed.revision + 1n;
          result = JSON.parse(JSON.stringify(listed, bigints));
          break;
        }
        case "grant":
          lease = await store.grantLease(s.ttl);
          result = lease;
          break;
        case "create":
          result = await store.createIfAbsent(s.key, s.value, s.lease === "$lease" ? lease : s.lease);
          break;
        case "put":
          await store.put(s.key, s.value, s.lease === "$lease" ? lease : s.lease);
          break;
        case "putIfValue":
          result = await store.putIfValue(s.key, s.expected, s.value, s.lease === "$lease" ? lease : s.lease);
          break;
        case "getStored": {
          const kv = await store.getStored(s.key);
          result = kv ? JSON.parse(JSON.stringify(kv, bigints)) : null;
          break;
        }
        case "delete":
          await store.delete(s.key);
          break;
        case "watch":
          watch = await store.watchPrefix(s.prefix, s.from === "$next" ? nextRevision : BigInt(s.from), {
            onPut: (kv) =>
              printWatch({
                watch: "put",
                key: kv.key,
                value: kv.value,
                modRevision: kv.modRevision.toString(),
                leaseId: kv.leaseId,
              }),
            onDelete: (key, revision) => printWatch({ watch: "delete", key, revision: revision.toString() }),
            onBroken: (reason) => printWatch({ watch: "broken", reason }),
          });
          break;
        case "closeWatch":
          await watch?.close();
          break;
        case "waitWatch": {
          const deadline = Date.now() + s.timeoutMs;
          while (watchLines < s.count && Date.now() < deadline) await sleep(20);
          if (watchLines < s.count) throw new Error(`${watchLines} watch lines after ${s.timeoutMs} ms`);
          break;
        }
        case "sleep":
          await sleep(s.ms);
          break;
        case "waitFile": {
          const deadline = Date.now() + s.timeoutMs;
          while (!existsSync(s.path) && Date.now() < deadline) await sleep(20);
          if (!existsSync(s.path)) throw new Error(`no ${s.path} after ${s.timeoutMs} ms`);
          break;
        }
        case "etcdctl":
          result = (
            await promisify(execFile)("etcdctl", [`--endpoints=${s.endpoint}`, ...s.args], {
              env: { ...process.env, ETCDCTL_API: "3" },
            })
          ).stdout.trim();
          break;
        case "say":
          print({ say: s.text });
          continue;
      }
      print({ step, op: s.op, result });
    } catch (err) {
      print({ step, op: s.op, error: (err as Error).message });
    }
  }
  store.close();
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`${err.stack ?? err.message}\n`);
    process.exitCode = 2;
  },
);
