// Latency of one rtnetlink round trip through the addon, and throughput of pipelined requests,
// in a throwaway namespace. Run as root: node dist/bench/netlink-roundtrip.js [sequential-count]
import { RtNetlink } from "../src/netlink/index.js";
import { createNetns } from "../test/helpers/netns.js";

const sequential = Number(process.argv[2] ?? 10_000);
const pipelined = 15_000;

function report(label: string, count: number, ms: number): void {
  console.log(`${label}: ${count} in ${ms.toFixed(1)} ms, ${((ms * 1000) / count).toFixed(1)} µs/op`);
}

const ns = createNetns("nlbench");
let nl: RtNetlink | undefined;
try {
  nl = await RtNetlink.open({ netns: ns.path });
  await nl.linkAdd({ kind: "bridge", name: "wb0", up: true });
  const wb0 = await nl.linkGet("wb0");
  await nl.addrAdd({ index: wb0.index, address: "10.1.0.1", prefixlen: 24 });

  for (let i = 0; i < 200; i++) await nl.linkGet(wb0.index); // warm up
  let started = performance.now();
  for (let i = 0; i < sequential; i++) await nl.linkGet(wb0.index);
  report("sequential linkGet", sequential, performance.now() - started);

  started = performance.now();
  for (let i = 0; i < sequential; i++) await nl.routeGet("10.1.0.7");
  report("sequential routeGet", sequential, performance.now() - started);

  const routes = Array.from({ length: pipelined }, (_, i) => ({
    dst: `10.${64 + (i >> 8)}.${i & 255}.0/24`,
    gateway: "10.1.0.2",
    oif: wb0.index,
  }));
  started = performance.now();
  await Promise.all(routes.map((r) => nl!.routeReplace(r)));
  report("pipelined routeReplace", pipelined, performance.now() - started);

  started = performance.now();
  const dumped = await nl.routeList(4);
  report("routeList dump (routes)", dumped.length, performance.now() - started);

  started = performance.now();
  await Promise.all(routes.map((r) => nl!.routeDel({ dst: r.dst })));
  report("pipelined routeDel", pipelined, performance.now() - started);
} finally {
  nl?.close();
  ns.delete();
}
