// A netlink socket with pipelined requests: every request gets a sequence number and a promise, many
// are in flight at once, and queued requests are packed several to a datagram.
import { EventEmitter } from "node:events";
import { addon, type NetlinkAddon } from "./addon.js";
import {
  NETLINK_ROUTE,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_NOOP,
  NLMSG_OVERRUN,
} from "./constants.js";
import { errnoNumber, NetlinkError } from "./errors.js";
import {
  decodeDone,
  decodeError,
  decodeMessages,
  messageFlags,
  type NetlinkMessage,
  setFlags,
  setSequence,
} from "./message.js";

export interface NetlinkSocketOptions {
  /** Netlink protocol, NETLINK_ROUTE by default. */
  protocol?: number;
  /** Namespace to open the socket in, e.g. "/run/netns/blue"; the caller's namespace by default. */
  netns?: string;
  /** Multicast groups (RTNLGRP_* numbers) to join; such a socket is for events, not requests. */
  groups?: readonly number[];
  /**
   * Most requests awaiting a reply at once. Each ack takes about 1 KiB of the receive buffer
   * (8 MiB asked for), so this keeps replies from overrunning it while hiding round trips.
   */
  window?: number;
  /** Receive buffer bytes; 8 MiB by default. Smaller buffers overrun sooner. */
  rcvbuf?: number;
  /** A stand-in for the compiled addon, so the socket logic can be tested without a kernel. */
  native?: NetlinkAddon;
}

export interface RequestOptions {
  /** A dump: replies are collected until NLMSG_DONE. Only one dump runs per socket at a time. */
  dump?: boolean;
  /** Names the request in errors, e.g. "route add 10.0.0.0/24". */
  operation: string;
}

interface Pending {
  seq: number;
  message: Buffer;
  dump: boolean;
  operation: string;
  replies: NetlinkMessage[];
  interrupted: boolean;
  retries: number;
  resolve: (replies: NetlinkMessage[]) => void;
  reject: (err: Error) => void;
}

const DEFAULT_WINDOW = 1024;
// Several requests share a datagram; the kernel handles them one by one and acks each.
const MAX_DATAGRAM_BYTES = 64 * 1024;
// A dump the kernel flags as inconsistent (changed while dumping) is retried this many times.
const DUMP_RETRIES = 5;
const ENOBUFS = errnoNumber("ENOBUFS") || 105;
const ECANCELED = errnoNumber("ECANCELED") || 125;
const EINTR = errnoNumber("EINTR") || 4;

/**
 * Events: "message" (NetlinkMessage) for messages that answer no request, i.e. multicast events;
 * "overrun" when the kernel dropped messages because the receive buffer was full;
 * "error" (Error) for unexpected receive errors.
 */
export class NetlinkSocket extends EventEmitter {
  private fd: number;
  private readonly protocol: number;
  private readonly netns: string | undefined;
  private readonly groups: readonly number[];
  private readonly window: number;
  private readonly rcvbuf: number | undefined;
  private readonly native: NetlinkAddon;
  private queue: Pending[] = [];
  private queueHead = 0;
  private readonly inFlight = new Map<number, Pending>();
  private dumpRunning = false;
  private flushScheduled = false;
  private nextSeq = 1;
  private closed = false;

  private constructor(options: NetlinkSocketOptions) {
    super();
    this.protocol = options.protocol ?? NETLINK_ROUTE;
    this.netns = options.netns;
    this.groups = options.groups ?? [];
    this.window = Math.max(1, options.window ?? DEFAULT_WINDOW);
    this.rcvbuf = options.rcvbuf;
    this.native = options.native ?? addon();
    this.fd = this.openFd();
  }

  static open(options: NetlinkSocketOptions = {}): NetlinkSocket {
    return new NetlinkSocket(options);
  }

  private openFd(): number {
    const native = this.native;
    const fd = native.open(this.protocol, 0, this.netns ?? null, this.rcvbuf);
    try {
      for (const group of this.groups) native.addMembership(fd, group);
      native.poll(fd, (err, datagrams) => this.onReceive(err, datagrams));
    } catch (err) {
      native.close(fd);
      throw err;
    }
    return fd;
  }

  /** Requests waiting to be sent or answered. */
  get pending(): number {
    return this.queue.length - this.queueHead + this.inFlight.size;
  }

  /**
   * Sends a message built by encodeMessage (its seq is assigned here; NLM_F_REQUEST and NLM_F_ACK
   * or NLM_F_DUMP are added). Resolves with the reply messages once acked or done.
   */
  request(message: Buffer, options: RequestOptions): Promise<NetlinkMessage[]> {
    if (this.closed) {
      return Promise.reject(new NetlinkError(ECANCELED, options.operation, "netlink socket is closed"));
    }
    const dump = options.dump === true;
    setFlags(message, messageFlags(message) | NLM_F_REQUEST | (dump ? NLM_F_DUMP : NLM_F_ACK));
    return new Promise((resolve, reject) => {
      this.queue.push({
        seq: 0,
        message,
        dump,
        operation: options.operation,
        replies: [],
        interrupted: false,
        retries: 0,
        resolve,
        reject,
      });
      if (!this.flushScheduled) {
        // Requests made in the same tick go out together.
        this.flushScheduled = true;
        queueMicrotask(() => {
          this.flushScheduled = false;
          this.flush();
        });
      }
    });
  }

  private takeSeq(): number {
    const seq = this.nextSeq;
    this.nextSeq = seq >= 0xffffffff ? 1 : seq + 1;
    return seq;
  }

  private flush(): void {
    if (this.closed) return;
    let batch: Pending[] = [];
    let bytes = 0;
    // Strictly in order: a dump waiting for the running one also holds back what follows it.
    while (this.queueHead < this.queue.length && this.inFlight.size < this.window) {
      const next = this.queue[this.queueHead]!;
      if (next.dump && this.dumpRunning) break;
      if (batch.length > 0 && bytes + next.message.length > MAX_DATAGRAM_BYTES) {
        this.sendBatch(batch, bytes);
        batch = [];
        bytes = 0;
      }
      this.queueHead++;
      next.seq = this.takeSeq();
      setSequence(next.message, next.seq);
      this.inFlight.set(next.seq, next);
      if (next.dump) this.dumpRunning = true;
      batch.push(next);
      bytes += next.message.length;
    }
    if (batch.length > 0) this.sendBatch(batch, bytes);
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > 4096) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  private sendBatch(batch: Pending[], bytes: number): void {
    const datagram =
      batch.length === 1
        ? batch[0]!.message
        : Buffer.concat(
            batch.map((p) => p.message),
            bytes,
          );
    try {
      this.native.send(this.fd, datagram);
    } catch (err) {
      const e = err as Error & { code?: string; errno?: number };
      for (const p of batch) {
        this.finish(p);
        p.reject(new NetlinkError(e.errno ?? 0, p.operation, `send failed: ${e.message}`));
      }
    }
  }

  private finish(p: Pending): void {
    this.inFlight.delete(p.seq);
    if (p.dump) this.dumpRunning = false;
  }

  private onReceive(err: string | null, datagrams: Buffer[]): void {
    for (const datagram of datagrams) {
      for (const message of decodeMessages(datagram)) this.dispatch(message);
    }
    // ENOBUFS: the kernel dropped messages; EMSGSIZE: one did not fit the buffer. Both lose data.
    if (err === "ENOBUFS" || err === "EMSGSIZE") this.onLoss(err);
    else if (err !== null) this.onReceiveError(err);
    if (!this.closed) this.flush();
  }

  private dispatch(message: NetlinkMessage): void {
    const p = message.seq !== 0 ? this.inFlight.get(message.seq) : undefined;
    if (p === undefined) {
      if (message.type !== NLMSG_NOOP && message.type !== NLMSG_OVERRUN) this.emit("message", message);
      return;
    }
    if (message.flags & NLM_F_DUMP_INTR) p.interrupted = true;
    if (message.type === NLMSG_ERROR) {
      const status = decodeError(message);
      this.finish(p);
      if (status.errno === 0) p.resolve(p.replies);
      else p.reject(new NetlinkError(status.errno, p.operation, status.extAck));
    } else if (message.type === NLMSG_DONE) {
      const status = decodeDone(message);
      this.finish(p);
      if (status.errno !== 0) p.reject(new NetlinkError(status.errno, p.operation, status.extAck));
      else if (!p.interrupted) p.resolve(p.replies);
      else if (p.retries < DUMP_RETRIES) this.retryDump(p);
      else p.reject(new NetlinkError(EINTR, p.operation, "dump kept being interrupted by changes"));
    } else {
      p.replies.push(message);
    }
  }

  private retryDump(p: Pending): void {
    p.retries++;
    p.replies = [];
    p.interrupted = false;
    if (this.queueHead > 0) this.queue[--this.queueHead] = p;
    else this.queue.unshift(p);
  }

  /**
   * The kernel dropped replies or events. Which replies were lost is unknowable, so everything in
   * flight fails and a fresh socket takes over (a dump still running on the old one would otherwise
   * block new dumps with EBUSY). Event listeners hear "overrun" and should re-list.
   */
  private onLoss(code: string): void {
    if (this.inFlight.size > 0)
      this.replaceSocket(errnoNumber(code) || ENOBUFS, "reply lost: netlink receive buffer overrun");
    this.emit("overrun");
  }

  private onReceiveError(code: string): void {
    const err = new NetlinkError(errnoNumber(code), "netlink receive");
    if (this.inFlight.size > 0 || this.listenerCount("error") === 0)
      this.replaceSocket(err.errno, "receive failed");
    if (this.listenerCount("error") > 0) this.emit("error", err);
  }

  private replaceSocket(errno: number, why: string): void {
    const lost = [...this.inFlight.values()];
    this.inFlight.clear();
    this.dumpRunning = false;
    this.native.close(this.fd);
    try {
      this.fd = this.openFd();
    } catch (err) {
      // Nothing can be sent any more: fail everything, now and later.
      this.closed = true;
      lost.push(...this.queue.slice(this.queueHead));
      this.queue = [];
      this.queueHead = 0;
      why = `${why}; reopening failed: ${(err as Error).message}`;
    }
    for (const p of lost) p.reject(new NetlinkError(errno, p.operation, why));
  }

  /** Stops receiving and fails whatever is still pending. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.native.close(this.fd);
    } catch {
      // Already closed by a failed reopen; nothing left to release.
    }
    const left = [...this.inFlight.values(), ...this.queue.slice(this.queueHead)];
    this.inFlight.clear();
    this.queue = [];
    this.queueHead = 0;
    for (const p of left) p.reject(new NetlinkError(ECANCELED, p.operation, "netlink socket closed"));
  }
}
