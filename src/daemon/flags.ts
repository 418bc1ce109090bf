/**
 * flanneld's command line, flag for flag (flannel HEAD), parsed the way Go's flag package does:
 * -flag, --flag, -flag=value, --flag=value, and -flag value for non-booleans; parsing stops at the first
 * non-flag argument or "--". A flag not given on the command line is taken from FLANNELD_<FLAG> in the
 * environment (dashes become underscores, upper case), as flanneld's flagutil does.
 */
import { parseIP } from "../ip/ip-address.js";
import { boundText, describeValue } from "../text/untrusted-text.js";
import { UserError } from "../user-error.js";

type FlagKind = "string" | "bool" | "int" | "list";

interface FlagSpec {
  readonly name: string;
  readonly kind: FlagKind;
  readonly fallback: string | boolean | number | readonly string[];
  readonly usage: string;
}

const FLAG_SPECS: readonly FlagSpec[] = [
  {
    name: "etcd-endpoints",
    kind: "string",
    fallback: "http://127.0.0.1:4001,http://127.0.0.1:2379",
    usage: "a comma-delimited list of etcd endpoints",
  },
  { name: "etcd-prefix", kind: "string", fallback: "/coreos.com/network", usage: "etcd prefix" },
  {
    name: "etcd-keyfile",
    kind: "string",
    fallback: "",
    usage: "SSL key file used to secure etcd communication",
  },
  {
    name: "etcd-certfile",
    kind: "string",
    fallback: "",
    usage: "SSL certification file used to secure etcd communication",
  },
  {
    name: "etcd-cafile",
    kind: "string",
    fallback: "",
    usage: "SSL Certificate Authority file used to secure etcd communication",
  },
  { name: "etcd-username", kind: "string", fallback: "", usage: "username for BasicAuth to etcd" },
  { name: "etcd-password", kind: "string", fallback: "", usage: "password for BasicAuth to etcd" },
  {
    name: "iface",
    kind: "list",
    fallback: [],
    usage:
      "interface to use (IP or name) for inter-host communication; may be repeated, the first match wins",
  },
  {
    name: "iface-regex",
    kind: "list",
    fallback: [],
    usage: "regex matching the interface (name or IP) to use; may be repeated, checked after --iface",
  },
  {
    name: "iface-can-reach",
    kind: "string",
    fallback: "",
    usage: "use the interface the kernel would route to this IP through",
  },
  {
    name: "subnet-file",
    kind: "string",
    fallback: "/run/flannel/subnet.env",
    usage: "filename where env variables (subnet, MTU, ... ) will be written to",
  },
  // flanneld v0.7's multi-network mode (removed in v0.8): one lease, backend and .env file per network.
  {
    name: "networks",
    kind: "string",
    fallback: "",
    usage: "run in multi-network mode and service the specified networks (comma-separated)",
  },
  {
    name: "subnet-dir",
    kind: "string",
    fallback: "/run/flannel/networks",
    usage: "directory where files with env variables (subnet, MTU, ...) will be written to, one per network",
  },
  {
    name: "watch-networks",
    kind: "bool",
    fallback: false,
    usage: "run in multi-network mode and watch for networks from the store",
  },
  {
    name: "public-ip",
    kind: "string",
    fallback: "",
    usage: "IP accessible by other nodes for inter-host communication",
  },
  {
    name: "public-ipv6",
    kind: "string",
    fallback: "",
    usage: "IPv6 accessible by other nodes for inter-host communication",
  },
  {
    name: "subnet-lease-renew-margin",
    kind: "int",
    fallback: 60,
    usage: "subnet lease renewal margin, in minutes, ranging from 1 to 1439",
  },
  {
    name: "ip-masq",
    kind: "bool",
    fallback: false,
    usage: "setup IP masquerade rule for traffic destined outside of overlay network",
  },
  {
    name: "ip-masq-fully-random-disable",
    kind: "bool",
    fallback: false,
    usage: "disable fully-random mode for MASQUERADE",
  },
  {
    name: "kube-subnet-mgr",
    kind: "bool",
    fallback: false,
    usage: "contact the Kubernetes API for subnet assignment instead of etcd",
  },
  {
    name: "kube-api-url",
    kind: "string",
    fallback: "",
    usage: "Kubernetes API server URL; not needed when running in a pod",
  },
  {
    name: "kube-annotation-prefix",
    kind: "string",
    fallback: "flannel.alpha.coreos.com",
    usage: 'Kubernetes annotation prefix; may contain one "/", else it is appended',
  },
  {
    name: "kubeconfig-file",
    kind: "string",
    fallback: "",
    usage: "kubeconfig file location; not needed when running in a pod",
  },
  {
    name: "listen",
    kind: "string",
    fallback: "",
    usage: "run as server and listen on the specified address (e.g. ':8080' or fd://)",
  },
  {
    name: "remote",
    kind: "string",
    fallback: "",
    usage: "run as client and connect to server on this address (host:port)",
  },
  {
    name: "remote-keyfile",
    kind: "string",
    fallback: "",
    usage: "SSL key file used to secure client/server communication",
  },
  {
    name: "remote-certfile",
    kind: "string",
    fallback: "",
    usage: "SSL certification file used to secure client/server communication",
  },
  {
    name: "remote-cafile",
    kind: "string",
    fallback: "",
    usage: "SSL Certificate Authority file used to secure client/server communication",
  },
  { name: "version", kind: "bool", fallback: false, usage: "print version and exit" },
  { name: "help", kind: "bool", fallback: false, usage: "print this message and exit" },
  {
    name: "healthz-ip",
    kind: "string",
    fallback: "0.0.0.0",
    usage: "the IP address for healthz server to listen",
  },
  {
    name: "healthz-port",
    kind: "int",
    fallback: 0,
    usage: "the port for healthz server to listen (0 to disable)",
  },
  {
    name: "iptables-resync",
    kind: "int",
    fallback: 5,
    usage: "resync period for iptables rules, in seconds",
  },
  {
    name: "iptables-forward-rules",
    kind: "bool",
    fallback: true,
    usage: "add default accept rules to FORWARD chain in iptables",
  },
  {
    name: "ip-blackhole-route",
    kind: "bool",
    fallback: false,
    usage: "add a blackhole route for the local pod subnet",
  },
  {
    name: "net-config-path",
    kind: "string",
    fallback: "/etc/kube-flannel/net-conf.json",
    usage: "path to the network configuration file",
  },
  {
    name: "set-node-network-unavailable",
    kind: "bool",
    fallback: true,
    usage: "set NodeNetworkUnavailable after ready",
  },
  { name: "v", kind: "int", fallback: 0, usage: "log level for V logs (1 shows data path changes)" },
  {
    name: "vmodule",
    kind: "string",
    fallback: "",
    usage: "accepted for compatibility with flanneld; ignored",
  },
  {
    name: "log_backtrace_at",
    kind: "string",
    fallback: "",
    usage: "accepted for compatibility with flanneld; ignored",
  },
];

export type FlagValue = string | boolean | number | string[];

export class FlagError extends UserError {
  constructor(message: string) {
    super(message, "see weftd --help");
    this.name = "FlagError";
  }
}

/** Parsed flags, read through typed getters so a typo in a name fails loudly. */
export class Flags {
  constructor(
    private readonly values: ReadonlyMap<string, FlagValue>,
    /** Arguments after the flags (flanneld ignores them; so do we, with a warning). */
    readonly rest: readonly string[],
  ) {}

  private value(name: string, kind: FlagKind): FlagValue {
    const spec = FLAG_SPECS.find((s) => s.name === name);
    if (!spec || spec.kind !== kind) throw new Error(`no ${kind} flag named ${name}`);
    return (
      this.values.get(name) ??
      ((Array.isArray(spec.fallback) ? [...spec.fallback] : spec.fallback) as FlagValue)
    );
  }

  string(name: string): string {
    return this.value(name, "string") as string;
  }
  bool(name: string): boolean {
    return this.value(name, "bool") as boolean;
  }
  int(name: string): number {
    return this.value(name, "int") as number;
  }
  list(name: string): string[] {
    return this.value(name, "list") as string[];
  }
}

const GO_TRUE = new Set(["1", "t", "T", "true", "TRUE", "True"]);
const GO_FALSE = new Set(["0", "f", "F", "false", "FALSE", "False"]);

function convert(spec: FlagSpec, raw: string, source: string): FlagValue {
  switch (spec.kind) {
    case "bool":
      if (GO_TRUE.has(raw)) return true;
      if (GO_FALSE.has(raw)) return false;
      throw new FlagError(`invalid boolean value ${describeValue(raw)} for ${source}: use true or false`);
    case "int": {
      // Go's strconv.ParseInt(s, 0, 64): decimal, 0x hex, 0o/0 octal, 0b binary, optional sign.
      const match = /^([+-]?)(0x[0-9a-f_]+|0o[0-7_]+|0b[01_]+|0[0-7_]*|[1-9][0-9_]*)$/i.exec(raw);
      if (!match) throw new FlagError(`invalid number ${describeValue(raw)} for ${source}`);
      const body = match[2]!.replace(/_/g, "");
      let magnitude: bigint;
      try {
        magnitude = BigInt(/^0[0-7]+$/.test(body) ? `0o${body.slice(1)}` : body);
      } catch {
        throw new FlagError(`invalid number ${describeValue(raw)} for ${source}`); // "0x_": no digits
      }
      // Go refuses what int64 cannot hold; so do we, and beyond 2^53, which a JS number cannot hold
      // exactly (no flag means anything near either).
      if (magnitude > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new FlagError(`invalid number ${describeValue(raw)} for ${source}: value out of range`);
      }
      return match[1] === "-" ? -Number(magnitude) : Number(magnitude);
    }
    case "list":
      return [raw];
    default:
      return raw;
  }
}

/** Parses argv (without node and script) and the environment into Flags. */
export function parseFlags(argv: readonly string[], env: NodeJS.ProcessEnv): Flags {
  const values = new Map<string, FlagValue>();
  const set = (spec: FlagSpec, raw: string, source: string) => {
    const value = convert(spec, raw, source);
    const previous = values.get(spec.name);
    values.set(spec.name, spec.kind === "list" && Array.isArray(previous) ? [...previous, raw] : value);
  };

  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      i++;
      break;
    }
    if (!arg.startsWith("-") || arg === "-") break;
    const body = arg.startsWith("--") ? arg.slice(2) : arg.slice(1);
    if (body === "" || body.startsWith("-") || body.startsWith("="))
      throw new FlagError(`bad flag syntax: ${boundText(arg)}`);
    const eq = body.indexOf("=");
    const name = eq < 0 ? body : body.slice(0, eq);
    const spec = FLAG_SPECS.find((s) => s.name === name);
    if (!spec) throw new FlagError(`flag provided but not defined: -${boundText(name)}`);
    if (eq >= 0) set(spec, body.slice(eq + 1), `-${name}`);
    else if (spec.kind === "bool") set(spec, "true", `-${name}`);
    else {
      if (i + 1 >= argv.length) throw new FlagError(`flag needs an argument: -${name}`);
      set(spec, argv[++i]!, `-${name}`);
    }
  }

  for (const spec of FLAG_SPECS) {
    if (values.has(spec.name)) continue;
    const key = `FLANNELD_${spec.name.toUpperCase().replace(/-/g, "_")}`;
    const raw = env[key];
    if (raw !== undefined && raw !== "") set(spec, raw, key);
  }
  const flags = new Flags(values, argv.slice(i));
  checkValues(flags);
  return flags;
}

/**
 * Values Go's flag package accepts but that cannot work, refused up front with the flag's name (rather
 * than as Node's internal error, or a DNS lookup of the "IP", when the server starts).
 */
function checkValues(flags: Flags): void {
  const port = flags.int("healthz-port");
  if (!Number.isSafeInteger(port) || port < 0 || port > 65535) {
    throw new FlagError(
      `--healthz-port ${describeValue(port)} is not a TCP port: use 1 to 65535, or 0 for none`,
    );
  }
  const ip = flags.string("healthz-ip");
  if (ip !== "" && !parseIP(ip)) {
    throw new FlagError(
      `--healthz-ip ${describeValue(ip)} is not an IP address: use one of this host's addresses, or 0.0.0.0 for all`,
    );
  }
}

export function usage(program: string): string {
  const lines = [`Usage: ${program} [OPTION]...`];
  for (const spec of FLAG_SPECS) {
    const kind = spec.kind === "bool" ? "" : spec.kind === "list" ? " value" : ` ${spec.kind}`;
    const fallback =
      spec.kind === "list" || spec.fallback === "" || spec.fallback === false || spec.fallback === 0
        ? ""
        : ` (default ${JSON.stringify(spec.fallback)})`;
    lines.push(`  -${spec.name}${kind}`, `    \t${spec.usage}${fallback}`);
  }
  lines.push("Every flag can also be set as FLANNELD_<FLAG> in the environment, e.g. FLANNELD_IP_MASQ=true.");
  return `${lines.join("\n")}\n`;
}
