/**
 * One HTTP(S) request with a whole-body text answer, over node:http(s) with keep-alive: the cloud backends'
 * calls (metadata servers, the EC2 and Compute APIs). Not fetch: Node's fetch loads undici, which cost
 * weftd 10–17 MB more resident memory than node:http (BENCHMARKS.md, gce and aws-vpc).
 */
import { Agent as HttpAgent, request as plainRequest } from "node:http";
import { Agent as HttpsAgent, request as tlsRequest } from "node:https";

export interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}

export interface HttpCallOptions {
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  readonly timeoutMs: number;
}

export type HttpCall = (url: string | URL, options: HttpCallOptions) => Promise<HttpAnswer>;

const agents = { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) };

export const httpCall: HttpCall = (url, { method = "GET", headers = {}, body, timeoutMs }) =>
  new Promise((resolve, reject) => {
    const target = typeof url === "string" ? new URL(url) : url;
    const tls = target.protocol === "https:";
    const send = tls ? tlsRequest : plainRequest;
    const req = send(
      target,
      {
        method,
        agent: tls ? agents.https : agents.http,
        headers:
          body === undefined ? headers : { ...headers, "content-length": String(Buffer.byteLength(body)) },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer from ${target.host} within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(body);
  });
