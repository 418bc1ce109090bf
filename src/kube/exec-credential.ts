/**
 * Exec credential plugins (client.authentication.k8s.io v1 and v1beta1), which most managed clusters'
 * kubeconfigs use (aws eks get-token, gke-gcloud-auth-plugin, kubelogin...): run the command with its args
 * and env plus KUBERNETES_EXEC_INFO, read the ExecCredential it prints, and keep the credential until its
 * expirationTimestamp or until the API answers 401 with it, then run the plugin again.
 */
import { spawn } from "node:child_process";
import { boundText, describeValue } from "../text/untrusted-text.js";
import { UserError } from "../user-error.js";

export const EXEC_API_VERSIONS = [
  "client.authentication.k8s.io/v1",
  "client.authentication.k8s.io/v1beta1",
] as const;
export type ExecApiVersion = (typeof EXEC_API_VERSIONS)[number];
export type InteractiveMode = "Never" | "IfAvailable" | "Always";

/** users[].user.exec of a kubeconfig, checked, with what the plugin may be told about the cluster. */
export interface ExecPluginConfig {
  readonly apiVersion: ExecApiVersion;
  /** A path (resolved against the kubeconfig's directory) or a name looked up in PATH. */
  readonly command: string;
  readonly args: readonly string[];
  readonly env: ReadonlyArray<{ readonly name: string; readonly value: string }>;
  readonly provideClusterInfo: boolean;
  readonly installHint: string | undefined;
  readonly cluster: {
    readonly server: string;
    readonly ca: Buffer | undefined;
    readonly insecureSkipTlsVerify: boolean;
    readonly tlsServerName: string | undefined;
    readonly config: unknown;
  };
  /** For messages: which user's plugin, in which file. */
  readonly describe: string;
}

export interface ExecCredential {
  readonly token: string | undefined;
  /** PEM, as the plugin printed it. */
  readonly cert: string | undefined;
  readonly key: string | undefined;
  /** Milliseconds since the epoch; undefined: valid until the API refuses it. */
  readonly expiresAt: number | undefined;
}

/**
 * The plugin failed in a way that may pass (it exited non-zero, e.g. its identity provider is unreachable, or
 * it hung): the request is retried like an unreachable API. A plugin that is missing or prints something that is
 * not a credential is a UserError instead: running it again cannot help.
 */
export class ExecPluginError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ExecPluginError";
  }
}

const PLUGIN_TIMEOUT_MS = 60_000;
const MAX_OUTPUT_BYTES = 1 << 20;

/** The KUBERNETES_EXEC_INFO the plugin reads: the request, and the cluster when provideClusterInfo is set. */
export function execInfo(config: ExecPluginConfig): string {
  const spec: Record<string, unknown> = { interactive: false };
  if (config.provideClusterInfo) {
    const c = config.cluster;
    spec.cluster = {
      server: c.server,
      ...(c.tlsServerName ? { "tls-server-name": c.tlsServerName } : {}),
      ...(c.insecureSkipTlsVerify ? { "insecure-skip-tls-verify": true } : {}),
      ...(c.ca ? { "certificate-authority-data": c.ca.toString("base64") } : {}),
      // kubectl always sends config, null without the cluster's client.authentication.k8s.io/exec extension.
      config: c.config ?? null,
    };
  }
  return JSON.stringify({ kind: "ExecCredential", apiVersion: config.apiVersion, spec });
}

/** A field of the plugin's output for a message: a string quoted and bounded, anything else by kind only
 * (String() of a deeply nested array recurses until the stack overflows). */
function shown(value: unknown, max: number): string {
  return typeof value === "string" ? JSON.stringify(boundText(value, max)) : describeValue(value);
}

/** Reads the plugin's stdout as an ExecCredential of the version asked for. */
export function parseExecCredential(config: ExecPluginConfig, stdout: string): ExecCredential {
  const bad = (what: string) =>
    new UserError(`${config.describe} printed ${what}`, "run the plugin by hand to see what it prints");
  let value: unknown;
  try {
    value = JSON.parse(stdout);
  } catch {
    throw bad(`something that is not JSON: ${JSON.stringify(boundText(stdout.trim(), 100))}`);
  }
  const doc = (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>;
  if (doc.kind !== "ExecCredential") throw bad(`kind ${shown(doc.kind, 60)}, not ExecCredential`);
  if (doc.apiVersion !== config.apiVersion)
    throw bad(`apiVersion ${shown(doc.apiVersion, 80)}, not the ${config.apiVersion} asked for`);
  const status = (typeof doc.status === "object" && doc.status !== null ? doc.status : {}) as Record<
    string,
    unknown
  >;
  const text = (key: string) => {
    const v = status[key];
    if (v === undefined || v === null || v === "") return undefined;
    if (typeof v !== "string") throw bad(`a status.${key} that is not a string`);
    return v;
  };
  const token = text("token");
  const cert = text("clientCertificateData");
  const key = text("clientKeyData");
  if ((cert === undefined) !== (key === undefined))
    throw bad("only one of status.clientCertificateData and status.clientKeyData");
  if (token === undefined && cert === undefined)
    throw bad("no status.token and no status.clientCertificateData");
  const expiry = text("expirationTimestamp");
  let expiresAt: number | undefined;
  if (expiry !== undefined) {
    expiresAt = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(expiry)
      ? Date.parse(expiry)
      : Number.NaN;
    if (Number.isNaN(expiresAt))
      throw bad(`status.expirationTimestamp ${JSON.stringify(boundText(expiry, 60))}, not an RFC 3339 time`);
  }
  return { token, cert, key, expiresAt };
}

/** Runs the plugin once: no stdin (it is not interactive), stdout read whole, stderr kept for the error. */
export function runExecPlugin(config: ExecPluginConfig): Promise<ExecCredential> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const { name, value } of config.env) env[name] = value;
    env.KUBERNETES_EXEC_INFO = execInfo(config);
    const child = spawn(config.command, [...config.args], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    // Our own timer, not spawn's: that one outlives a plugin that could not be started.
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, PLUGIN_TIMEOUT_MS);
    const out: Buffer[] = [];
    let outBytes = 0;
    let errText = "";
    child.stdout.on("data", (chunk: Buffer) => {
      outBytes += chunk.length;
      if (outBytes <= MAX_OUTPUT_BYTES) out.push(chunk);
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      errText = (errText + chunk).slice(-2000);
    });
    child.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === "ENOENT" || err.code === "EACCES")
        reject(
          new UserError(
            `${config.describe} cannot be run: ${err.code === "ENOENT" ? "not found" : "not executable"}`,
            config.installHint
              ? boundText(config.installHint.trim(), 300)
              : "install it, or fix users[].user.exec.command (a bare name is looked up in PATH)",
          ),
        );
      else reject(new ExecPluginError(`${config.describe} cannot be run: ${err.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code === null && signal !== null) {
        reject(
          new ExecPluginError(
            timedOut
              ? `${config.describe} did not finish within ${PLUGIN_TIMEOUT_MS / 1000} s`
              : `${config.describe} was killed by ${signal}`,
          ),
        );
        return;
      }
      if (code !== 0) {
        const said = boundText(errText.trim().split("\n").slice(-3).join(" / "), 300);
        reject(
          new ExecPluginError(`${config.describe} exited with status ${code}${said ? `: ${said}` : ""}`),
        );
        return;
      }
      if (outBytes > MAX_OUTPUT_BYTES) {
        reject(
          new UserError(`${config.describe} printed more than ${MAX_OUTPUT_BYTES} bytes`, "check the plugin"),
        );
        return;
      }
      try {
        resolve(parseExecCredential(config, Buffer.concat(out).toString("utf8")));
      } catch (err) {
        reject(err);
      }
    });
  });
}

/** One plugin's current credential: reused until it expires or the API refuses it; one run at a time. */
export class ExecCredentials {
  private cached: ExecCredential | undefined;
  private running: Promise<ExecCredential> | undefined;

  constructor(
    private readonly config: ExecPluginConfig,
    private readonly run: (config: ExecPluginConfig) => Promise<ExecCredential> = runExecPlugin,
    private readonly now: () => number = Date.now,
  ) {}

  current(): Promise<ExecCredential> {
    const cached = this.cached;
    if (cached && (cached.expiresAt === undefined || cached.expiresAt > this.now()))
      return Promise.resolve(cached);
    this.running ??= this.run(this.config)
      .then((credential) => {
        this.cached = credential;
        return credential;
      })
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  /** The API answered 401 to `used`: the next request runs the plugin again (once, however many saw the 401). */
  refused(used: ExecCredential): void {
    if (this.cached === used) this.cached = undefined;
  }
}
