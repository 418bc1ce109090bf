// Fuzz: the Kubernetes node watch fed any event a broken API or proxy can send. Events arrive in the HTTP
// stream's "data" callback, where a throw is an uncaught exception that ends weftd; the fake client below
// delivers them the same way (after watch() has returned), and catches such a throw as the finding.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { KubeClient, WatchEvent, WatchHandle } from "../../src/kube/kube-client.js";
import { NodeWatch } from "../../src/subnet/kube/node-watch.js";
import { assertBoundedText, checkAsyncProperty, FuzzFinding } from "./fuzz-harness.js";
import { hostileString, parsed, recordOf, smallHostileString, wrongJson } from "./fuzz-inputs.js";

const prefix = "flannel.alpha.coreos.com/";

const node = (name: string) => ({
  metadata: { name, resourceVersion: "7", annotations: { [`${prefix}backend-type`]: "vxlan" } },
  spec: { podCIDR: "10.244.1.0/24" },
});

/** What one line of a watch stream may decode to: events of every type with any object, or not an object. */
const event = fc.oneof(
  {
    weight: 4,
    arbitrary: recordOf({
      type: fc.oneof(
        fc.constantFrom("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"),
        smallHostileString,
      ),
      object: fc.oneof(
        fc.constantFrom(
          node("a"),
          node("b"),
          { metadata: { resourceVersion: "9" } },
          { code: 410, message: "too old" },
        ),
        recordOf({
          code: fc.oneof(fc.constant(500), wrongJson),
          message: fc.oneof(hostileString, wrongJson),
        }),
        wrongJson,
      ),
    }).map((e) => {
      const out = parsed(e) as Record<string, unknown>;
      // The stream's keys are exact (JSON to a Go struct is case-insensitive, but the API writes them so).
      return Object.fromEntries(Object.entries(out).map(([k, v]) => [k.toLowerCase(), v]));
    }),
  },
  { weight: 1, arbitrary: wrongJson.map(parsed) },
);

/** A client whose list answers once and whose watch delivers `events` from a later callback, then ends. */
function fakeClient(events: unknown[], thrown: unknown[]): KubeClient {
  let watches = 0;
  const client = {
    request: async () => ({ metadata: { resourceVersion: "1" }, items: [node("a")] }),
    watch: async (_path: string, onEvent: (event: WatchEvent) => void): Promise<WatchHandle> => {
      watches++;
      let end: (outcome: "end" | Error) => void = () => {};
      const done = new Promise<"end" | Error>((resolve) => {
        end = resolve;
      });
      if (watches > 1) return { done, close: () => end("end") }; // later watches wait to be closed
      setImmediate(() => {
        for (const e of events) {
          try {
            onEvent(e as WatchEvent);
          } catch (err) {
            thrown.push(err);
          }
        }
        end("end");
      });
      return { done, close: () => end("end") };
    },
  };
  return client as unknown as KubeClient;
}

describe("fuzz: the Kubernetes node watch", () => {
  it("no event, however malformed, throws out of the stream's callback; warnings are bounded", async (t) => {
    await checkAsyncProperty(t, { runs: 300 }, fc.array(event, { maxLength: 6 }), async (events) => {
      const thrown: unknown[] = [];
      const warnings: string[] = [];
      const watch = new NodeWatch(fakeClient(events, thrown), prefix, {
        onChange: () => {},
        onWarning: (message) => warnings.push(message),
      });
      watch.start();
      await watch.whenSynced();
      for (let i = 0; i < 20 && thrown.length === 0; i++) await new Promise((r) => setImmediate(r));
      watch.close();
      if (thrown.length > 0) {
        const err = thrown[0];
        throw new FuzzFinding(
          `an event threw out of the watch callback (in weftd: an uncaught exception): ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`,
          err,
        );
      }
      for (const w of warnings) assertBoundedText("a node watch warning", w);
      assert.ok(watch.nodes.size <= 2);
    });
  });
});
