/**
 * A kubeconfig file's current context as a KubeConnection, read as kubectl reads it: any YAML (flow
 * collections, block scalars, anchors and merge keys, quoted strings), paths relative to the file, and a user
 * that is a token, a token file, a client certificate or an exec credential plugin.
 */
import { dirname, isAbsolute, join } from "node:path";
import { boundText } from "../text/untrusted-text.js";
import { requirePemCertificates } from "../tls/pem-files.js";
import { UserError } from "../user-error.js";
import {
  EXEC_API_VERSIONS,
  type ExecApiVersion,
  type ExecPluginConfig,
  type InteractiveMode,
} from "./exec-credential.js";
import { checkUrl, type KubeConnection, readOrFail } from "./kube-connection.js";

type YamlMap = Record<string, unknown>;

/** Aliases may expand to at most this many nodes: a kubeconfig is small, an alias bomb is not. */
const MAX_ALIAS_COUNT = 1000;

/**
 * A kubeconfig nests a few levels deep. The YAML parser recurses per level, and near the end of the stack
 * V8 can abort the whole process while compiling one of the parser's regular expressions (a fatal
 * "RegExpCompiler Allocation failed", not a catchable error; found by the fuzz suite). So nesting is bounded
 * before parsing: flow collections by bracket depth, block collections by indentation.
 */
const MAX_NESTING = 64;
const MAX_INDENT = 512;

function nestingProblem(text: string): string | undefined {
  // Brackets inside quoted strings count too: an upper bound is enough, and no quote rule can be fooled.
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "{" || c === "[") {
      if (++depth > MAX_NESTING) return `flow collections nest deeper than ${MAX_NESTING} levels`;
    } else if ((c === "}" || c === "]") && depth > 0) depth--;
    else if (c === "\n") {
      let indent = 0;
      while (text[i + 1 + indent] === " ") indent++;
      if (indent > MAX_INDENT) return `a line is indented more than ${MAX_INDENT} columns`;
    }
  }
  return undefined;
}

function isMap(value: unknown): value is YamlMap {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The YAML document as plain values; one UserError naming the line for bad YAML. */
async function parseKubeconfigYaml(file: string, text: string): Promise<YamlMap> {
  const tooDeep = nestingProblem(text);
  if (tooDeep) {
    throw new UserError(`cannot parse kubeconfig ${file}: ${tooDeep}`, "check it with kubectl config view");
  }
  const { LineCounter, parseDocument } = await import("./yaml-library.js");
  // Only the first error is reported, so only it gets its line and column: the library's prettyErrors
  // copies the whole source line for every error, quadratic on a 1 MB line of errors (found by the fuzz suite).
  const lines = new LineCounter();
  const doc = parseDocument(text, { merge: true, uniqueKeys: true, prettyErrors: false, lineCounter: lines });
  const first = doc.errors[0];
  if (first) {
    const message = first.message.split("\n")[0] ?? "";
    const at = first.pos[0] >= 0 ? lines.linePos(first.pos[0]) : undefined;
    const reason = at ? `${message} at line ${at.line}, column ${at.col}` : message;
    throw new UserError(
      `cannot parse kubeconfig ${file}: ${boundText(reason, 200)}`,
      "check it with kubectl config view",
    );
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    throw new UserError(
      `cannot parse kubeconfig ${file}: ${boundText((err as Error).message, 200)}`,
      "check it with kubectl config view",
    );
  }
  if (value === null || value === undefined) value = {};
  if (!isMap(value))
    throw new UserError(`kubeconfig ${file} is not a YAML mapping`, "check it with kubectl config view");
  return value;
}

/** Typed reads of one kubeconfig section; a wrong type is one clear error naming the field. */
class Section {
  constructor(
    private readonly value: YamlMap,
    private readonly where: string,
    private readonly file: string,
  ) {}

  private fail(key: string, want: string): never {
    throw new UserError(
      `kubeconfig ${this.file}: ${this.where}.${key} must be ${want}`,
      want === "a string"
        ? "quote the value if it looks like a number or true/false"
        : "fix the file (kubectl config view)",
    );
  }

  has(key: string): boolean {
    return this.value[key] !== undefined && this.value[key] !== null;
  }

  string(key: string): string | undefined {
    const v = this.value[key];
    if (v === undefined || v === null || v === "") return undefined;
    if (typeof v !== "string") this.fail(key, "a string");
    return v;
  }

  bool(key: string): boolean {
    const v = this.value[key];
    if (v === undefined || v === null) return false;
    if (typeof v === "boolean") return v;
    if (v === "true" || v === "false") return v === "true";
    return this.fail(key, "true or false");
  }

  strings(key: string): string[] {
    const v = this.value[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) this.fail(key, "a list of strings");
    return v as string[];
  }

  section(key: string): Section {
    const v = this.value[key];
    if (v !== undefined && v !== null && !isMap(v)) this.fail(key, "a mapping");
    return new Section(isMap(v) ? v : {}, `${this.where}.${key}`, this.file);
  }

  list(key: string): unknown[] {
    const v = this.value[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.fail(key, "a list");
    return v;
  }

  raw(key: string): unknown {
    return this.value[key];
  }
}

/** The entry named `name` in a top-level list (clusters, contexts, users), as its inner section. */
function findNamed(root: Section, list: string, inner: string, name: string, file: string): Section {
  const entry = root.list(list).find((e) => isMap(e) && e.name === name);
  if (!isMap(entry))
    throw new UserError(
      `kubeconfig ${file} has no ${inner} named ${JSON.stringify(boundText(name, 100))}`,
      "fix the file (kubectl config view)",
    );
  return new Section(entry, `${list}[${JSON.stringify(boundText(name, 100))}]`, file).section(inner);
}

/** Reads a kubeconfig's current context into a connection; paths in it are relative to the file. */
export async function loadKubeconfig(file: string): Promise<KubeConnection> {
  const text = (await readOrFail(file, "the kubeconfig")).toString("utf8");
  const root = new Section(await parseKubeconfigYaml(file, text), "kubeconfig", file);
  const contextName = root.string("current-context");
  if (!contextName)
    throw new UserError(
      `kubeconfig ${file} has no current-context`,
      "set one with kubectl config use-context",
    );
  const context = findNamed(root, "contexts", "context", contextName, file);
  const clusterName = context.string("cluster") ?? "";
  const cluster = findNamed(root, "clusters", "cluster", clusterName, file);
  const userName = context.string("user");
  const user = userName ? findNamed(root, "users", "user", userName, file) : new Section({}, "user", file);

  const base = dirname(file);
  const resolvePath = (p: string | undefined) => (p ? (isAbsolute(p) ? p : join(base, p)) : undefined);
  const dataOrFile = async (section: Section, dataKey: string, fileKey: string, what: string) => {
    const data = section.string(dataKey);
    if (data) return Buffer.from(data, "base64");
    const path = resolvePath(section.string(fileKey));
    return path ? readOrFail(path, `${what} named in ${file}`) : undefined;
  };

  if (user.has("auth-provider"))
    throw new UserError(
      `kubeconfig ${file}: user ${String(userName)} uses an auth-provider plugin, which Kubernetes removed and weft does not run`,
      "use the provider's exec credential plugin instead (users[].user.exec)",
    );
  const server = cluster.string("server");
  if (!server)
    throw new UserError(
      `kubeconfig ${file}: cluster ${JSON.stringify(clusterName)} has no server`,
      "fix the file",
    );
  const ca = await dataOrFile(cluster, "certificate-authority-data", "certificate-authority", "the CA");
  if (ca)
    requirePemCertificates(
      ca,
      `the CA of cluster ${boundText(String(clusterName))} in ${file}`,
      "fix the file",
    );
  const insecureSkipTlsVerify = cluster.bool("insecure-skip-tls-verify");
  const connection: KubeConnection = {
    server: checkUrl(server, `the server in ${file}`),
    ca,
    insecureSkipTlsVerify,
    token: user.string("token"),
    tokenFile: resolvePath(user.string("tokenFile")),
    cert: await dataOrFile(user, "client-certificate-data", "client-certificate", "the client certificate"),
    key: await dataOrFile(user, "client-key-data", "client-key", "the client key"),
    source: `kubeconfig ${file}`,
  };
  if (!user.has("exec")) return connection;
  const exec = execPlugin(user.section("exec"), {
    file,
    user: String(userName),
    server: connection.server,
    ca,
    insecureSkipTlsVerify,
    tlsServerName: cluster.string("tls-server-name"),
    extension: execExtension(cluster),
    resolvePath,
  });
  return { ...connection, exec };
}

/** The cluster's extension named client.authentication.k8s.io/exec: passed to the plugin as spec.cluster.config. */
function execExtension(cluster: Section): unknown {
  for (const entry of cluster.list("extensions"))
    if (isMap(entry) && entry.name === "client.authentication.k8s.io/exec") return entry.extension;
  return undefined;
}

interface ExecContext {
  readonly file: string;
  readonly user: string;
  readonly server: string;
  readonly ca: Buffer | undefined;
  readonly insecureSkipTlsVerify: boolean;
  readonly tlsServerName: string | undefined;
  readonly extension: unknown;
  readonly resolvePath: (p: string | undefined) => string | undefined;
}

function execPlugin(exec: Section, ctx: ExecContext): ExecPluginConfig {
  const where = `kubeconfig ${ctx.file}: user ${JSON.stringify(ctx.user)}'s exec plugin`;
  const apiVersion = exec.string("apiVersion");
  if (!apiVersion || !(EXEC_API_VERSIONS as readonly string[]).includes(apiVersion))
    throw new UserError(
      `${where} has apiVersion ${JSON.stringify(apiVersion ?? "")}, which weft does not speak`,
      `use ${EXEC_API_VERSIONS.join(" or ")} (v1alpha1 was removed in Kubernetes 1.24)`,
    );
  const command = exec.string("command");
  if (!command) throw new UserError(`${where} has no command`, "set users[].user.exec.command");
  // As kubectl: a relative command with a slash is relative to the kubeconfig; a bare name is looked up in PATH.
  const resolved = !isAbsolute(command) && command.includes("/") ? ctx.resolvePath(command)! : command;
  const env: Array<{ name: string; value: string }> = [];
  for (const [i, entry] of exec.list("env").entries()) {
    const e = isMap(entry) ? new Section(entry, `exec.env[${i}]`, ctx.file) : undefined;
    const name = e?.string("name");
    if (!e || !name) throw new UserError(`${where}: env[${i}] needs a name and a value`, "fix the file");
    env.push({ name, value: e.string("value") ?? "" });
  }
  let interactiveMode = exec.string("interactiveMode") as InteractiveMode | undefined;
  if (interactiveMode === undefined) {
    // kubectl defaults v1beta1 to IfAvailable and requires the field for v1.
    if (apiVersion === "client.authentication.k8s.io/v1")
      throw new UserError(
        `${where} does not set interactiveMode, which ${apiVersion} requires`,
        "add interactiveMode: Never (weftd runs without a terminal) to users[].user.exec",
      );
    interactiveMode = "IfAvailable";
  }
  if (!["Never", "IfAvailable", "Always"].includes(interactiveMode))
    throw new UserError(
      `${where} has interactiveMode ${JSON.stringify(interactiveMode)}`,
      "use Never, IfAvailable or Always",
    );
  if (interactiveMode === "Always")
    throw new UserError(
      `${where} has interactiveMode Always, but weftd runs without a terminal`,
      "use a plugin mode that needs no user (interactiveMode: Never or IfAvailable)",
    );
  return {
    apiVersion: apiVersion as ExecApiVersion,
    command: resolved,
    args: exec.strings("args"),
    env,
    provideClusterInfo: exec.bool("provideClusterInfo"),
    installHint: exec.string("installHint"),
    cluster: {
      server: ctx.server,
      ca: ctx.ca,
      insecureSkipTlsVerify: ctx.insecureSkipTlsVerify,
      tlsServerName: ctx.tlsServerName,
      config: ctx.extension,
    },
    describe: `user ${JSON.stringify(ctx.user)}'s exec plugin ${JSON.stringify(boundText(command, 100))} (kubeconfig ${ctx.file})`,
  };
}
