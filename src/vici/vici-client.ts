/**
 * A VICI client on charon's unix socket. VICI has no request ids, so commands run one at a time on the
 * connection (queued here); a streamed command (list-sas) registers for its event first, collects the
 * events until the response, then unregisters.
 */
import { connect, type Socket } from "node:net";
import type { ViciSection } from "./vici-message.js";
import {
  CMD_REQUEST,
  CMD_RESPONSE,
  CMD_UNKNOWN,
  EVENT,
  EVENT_CONFIRM,
  EVENT_REGISTER,
  EVENT_UNKNOWN,
  EVENT_UNREGISTER,
  encodeViciPacket,
  ViciFramer,
  type ViciPacket,
} from "./vici-packet.js";

export class ViciError extends Error {
  override name = "ViciError";
}

/** charon's `success = no` answer as an error carrying its errmsg. */
export function checkSuccess(command: string, response: ViciSection): ViciSection {
  if (response.success !== undefined && response.success !== "yes") {
    const why = typeof response.errmsg === "string" ? response.errmsg : "no reason given";
    throw new ViciError(`charon refused ${command}: ${why}`);
  }
  return response;
}

export class ViciClient {
  private readonly framer = new ViciFramer();
  private waiting: ((packet: ViciPacket | Error) => void) | undefined;
  private onEvent: ((packet: ViciPacket) => void) | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private closedError: Error | undefined;

  private constructor(private readonly socket: Socket) {
    socket.on("data", (chunk) => {
      let packets: ViciPacket[];
      try {
        packets = this.framer.push(chunk);
      } catch (error) {
        this.fail(error as Error);
        return;
      }
      for (const packet of packets) {
        if (packet.type === EVENT) this.onEvent?.(packet);
        else this.settle(packet);
      }
    });
    socket.on("error", (error) => this.fail(error));
    socket.on("close", () => this.fail(new ViciError("charon closed the VICI connection")));
  }

  static open(path: string, timeoutMs = 2000): Promise<ViciClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      const timer = setTimeout(() => socket.destroy(new ViciError(`no VICI answer on ${path}`)), timeoutMs);
      const failed = (error: Error) => {
        clearTimeout(timer);
        reject(error);
      };
      socket.once("error", failed);
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.removeListener("error", failed);
        resolve(new ViciClient(socket));
      });
    });
  }

  private settle(packet: ViciPacket | Error): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.(packet);
  }

  private fail(error: Error): void {
    this.closedError ??= error;
    this.settle(error);
  }

  private exchange(packet: ViciPacket, timeoutMs: number): Promise<ViciPacket> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      // A late answer would be taken for the next command's: give the connection up instead.
      const timer = setTimeout(() => {
        this.fail(new ViciError(`charon did not answer ${packet.name} within ${timeoutMs} ms`));
        this.socket.destroy();
      }, timeoutMs);
      this.waiting = (answer) => {
        clearTimeout(timer);
        if (answer instanceof Error) reject(answer);
        else resolve(answer);
      };
      this.socket.write(encodeViciPacket(packet));
    });
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** One command; its response message (check `success` with checkSuccess where the command has one). */
  request(command: string, message: ViciSection = {}, timeoutMs = 10_000): Promise<ViciSection> {
    return this.serial(async () => {
      const answer = await this.exchange({ type: CMD_REQUEST, name: command, message }, timeoutMs);
      if (answer.type === CMD_UNKNOWN)
        throw new ViciError(`charon does not know the VICI command ${command}`);
      if (answer.type !== CMD_RESPONSE)
        throw new ViciError(`unexpected VICI packet type ${answer.type} for ${command}`);
      return answer.message;
    });
  }

  /** A command that streams `event` packets before its response (list-sas, list-conns). */
  streamed(
    command: string,
    event: string,
    message: ViciSection = {},
    timeoutMs = 10_000,
  ): Promise<{ events: ViciSection[]; response: ViciSection }> {
    return this.serial(async () => {
      const register = await this.exchange({ type: EVENT_REGISTER, name: event, message: {} }, timeoutMs);
      if (register.type === EVENT_UNKNOWN) throw new ViciError(`charon has no VICI event ${event}`);
      if (register.type !== EVENT_CONFIRM)
        throw new ViciError(`unexpected VICI packet type ${register.type}`);
      const events: ViciSection[] = [];
      this.onEvent = (packet) => {
        if (packet.name === event) events.push(packet.message);
      };
      try {
        const answer = await this.exchange({ type: CMD_REQUEST, name: command, message }, timeoutMs);
        if (answer.type !== CMD_RESPONSE)
          throw new ViciError(`unexpected VICI packet type ${answer.type} for ${command}`);
        return { events, response: answer.message };
      } finally {
        this.onEvent = undefined;
        await this.exchange({ type: EVENT_UNREGISTER, name: event, message: {} }, timeoutMs).catch(
          () => undefined,
        );
      }
    });
  }

  /** The connection broke or was closed: open a new client. */
  get closed(): boolean {
    return this.closedError !== undefined;
  }

  close(): void {
    this.closedError ??= new ViciError("VICI connection closed");
    this.socket.destroy();
  }
}
