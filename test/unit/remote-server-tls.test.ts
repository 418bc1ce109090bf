/**
 * weftd --listen with TLS, on the runtime that runs the tests: its front listener hands a ClientHello to
 * the TLS server and answers plain HTTP itself, as Go's server does. A client with a certificate from the
 * CA is served, one without a certificate or with one from another CA is refused at the handshake.
 * (Bun's node:https never answered a socket emitted into it: TLS clients waited forever.)
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:https";
import type { AddressInfo } from "node:net";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { RemoteServer } from "../../src/server/remote-server.js";
import type { EtcdStore } from "../../src/subnet/etcd/etcd-store.js";
import { makeTlsMaterial, type TlsMaterial } from "../kube-api/tls-material.js";

interface Answer {
  readonly status: number;
  readonly body: string;
}

/** Ends `socket` and fails after 10 s whatever it does: a handshake never answered must fail, not hang. */
function answerWithin<T>(socket: { destroy(): unknown }, answer: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("no answer within 10 s"));
    }, 10_000);
  });
  return Promise.race([answer, late]).finally(() => clearTimeout(timer));
}

function get(port: number, tls: { ca: string; cert?: Buffer; key?: Buffer }): Promise<Answer> {
  let req: ReturnType<typeof request> | undefined;
  const answer = new Promise<Answer>((resolve, reject) => {
    req = request({ host: "127.0.0.1", port, path: "/v2/nothing", ...tls, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
  return answerWithin(req!, answer);
}

/** Plain HTTP to the TLS port: everything the server writes before it closes. */
function plainGet(port: number): Promise<string> {
  const socket = connect(port, "127.0.0.1", () =>
    socket.write("GET /v1/_/config HTTP/1.1\r\nHost: x\r\n\r\n"),
  );
  const answer = new Promise<string>((resolve, reject) => {
    let text = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      text += chunk;
    });
    socket.on("end", () => resolve(text));
    socket.on("error", reject);
  });
  return answerWithin(socket, answer);
}

describe("weftd --listen with TLS and a client CA", () => {
  let dir: string;
  let other: string;
  let pki: TlsMaterial;
  let otherPki: TlsMaterial;
  let server: RemoteServer;
  let port: number;
  const warnings: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "weft-remote-tls-"));
    other = mkdtempSync(join(tmpdir(), "weft-remote-tls-other-"));
    pki = makeTlsMaterial(dir);
    otherPki = makeTlsMaterial(other);
    server = new RemoteServer({
      // The requests here never reach the store.
      store: {} as EtcdStore,
      prefix: "/coreos.com/network",
      tls: {
        ca: Buffer.from(pki.caCert),
        cert: Buffer.from(pki.serverCert),
        key: Buffer.from(pki.serverKey),
      },
      log: () => undefined,
      warn: (message) => warnings.push(message),
    });
    port = ((await server.listen({ host: "127.0.0.1", port: 0 })) as AddressInfo).port;
  });
  after(async () => {
    // The files first: the server holds their contents, and a server that hangs must not leave them.
    rmSync(dir, { recursive: true, force: true });
    rmSync(other, { recursive: true, force: true });
    await server?.close();
  });

  it("serves a client whose certificate the CA signed", async () => {
    const answer = await get(port, {
      ca: pki.caCert,
      cert: readFileSync(pki.clientCertFile),
      key: readFileSync(pki.clientKeyFile),
    });
    assert.deepEqual(answer, { status: 404, body: "404 page not found" });
  });

  it("refuses a client without a certificate, and one with another CA's, at the handshake", async () => {
    const before = warnings.length;
    await assert.rejects(get(port, { ca: pki.caCert }), (err: Error) => !/no answer/.test(err.message));
    await assert.rejects(
      get(port, {
        ca: pki.caCert,
        cert: readFileSync(otherPki.clientCertFile),
        key: readFileSync(otherPki.clientKeyFile),
      }),
      (err: Error) => !/no answer/.test(err.message),
    );
    assert.ok(
      warnings.slice(before).some((w) => w.startsWith("TLS handshake failed: ")),
      warnings.join("\n"),
    );
  });

  it("answers plain HTTP with Go's 400, byte for byte", async () => {
    assert.equal(
      await plainGet(port),
      "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
    );
  });
});
