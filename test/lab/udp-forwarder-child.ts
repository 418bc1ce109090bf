/**
 * Run inside a lab host by udp-forwarder.test.ts: drives the native forwarder on a TUN device of its
 * own (wtun0, route 10.99.0.0/16) against a UDP socket that plays the peer, and prints what it saw as
 * JSON. Bounded: every wait gives up after a few seconds.
 */
import { execFile, execFileSync } from "node:child_process";
import dgram from "node:dgram";
import { tunAddon } from "../../src/backend/udp/tun-addon.js";
import { UdpForwarder } from "../../src/backend/udp/udp-forwarder.js";

const [hostIp] = process.argv.slice(2) as [string];
const FORWARDER_PORT = 18285;
const PEER_PORT = 18286;
const DEVICE = "wtun0";

const ip = (...args: string[]) => execFileSync("ip", args, { encoding: "utf8" });

function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** An ICMP echo request src -> dst with this TTL. */
function echoRequest(src: string, dst: string, ttl: number): Buffer {
  const icmp = Buffer.from([8, 0, 0, 0, 0x77, 0x65, 0, 1, ...Buffer.from("tun-addon")]);
  icmp.writeUInt16BE(checksum(icmp), 2);
  const header = Buffer.alloc(20);
  header[0] = 0x45;
  header.writeUInt16BE(20 + icmp.length, 2);
  header[8] = ttl;
  header[9] = 1;
  Buffer.from(src.split(".").map(Number)).copy(header, 12);
  Buffer.from(dst.split(".").map(Number)).copy(header, 16);
  header.writeUInt16BE(checksum(header), 10);
  return Buffer.concat([header, icmp]);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main(): Promise<void> {
  const result: Record<string, unknown> = {};
  const fd = tunAddon().openTun(DEVICE, 2000);
  ip("addr", "add", "10.99.1.0/32", "dev", DEVICE);
  ip("link", "set", DEVICE, "up");
  ip("route", "add", "10.99.0.0/16", "dev", DEVICE);
  execFileSync("sysctl", ["-qw", `net.ipv4.conf.${DEVICE}.accept_local=1`]);
  result.link = ip("-d", "link", "show", DEVICE);
  // A second opener (another weftd or flanneld on the host) is refused while we hold the device.
  try {
    tunAddon().closeFd(tunAddon().openTun(DEVICE, 2000));
    result.secondOpen = "opened";
  } catch (err) {
    result.secondOpen = (err as { code?: string }).code;
  }
  const forwarder = UdpForwarder.start(fd, {
    bindAddress: hostIp,
    port: FORWARDER_PORT,
    tunAddress: "10.99.1.0",
  });

  // The table: set, replace, overlap refused, delete.
  forwarder.setRoute({ subnet: "10.99.2.0/24", peer: hostIp, port: PEER_PORT });
  forwarder.setRoute({ subnet: "10.99.3.0/24", peer: "192.0.2.1", port: 1 });
  forwarder.setRoute({ subnet: "10.99.3.0/24", peer: "192.0.2.2", port: 2 });
  try {
    forwarder.setRoute({ subnet: "10.99.0.0/17", peer: "192.0.2.3", port: 3 });
    result.overlap = "accepted";
  } catch (err) {
    result.overlap = (err as { code?: string }).code;
  }
  result.routesBefore = forwarder.routes();
  forwarder.deleteRoute({ subnet: "10.99.3.0/24", peer: "192.0.2.2", port: 2 });
  result.routesAfter = forwarder.routes();

  const peer = dgram.createSocket("udp4");
  const received: Buffer[] = [];
  peer.on("message", (m, rinfo) => {
    if (rinfo.port === FORWARDER_PORT) received.push(m);
  });
  await new Promise<void>((resolve) => peer.bind(PEER_PORT, hostIp, resolve));
  const waitFor = async (test: (m: Buffer) => boolean) => {
    for (let i = 0; i < 100; i++) {
      const hit = received.find(test);
      if (hit) return hit;
      await sleep(30);
    }
    return undefined;
  };

  // TUN -> UDP: a datagram from this host to 10.99.2.9 leaves as one IP packet in a UDP payload.
  const app = dgram.createSocket("udp4");
  app.send(Buffer.from("to-the-peer"), 4444, "10.99.2.9");
  const out = await waitFor((m) => m[9] === 17);
  result.tunToUdp = out && {
    src: [...out.subarray(12, 16)].join("."),
    dst: [...out.subarray(16, 20)].join("."),
    ttl: out[8],
    headerChecksumOk: checksum(out.subarray(0, 20)) === 0,
    totalLength: out.readUInt16BE(2),
    length: out.length,
    payload: out.subarray(28).toString(),
  };
  app.close();

  // UDP -> TUN: an echo request from "a pod behind the peer" to our address comes in as a UDP payload;
  // the kernel answers, and the reply goes back to the peer.
  peer.send(echoRequest("10.99.2.9", "10.99.1.0", 64), FORWARDER_PORT, hostIp);
  const reply = await waitFor((m) => m[9] === 1 && m[20] === 0);
  result.udpToTun = reply && {
    src: [...reply.subarray(12, 16)].join("."),
    dst: [...reply.subarray(16, 20)].join("."),
    id: reply.readUInt16BE(24),
  };

  // A packet whose TTL runs out in the forwarder is dropped and counted.
  peer.send(echoRequest("10.99.2.9", "10.99.1.0", 1), FORWARDER_PORT, hostIp);
  // No peer for 10.99.5.0/24: dropped, counted, and answered with ICMP net-unreachable.
  // ping prints the ICMP error it gets back ("From 10.99.1.0 icmp_seq=1 Destination Net Unreachable"). Not a
  // TCP connect's error code: Bun's node:net reports every failed connect as ECONNREFUSED, ENETUNREACH too.
  const started = Date.now();
  const ping = await new Promise<{ output: string }>((resolve) => {
    execFile(
      "ping",
      ["-n", "-c", "1", "-w", "3", "10.99.5.5"],
      { encoding: "utf8" },
      (_error, stdout, stderr) => resolve({ output: `${stdout}${stderr}` }),
    );
  });
  result.noPeerIcmp =
    /^From \S+ icmp_seq=\d+ (.*)$/m.exec(ping.output)?.[1] ?? `no ICMP error: ${ping.output}`;
  result.noPeerIcmpMs = Date.now() - started;
  // The TTL-expired datagram is handled by the receive thread, which may run after the ping's
  // ICMP on the other thread: wait for it (bounded) before reading the counters.
  for (let i = 0; i < 100 && (forwarder.stats()?.ttlExpired ?? 0) < 1; i++) await sleep(20);
  result.stats = forwarder.stats();
  peer.close();
  forwarder.stop();
  await sleep(100);
  result.deviceAfterStop = ip("link", "show").includes(DEVICE);
  console.log(JSON.stringify(result));
}

main().catch((err) => {
  console.log(JSON.stringify({ error: String(err?.stack ?? err) }));
  process.exitCode = 1;
});
