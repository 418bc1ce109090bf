// NetlinkSocket's pipelining, demultiplexing and loss handling, against a scripted fake kernel.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NetlinkAddon } from "../../src/netlink/addon.js";
import { encodeAttrs, stringAttr } from "../../src/netlink/attributes.js";
import {
  NLM_F_ACK,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_MULTI,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  RTM_GETLINK,
  RTM_NEWLINK,
  RTM_NEWROUTE,
} from "../../src/netlink/constants.js";
import { NetlinkError } from "../../src/netlink/errors.js";
import { decodeMessages, encodeMessage, type NetlinkMessage } from "../../src/netlink/message.js";
import { NetlinkSocket } from "../../src/netlink/socket.js";

type PollCallback = (err: string | null, datagrams: Buffer[]) => void;

/** Records what the socket sends and lets the test play the kernel's replies. */
class FakeKernel implements NetlinkAddon {
  nextFd = 10;
  opened: number[] = [];
  closed: number[] = [];
  datagrams: { fd: number; messages: NetlinkMessage[] }[] = [];
  private readonly pollers = new Map<number, PollCallback>();

  open(): number {
    const fd = this.nextFd++;
    this.opened.push(fd);
    return fd;
  }
  addMembership(): void {}
  send(fd: number, buf: Uint8Array): number {
    this.datagrams.push({ fd, messages: decodeMessages(Buffer.from(buf)) });
    return buf.length;
  }
  poll(fd: number, callback: PollCallback): void {
    this.pollers.set(fd, callback);
  }
  unpoll(fd: number): void {
    this.pollers.delete(fd);
  }
  close(fd: number): void {
    this.pollers.delete(fd);
    this.closed.push(fd);
  }
  enterNetns(): void {}

  /** Every request sent so far, in order. */
  get sent(): NetlinkMessage[] {
    return this.datagrams.flatMap((d) => d.messages);
  }
  deliver(fd: number, ...datagrams: Buffer[]): void {
    this.pollers.get(fd)!(null, datagrams);
  }
  fail(fd: number, code: string): void {
    this.pollers.get(fd)!(code, []);
  }
}

function ack(seq: number, errno = 0, extAck?: string): Buffer {
  const body = Buffer.alloc(20);
  body.writeInt32LE(-errno, 0);
  body.writeUInt32LE(16, 4);
  body.writeUInt32LE(seq, 12);
  const tlvs = extAck === undefined ? Buffer.alloc(0) : encodeAttrs([stringAttr(1, extAck)]);
  const flags = NLM_F_CAPPED | (extAck === undefined ? 0 : NLM_F_ACK_TLVS);
  return encodeMessage(NLMSG_ERROR, flags, Buffer.concat([body, tlvs]), [], seq);
}

function done(seq: number, flags = NLM_F_MULTI): Buffer {
  return encodeMessage(NLMSG_DONE, flags, Buffer.alloc(4), [], seq);
}

function link(seq: number, name: string, flags = NLM_F_MULTI): Buffer {
  return encodeMessage(RTM_NEWLINK, flags, Buffer.alloc(16), [stringAttr(3, name)], seq);
}

const request = (n: number) =>
  encodeMessage(RTM_NEWROUTE, 0, Buffer.from([2, 24, 0, 0, 254, 3, 0, 1, 0, 0, 0, n]));
const dumpRequest = () => encodeMessage(RTM_GETLINK, 0, Buffer.alloc(16));
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("NetlinkSocket", () => {
  it("sends requests made in one tick together, each with its own seq and REQUEST|ACK", async () => {
    const kernel = new FakeKernel();
    const socket = NetlinkSocket.open({ native: kernel });
    const replies = [1, 2, 3].map((n) => socket.request(request(n), { operation: `op ${n}` }));
    await tick();
    assert.equal(kernel.datagrams.length, 1);
    const sent = kernel.sent;
    assert.equal(sent.length, 3);
    assert.equal(new Set(sent.map((m) => m.seq)).size, 3);
    for (const m of sent) assert.equal(m.flags, NLM_F_REQUEST | NLM_F_ACK);
    // Acks may come back in any order; each settles its own request.
    kernel.deliver(
      kernel.opened[0]!,
      Buffer.concat([ack(sent[2]!.seq), ack(sent[0]!.seq)]),
      ack(sent[1]!.seq, 17, "Route exists"),
    );
    const results = await Promise.allSettled(replies);
    assert.deepEqual(
      results.map((r) => r.status),
      ["fulfilled", "rejected", "fulfilled"],
    );
    const err = (results[1] as PromiseRejectedResult).reason as NetlinkError;
    assert.ok(err instanceof NetlinkError);
    assert.equal(err.code, "EEXIST");
    assert.equal(err.operation, "op 2");
    assert.equal(err.extAck, "Route exists");
    assert.equal(socket.pending, 0);
    socket.close();
  });

  it("collects a dump across datagrams until NLMSG_DONE", async () => {
    const kernel = new FakeKernel();
    const socket = NetlinkSocket.open({ native: kernel });
    const dump = socket.request(dumpRequest(), { operation: "link list", dump: true });
    await tick();
    const [sent] = kernel.sent;
    assert.equal(sent!.flags, NLM_F_REQUEST | NLM_F_DUMP);
    const fd = kernel.opened[0]!;
    kernel.deliver(fd, Buffer.concat([link(sent!.seq, "a"), link(sent!.seq, "b")]));
    kernel.deliver(fd, link(sent!.seq, "c"), done(sent!.seq));
    const messages = await dump;
    assert.equal(messages.length, 3);
    assert.ok(messages.every((m) => m.type === RTM_NEWLINK));
    socket.close();
  });

  it("runs one dump at a time and keeps later requests behind a waiting dump", async () => {
    const kernel = new FakeKernel();
    const socket = NetlinkSocket.open({ native: kernel });
    const first = socket.request(dumpRequest(), { operation: "dump 1", dump: true });
    const second = socket.request(dumpRequest(), { operation: "dump 2", dump: true });
    const after = socket.request(request(9), { operation: "after" });
    await tick();
    assert.equal(kernel.sent.length, 1, "only the first dump is sent");
    const fd = kernel.opened[0]!;
    kernel.deliver(fd, done(kernel.sent[0]!.seq));
    await first;
    assert.equal(kernel.sent.length, 3, "the second dump and the request behind it follow");
    assert.equal(kernel.sent[1]!.type, RTM_GETLINK);
    assert.equal(kernel.sent[2]!.type, RTM_NEWROUTE);
    kernel.deliver(fd, ack(kernel.sent[2]!.seq), done(kernel.sent[1]!.seq));
    await Promise.all([second, after]);
    socket.close();
  });

  it("retries a dump the kernel marks as interrupted", async () => {
    const kernel = new FakeKernel();
    const socket = NetlinkSocket.open({ native: kernel });
    const dump = socket.request(dumpRequest(), { operation: "link list", dump: true });
    await tick();
    const fd = kernel.opened[0]!;
    const firstSeq = kernel.sent[0]!.seq;
    kernel.deliver(fd, link(firstSeq, "stale", NLM_F_MULTI | NLM_F_DUMP_INTR), done(firstSeq));
    assert.equal(kernel.sent.length, 2, "sent again");
    const retrySeq = kernel.sent[1]!.seq;
    assert.notEqual(retrySeq, firstSeq);
    kernel.deliver(fd, link(retrySeq, "fresh"), done(retrySeq));
    const messages = await dump;
    assert.equal(messages.length, 1, "only the consistent dump's messages");
    socket.close();
  });

  it("keeps at most `window` requests in flight", async () => {
    const kernel = new FakeKernel();
    const socket = NetlinkSocket.open({ native: kernel, window: 2 });
    const all = [1, 2, 3, 4, 5].map((n) => socket.request(request(n), { operation: `op ${n}` }));
    await tick();
    assert.equal(kernel.sent.length, 2);
    const fd = kernel.opened[0]!;
    for (let round = 0; round < 3; round++) {
      const unacked = kernel.sent.slice(round * 2, round * 2 + 2);
      kernel.deliver(fd, ...unacked.map((m) => ack(m.seq)));
    }
    await Promise.all(all);
    assert.equal(kernel.sent.length, 5);
    socket.close();
  });

  it("on ENOBUFS fails what is in flight, switches to a fresh socket and reports the overrun", async () => {
    const kernel = new FakeKernel();
    const socket = NetlinkSocket.open({ native: kernel, window: 1 });
    let overruns = 0;
    socket.on("overrun", () => overruns++);
    const lost = socket.request(request(1), { operation: "lost" });
    const queued = socket.request(request(2), { operation: "queued" });
    await tick();
    kernel.fail(kernel.opened[0]!, "ENOBUFS");
    await assert.rejects(lost, { code: "ENOBUFS", operation: "lost" });
    assert.equal(overruns, 1);
    assert.deepEqual(kernel.closed, [kernel.opened[0]]);
    assert.equal(kernel.opened.length, 2);
    const last = kernel.datagrams.at(-1)!;
    assert.equal(last.fd, kernel.opened[1], "the queued request went out on the new socket");
    kernel.deliver(kernel.opened[1]!, ack(last.messages[0]!.seq));
    await queued;
    socket.close();
  });

  it("passes messages that answer no request to listeners, and close() cancels the rest", async () => {
    const kernel = new FakeKernel();
    const socket = NetlinkSocket.open({ native: kernel });
    const seen: number[] = [];
    socket.on("message", (m: NetlinkMessage) => seen.push(m.type));
    kernel.deliver(kernel.opened[0]!, link(0, "event", 0));
    assert.deepEqual(seen, [RTM_NEWLINK]);
    const pending = socket.request(request(1), { operation: "pending" });
    socket.close();
    await assert.rejects(pending, { code: "ECANCELED" });
    await assert.rejects(socket.request(request(2), { operation: "late" }), { code: "ECANCELED" });
  });
});
