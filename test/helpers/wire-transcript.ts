/**
 * flanneld v0.7.0's client/server traffic as the reference's *-wire.txt files print it (tcpdump, one block per
 * TCP segment, CRLF written as LF), read back into HTTP messages; each segment's byte count is checked.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { referencePath } from "./reference.js";

export interface HttpMessage {
  readonly conn: string;
  readonly from: "client" | "server";
  /** The sender's address, e.g. "172.29.0.1". */
  readonly source: string;
  readonly startLine: string;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: string;
}

/** The HTTP messages of a wire transcript, in capture order (one segment per message in these captures). */
export function wireMessages(file: string): HttpMessage[] {
  const text = readFileSync(referencePath("flanneld-v0.7.0", file), "utf8");
  const messages: HttpMessage[] = [];
  const blocks = text.split(/^--- /m).slice(1);
  for (const block of blocks) {
    const newline = block.indexOf("\n");
    const m = /conn#(\d+) (client|server) ([0-9.]+):\d+ .* (\d+) bytes$/.exec(block.slice(0, newline));
    if (!m) continue;
    let content = block.slice(newline + 1);
    const heading = content.indexOf("\n### ");
    if (heading >= 0) content = content.slice(0, heading + 1);
    else if (content.startsWith("### ")) content = "";
    // The printer ends every block with a newline: the payload's own last LF (Go's JSON encoder writes
    // one) or an added one. The segment's byte count (CRLF head) says which.
    const candidates = [content, content.replace(/\n$/, "")].map((payload) => {
      const split = payload.indexOf("\n\n");
      const head = split < 0 ? payload.replace(/\n+$/, "") : payload.slice(0, split);
      const body = split < 0 ? "" : payload.slice(split + 2);
      return { head, body, raw: `${head.split("\n").join("\r\n")}\r\n\r\n${body}` };
    });
    const found = candidates.find((c) => Buffer.byteLength(c.raw) === Number(m[4]));
    const [startLine, ...headerLines] = (found ?? candidates[0]!).head.split("\n");
    if (!/^(GET|POST|PUT|DELETE) |^HTTP\/1\.[01] /.test(startLine!)) continue;
    assert.ok(found, `segment size of "${startLine}" in ${file} matches the printed payload`);
    const headers = headerLines.map((l) => {
      const i = l.indexOf(": ");
      return [l.slice(0, i), l.slice(i + 2)] as const;
    });
    messages.push({
      conn: m[1]!,
      from: m[2] as "client" | "server",
      source: m[3]!,
      startLine: startLine!,
      headers,
      body: found.body,
    });
  }
  return messages;
}
