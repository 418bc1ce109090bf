/**
 * kubeconfig files as clusters hand them out (flow mappings, block scalars, anchors and merge keys, escaped
 * quotes before '#', exec credential plugins), read by weft and, the same files, by the real kubectl against the
 * test API server: a file that works for one works for the other.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { classifyApiFailure, permanentApiError } from "../../src/kube/api-failure.js";
import { ExecCredentials, parseExecCredential } from "../../src/kube/exec-credential.js";
import { KubeClient } from "../../src/kube/kube-client.js";
import { loadKubeconfig } from "../../src/kube/kubeconfig.js";
import { describeError, UserError } from "../../src/user-error.js";
import { DEFAULT_WEFT_TOKEN } from "../kube-api/identities.js";
import { nodeObject, type RunningApi, startApiInProcess } from "../kube-api/in-process.js";

function kubectl(config: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      "kubectl",
      [`--kubeconfig=${config}`, "--request-timeout=5s", ...args],
      { timeout: 20_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/**
 * A credential plugin as cloud CLIs ship them: prints an ExecCredential. It serves the tokens of $STATE/tokens
 * in turn (the last one again once they run out), with $STATE/expiry as expirationTimestamp when that file
 * exists, or a client certificate when $STATE/cert exists; it records each KUBERNETES_EXEC_INFO and its args.
 */
const PLUGIN = `#!/bin/sh
set -eu
n=$(cat "$STATE/count" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$STATE/count"
printf '%s\\n' "$KUBERNETES_EXEC_INFO" > "$STATE/info.$n"
printf '%s\\n' "$*" > "$STATE/args.$n"
[ -f "$STATE/fail" ] && { echo "identity provider unreachable" >&2; exit 3; }
version=$(printf '%s' "$KUBERNETES_EXEC_INFO" | sed -n 's/.*"apiVersion":"\\([^"]*\\)".*/\\1/p')
expiry=""
[ -f "$STATE/expiry" ] && expiry=",\\"expirationTimestamp\\":\\"$(cat "$STATE/expiry")\\""
if [ -f "$STATE/cert" ]; then
  printf '{"apiVersion":"%s","kind":"ExecCredential","status":{"clientCertificateData":%s,"clientKeyData":%s%s}}\\n' \\
    "$version" "$(cat "$STATE/cert")" "$(cat "$STATE/key")" "$expiry"
  exit 0
fi
total=$(wc -l < "$STATE/tokens")
line=$n; [ "$line" -gt "$total" ] && line=$total
token=$(sed -n "\${line}p" "$STATE/tokens")
printf '{"apiVersion":"%s","kind":"ExecCredential","status":{"token":"%s"%s}}\\n' "$version" "$token" "$expiry"
`;

/** The CA as a literal block scalar of 64-character lines, as some tools write base64. */
function blockBase64(pem: string, indent: string): string {
  const b64 = Buffer.from(pem).toString("base64");
  const lines = b64.match(/.{1,64}/g)!;
  return `|\n${lines.map((l) => indent + l).join("\n")}`;
}

describe("kubeconfig files and exec credential plugins", { timeout: 120_000 }, () => {
  let api: RunningApi;
  let dir: string;
  let state: string;
  const count = () => Number(readFileSync(join(state, "count"), "utf8"));
  const reset = (tokens: string[], extra: Record<string, string> = {}) => {
    for (const f of ["count", "expiry", "cert", "key", "fail"]) rmSync(join(state, f), { force: true });
    writeFileSync(join(state, "tokens"), `${tokens.join("\n")}\n`);
    for (const [name, value] of Object.entries(extra)) writeFileSync(join(state, name), value);
  };

  /** The kubeconfig: two users sharing an exec section through an anchor and a merge key. */
  const kubeconfig = (name: string, user: "exec-v1beta1" | "exec-v1" | "token", execExtra = "") => {
    const file = join(dir, name);
    writeFileSync(
      file,
      `# written the way managed clusters' CLIs write them
apiVersion: v1
kind: Config
preferences: {}
clusters:
- name: &cluster "arn:aws:eks:eu-west-1:1:cluster/prod \\"blue\\" #1"   # a quote escaped before '#'
  cluster:
    server: "${api.url}"  # a comment after a quoted scalar
    certificate-authority-data: ${blockBase64(api.tls.caCert, "      ")}
- name: other
  cluster:
    {server: https://192.0.2.1:6443, insecure-skip-tls-verify: true}
contexts:
- {name: prod, context: {cluster: *cluster, user: ${user}, namespace: kube-flannel}}
current-context: prod
users:
- name: exec-v1beta1
  user:
    exec: &exec
      apiVersion: client.authentication.k8s.io/v1beta1
      command: ./bin/get-token
      args: [token, --cluster-name, "prod #1"]
      env:
      - {name: STATE, value: '${state}'}
      provideClusterInfo: true
      installHint: >
        Install get-token from your cloud's CLI
        and put it in PATH.
${execExtra}
- name: exec-v1
  user:
    exec:
      <<: *exec
      apiVersion: client.authentication.k8s.io/v1
      interactiveMode: Never
- name: token
  user:
    token: "${DEFAULT_WEFT_TOKEN}"
`,
    );
    return file;
  };

  before(async () => {
    api = await startApiInProcess();
    dir = join(api.dir, "kubeconfigs");
    state = join(dir, "state");
    mkdirSync(join(dir, "bin"), { recursive: true });
    mkdirSync(state);
    writeFileSync(join(dir, "bin", "get-token"), PLUGIN, { mode: 0o755 });
    assert.equal(
      (await api.call("POST", "/api/v1/nodes", nodeObject("node1", ["10.244.1.0/24"], "172.31.0.1"))).status,
      201,
    );
  });
  after(async () => {
    await api?.close();
  });

  test("reads flow mappings, block scalars, anchors and an escaped quote before '#' as kubectl does", async () => {
    reset([DEFAULT_WEFT_TOKEN]);
    const file = kubeconfig("token.kubeconfig", "token");
    const connection = await loadKubeconfig(file);
    assert.equal(connection.server, api.url);
    assert.equal(connection.ca?.toString(), api.tls.caCert);
    assert.equal(connection.token, DEFAULT_WEFT_TOKEN);
    const view = await kubectl(file, ["config", "view", "--raw", "-o", "json"]);
    assert.equal(view.code, 0, view.stderr);
    const parsed = JSON.parse(view.stdout);
    assert.equal(parsed.clusters[0].name, 'arn:aws:eks:eu-west-1:1:cluster/prod "blue" #1');
    assert.equal(parsed.contexts[0].context.cluster, parsed.clusters[0].name);
    const client = new KubeClient(connection);
    const list = await client.request<{ items: unknown[] }>("GET", "/api/v1/nodes");
    client.close();
    assert.equal(list.items.length, 1);
    assert.equal((await kubectl(file, ["get", "nodes", "-o", "name"])).stdout.trim(), "node/node1");
  });

  for (const user of ["exec-v1beta1", "exec-v1"] as const) {
    test(`runs a ${user} plugin as kubectl does: same args, env and KUBERNETES_EXEC_INFO`, async () => {
      reset([DEFAULT_WEFT_TOKEN]);
      const file = kubeconfig(`${user}.kubeconfig`, user);
      const viaKubectl = await kubectl(file, ["get", "nodes", "-o", "name"]);
      assert.equal(viaKubectl.code, 0, viaKubectl.stderr);
      assert.equal(viaKubectl.stdout.trim(), "node/node1");
      assert.equal(count(), 1);
      const client = new KubeClient(await loadKubeconfig(file));
      const list = await client.request<{ items: Array<{ metadata: { name: string } }> }>(
        "GET",
        "/api/v1/nodes",
      );
      await client.request("GET", "/api/v1/nodes/node1");
      client.close();
      assert.deepEqual(
        list.items.map((n) => n.metadata.name),
        ["node1"],
      );
      assert.equal(count(), 2, "weft ran the plugin once and reused its token");
      const info = (n: number) => JSON.parse(readFileSync(join(state, `info.${n}`), "utf8"));
      assert.deepEqual(info(2), info(1), "the same KUBERNETES_EXEC_INFO kubectl passed");
      assert.equal(info(2).apiVersion, `client.authentication.k8s.io/${user.slice(5)}`);
      assert.equal(info(2).spec.cluster.server, api.url);
      assert.equal(readFileSync(join(state, "args.2"), "utf8"), readFileSync(join(state, "args.1"), "utf8"));
      assert.equal(readFileSync(join(state, "args.2"), "utf8"), "token --cluster-name prod #1\n");
    });
  }

  test("runs the plugin again once the credential expires", async () => {
    const soon = new Date(Date.now() + 1500).toISOString().replace(/\.\d+Z$/, "Z");
    reset([DEFAULT_WEFT_TOKEN], { expiry: soon });
    const client = new KubeClient(await loadKubeconfig(kubeconfig("expiry.kubeconfig", "exec-v1")));
    await client.request("GET", "/api/v1/nodes");
    await client.request("GET", "/api/v1/nodes");
    assert.equal(count(), 1);
    await new Promise((r) => setTimeout(r, Date.parse(soon) - Date.now() + 100));
    await client.request("GET", "/api/v1/nodes");
    client.close();
    assert.equal(count(), 2, "an expired credential is fetched again");
  });

  test("runs the plugin again on a 401, and repeats the request once", async () => {
    reset(["revoked-token", DEFAULT_WEFT_TOKEN]);
    const client = new KubeClient(await loadKubeconfig(kubeconfig("revoked.kubeconfig", "exec-v1")));
    const list = await client.request<{ items: unknown[] }>("GET", "/api/v1/nodes");
    assert.equal(list.items.length, 1);
    assert.equal(count(), 2);
    // A watch too: the plugin now only has a refused token, so the second 401 is the answer.
    reset(["revoked-token"]);
    const watcher = new KubeClient(await loadKubeconfig(kubeconfig("revoked2.kubeconfig", "exec-v1")));
    const refused = await watcher.watch("/api/v1/nodes?watch=true", () => {}).catch((e: unknown) => e);
    watcher.close();
    client.close();
    assert.equal(count(), 2, "one retry, not a loop");
    const err = permanentApiError(refused, "watch nodes");
    assert.match(describeError(err), /401 Unauthorized/);
  });

  test("uses a client certificate the plugin prints", async () => {
    reset([], {
      cert: JSON.stringify(readFileSync(api.tls.clientCertFile, "utf8")),
      key: JSON.stringify(readFileSync(api.tls.clientKeyFile, "utf8")),
    });
    const file = kubeconfig("cert.kubeconfig", "exec-v1");
    const client = new KubeClient(await loadKubeconfig(file));
    const list = await client.request<{ items: unknown[] }>("GET", "/api/v1/nodes");
    client.close();
    assert.equal(list.items.length, 1);
    const viaKubectl = await kubectl(file, ["get", "nodes", "-o", "name"]);
    assert.equal(viaKubectl.code, 0, viaKubectl.stderr);
  });

  test("a failing plugin is retried like an unreachable API; a missing one is one clear error", async () => {
    reset([DEFAULT_WEFT_TOKEN], { fail: "1" });
    const client = new KubeClient(await loadKubeconfig(kubeconfig("fail.kubeconfig", "exec-v1")));
    const failed = await client.request("GET", "/api/v1/nodes").catch((e: unknown) => e);
    assert.match(
      String((failed as Error).message),
      /exec plugin "\.\/bin\/get-token" .* exited with status 3: identity provider unreachable/,
    );
    assert.equal(classifyApiFailure(failed).transient, true);
    rmSync(join(state, "fail"));
    await client.request("GET", "/api/v1/nodes");
    client.close();

    const missing = kubeconfig("missing.kubeconfig", "exec-v1");
    writeFileSync(missing, readFileSync(missing, "utf8").replace("./bin/get-token", "no-such-get-token"));
    const c2 = new KubeClient(await loadKubeconfig(missing));
    const err = await c2.request("GET", "/api/v1/nodes").catch((e: unknown) => e);
    c2.close();
    assert.ok(err instanceof UserError);
    assert.equal(classifyApiFailure(err).transient, false);
    assert.match(
      describeError(err),
      /no-such-get-token.* cannot be run: not found \(Install get-token from your cloud's CLI and put it in PATH\.\)/,
    );
  });

  test("names what is wrong in a bad kubeconfig, in one line", async () => {
    const bad = async (text: string) => {
      const file = join(dir, "bad.kubeconfig");
      writeFileSync(file, text);
      const err = await loadKubeconfig(file).catch((e: unknown) => e);
      assert.ok(err instanceof UserError, String(err));
      return describeError(err);
    };
    const base = `current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: {server: "https://x:1"}}]\n`;
    assert.match(await bad("a: [1, 2\n"), /cannot parse kubeconfig .* at line \d+, column \d+/);
    // Deep nesting is refused before the parser recurses into V8's stack limit (where a regexp compile
    // aborts the process); a file of this shape crashed the fuzz suite.
    const deep = `${'{"a":'.repeat(14_000)}1${"}".repeat(14_000)}`;
    assert.match(await bad(deep), /flow collections nest deeper than 64 levels/);
    assert.match(await bad(`a:\n${" ".repeat(600)}b: 1\n`), /indented more than 512 columns/);
    assert.match(
      await bad(
        `${base}users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: x}}}]\n`,
      ),
      /does not set interactiveMode.*add interactiveMode: Never/,
    );
    assert.match(
      await bad(
        `${base}users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1alpha1, command: x}}}]\n`,
      ),
      /apiVersion "client.authentication.k8s.io\/v1alpha1", which weft does not speak/,
    );
    assert.match(
      await bad(
        `${base}users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: x, interactiveMode: Always}}}]\n`,
      ),
      /interactiveMode Always, but weftd runs without a terminal/,
    );
    assert.match(
      await bad(`${base}users: [{name: u, user: {token: 12345}}]\n`),
      /users\["u"\]\.user\.token must be a string \(quote the value/,
    );
    assert.match(
      await bad(`${base}users: [{name: u, user: {auth-provider: {name: gcp}}}]\n`),
      /auth-provider.*use the provider's exec credential plugin/,
    );
    assert.match(
      await bad(`${base.replace("user: u", "user: nobody")}users: []\n`),
      /has no user named "nobody"/,
    );
    const bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 0; i < 8; i++)
      bomb.push(
        `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}]`,
      );
    assert.match(await bad(`${bomb.join("\n")}\n`), /cannot parse kubeconfig/);
  });

  test("reads an ExecCredential strictly", () => {
    const config = { apiVersion: "client.authentication.k8s.io/v1", describe: "the plugin" } as never;
    const ok = parseExecCredential(
      config,
      JSON.stringify({
        apiVersion: "client.authentication.k8s.io/v1",
        kind: "ExecCredential",
        status: { token: "t", expirationTimestamp: "2030-01-02T03:04:05Z" },
      }),
    );
    assert.deepEqual(ok, {
      token: "t",
      cert: undefined,
      key: undefined,
      expiresAt: Date.UTC(2030, 0, 2, 3, 4, 5),
    });
    const wrong = (v: unknown) =>
      assert.throws(() => parseExecCredential(config, JSON.stringify(v)), UserError);
    wrong({
      apiVersion: "client.authentication.k8s.io/v1beta1",
      kind: "ExecCredential",
      status: { token: "t" },
    });
    wrong({ apiVersion: "client.authentication.k8s.io/v1", kind: "ExecCredential", status: {} });
    wrong({
      apiVersion: "client.authentication.k8s.io/v1",
      kind: "ExecCredential",
      status: { clientCertificateData: "c" },
    });
    wrong({
      apiVersion: "client.authentication.k8s.io/v1",
      kind: "ExecCredential",
      status: { token: "t", expirationTimestamp: "tomorrow" },
    });
    assert.throws(() => parseExecCredential(config, "Please log in"), /printed something that is not JSON/);
  });

  test("runs one plugin at a time however many requests need a credential", async () => {
    let runs = 0;
    const credentials = new ExecCredentials({} as never, async () => {
      runs++;
      await new Promise((r) => setTimeout(r, 50));
      return { token: `t${runs}`, cert: undefined, key: undefined, expiresAt: undefined };
    });
    const got = await Promise.all([credentials.current(), credentials.current(), credentials.current()]);
    assert.deepEqual([runs, got.map((c) => c.token)], [1, ["t1", "t1", "t1"]]);
    credentials.refused(got[0]!);
    credentials.refused(got[1]!);
    assert.equal((await credentials.current()).token, "t2");
    assert.equal(runs, 2);
  });
});
