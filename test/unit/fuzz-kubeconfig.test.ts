// Fuzz: kubeconfig files (any YAML, damaged or hostile) and what an exec credential plugin prints: each gives
// a connection or one bounded UserError, never a throw of another kind and never a hang.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import { type ExecPluginConfig, parseExecCredential } from "../../src/kube/exec-credential.js";
import { loadKubeconfig } from "../../src/kube/kubeconfig.js";
import { UserError } from "../../src/user-error.js";
import { checkAsyncProperty, checkProperty, onlyOwnErrors, onlyOwnErrorsAsync } from "./fuzz-harness.js";
import {
  deepJsonText,
  hostileString,
  jsonDocumentText,
  mutatedText,
  recordOf,
  smallHostileString,
  wrongJson,
} from "./fuzz-inputs.js";

const dir = mkdtempSync(join(tmpdir(), "weft-fuzz-kubeconfig-"));
after(() => rmSync(dir, { recursive: true, force: true }));
// The only files a generated kubeconfig may name: plain files here (never a device, FIFO or /proc path).
writeFileSync(join(dir, "ca.crt"), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
writeFileSync(join(dir, "token"), "abc\n");
const file = fc.constantFrom("ca.crt", "token", "missing.pem", join(dir, "ca.crt"));

const scalar = fc.oneof(
  fc.constantFrom(
    "https://10.0.0.1:6443",
    "default",
    "",
    "~",
    "null",
    "true",
    "0x1F",
    "'q'",
    '"d\\"q"',
    "*a",
    "&a x",
  ),
  smallHostileString,
);
const kubeconfigYaml = fc
  .record({
    server: fc.oneof(fc.constant("https://10.0.0.1:6443"), scalar),
    ca: file,
    token: fc.oneof(fc.constant("abc"), scalar),
    context: fc.constantFrom("ctx", "other", ""),
    userKind: fc.constantFrom("token", "tokenFile", "cert", "exec", "none"),
    extra: fc.array(fc.tuple(fc.integer({ min: 0, max: 6 }), scalar, scalar), { maxLength: 4 }),
  })
  .map(({ server, ca, token, context, userKind, extra }) => {
    const user =
      userKind === "token"
        ? `    token: ${token}`
        : userKind === "tokenFile"
          ? `    tokenFile: ${ca}`
          : userKind === "cert"
            ? `    client-certificate: ${ca}\n    client-key: ${ca}`
            : userKind === "exec"
              ? "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/false\n      args: [a, b]"
              : "    {}";
    const lines = [
      "apiVersion: v1",
      "kind: Config",
      `current-context: ${context}`,
      "clusters:",
      "- name: c",
      "  cluster:",
      `    server: ${server}`,
      `    certificate-authority: ${ca}`,
      "contexts:",
      "- name: ctx",
      "  context: {cluster: c, user: u}",
      "users:",
      "- name: u",
      "  user:",
      user,
      ...extra.map(([indent, k, v]) => `${" ".repeat(indent)}${k}: ${v}`),
    ];
    return lines.join("\n");
  });

const source = fc.oneof(
  kubeconfigYaml,
  mutatedText(kubeconfigYaml),
  // Alias bombs, deep flow collections, deep blocks.
  fc.integer({ min: 2, max: 12 }).map((n) => {
    const out = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < n; i++)
      out.push(`a${i}: &a${i} [*a${i - 1}, *a${i - 1}, *a${i - 1}, *a${i - 1}, *a${i - 1}]`);
    return out.join("\n");
  }),
  deepJsonText,
  fc
    .integer({ min: 1, max: 300 })
    .map((n) => Array.from({ length: n }, (_, i) => `${" ".repeat(i)}k:`).join("\n")),
  hostileString,
);

describe("fuzz: kubeconfig files", () => {
  it("loadKubeconfig gives a connection or one bounded UserError for any file content", async (t) => {
    const path = join(dir, "kubeconfig");
    await checkAsyncProperty(t, { runs: 200 }, source, async (text) => {
      writeFileSync(path, text);
      await onlyOwnErrorsAsync([UserError], () => loadKubeconfig(path));
    });
  });
});

describe("fuzz: exec credential plugins", () => {
  const config = {
    apiVersion: "client.authentication.k8s.io/v1",
    command: "/bin/false",
    args: [],
    env: [],
    provideClusterInfo: false,
    installHint: undefined,
    cluster: {
      server: "https://10.0.0.1:6443",
      ca: undefined,
      insecureSkipTlsVerify: false,
      tlsServerName: undefined,
      config: undefined,
    },
    describe: "the exec plugin of user u in kubeconfig k",
  } as ExecPluginConfig;
  const stdout = jsonDocumentText(
    recordOf({
      kind: fc.oneof(fc.constant("ExecCredential"), wrongJson),
      apiVersion: fc.oneof(fc.constant("client.authentication.k8s.io/v1"), wrongJson),
      status: fc.oneof(
        recordOf({
          token: fc.oneof(fc.constant("t0k3n"), wrongJson),
          clientCertificateData: wrongJson,
          clientKeyData: wrongJson,
          expirationTimestamp: fc.oneof(
            fc.constantFrom("2026-12-01T13:00:00Z", "2026-13-01T00:00:00Z", "soon"),
            wrongJson,
          ),
        }),
        wrongJson,
      ),
    }),
  );

  it("parseExecCredential gives a credential or one bounded UserError for any output", (t) => {
    checkProperty(t, { runs: 800 }, stdout, (text) => {
      const cred = onlyOwnErrors([UserError], () => parseExecCredential(config, text));
      if (cred) assert.ok(cred.token !== undefined || cred.cert !== undefined);
    });
  });
});
