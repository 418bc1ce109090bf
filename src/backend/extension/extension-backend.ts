/**
 * The extension backend, as flannel's pkg/backend/extension: the operator's commands do the datapath.
 *   PreStartupCommand  in setUp, before the lease: its trimmed output is our lease's BackendData.
 *   PostStartupCommand in start, once the lease is held, before any peer's command.
 *   SubnetAddCommand / SubnetRemoveCommand per peer on the extension backend, through the peers hook
 *   (src/backend/extension/peer-commands.ts); no kernel state of its own.
 * Where flanneld exits on a failing startup command, weft logs it with its output and retries with
 * backoff (the command may depend on something still coming up).
 */
import type { Lease, LeaseAttrs } from "../../lease/lease.js";
import { type BackoffOptions, logEachDistinct, retry } from "../../retry/backoff.js";
import { describeError } from "../../user-error.js";
import type {
  Backend,
  BackendContext,
  BackendRegistration,
  BackendSetUp,
  DesiredPeers,
  PeerChange,
  PeerProblem,
} from "../backend.js";
import { type CommandInput, isExtensionPeer, PRE_STARTUP_INPUT, postStartupInput } from "./command-inputs.js";
import type { CommandLine } from "./command-line.js";
import { processRunner, type RunCommand } from "./command-process.js";
import { COMMAND_KEYS, type ExtensionConfig, parseExtensionConfig } from "./extension-config.js";
import { describeOutput, PeerCommands } from "./peer-commands.js";

export const extensionRegistration: BackendRegistration = {
  type: "extension",
  configure: (config) => {
    const extension = parseExtensionConfig(config.backend);
    return (context) => new ExtensionBackend(context, extension);
  },
  // flannel's kube manager writes the v6 pair for extension whenever the host has an IPv6 address.
  leaseRules: { v4: "always", v6: "with-address" },
};

export interface ExtensionOptions {
  readonly run?: RunCommand;
  /** Between retries of a failing startup command. */
  readonly startupBackoff?: BackoffOptions;
  /** Between retries of a failing peer command. */
  readonly peerBackoff?: BackoffOptions;
  /** Commands running at once across peers. */
  readonly concurrency?: number;
}

class CommandFailed extends Error {}

export class ExtensionBackend implements Backend {
  readonly type = "extension";
  readonly kinds = [];
  readonly ownedDevices = [];
  readonly routeDevices = [];
  private readonly run: RunCommand;
  private readonly peers: PeerCommands;
  private readonly startupBackoff: BackoffOptions;
  private closed = false;
  private readonly abort = new AbortController();

  constructor(
    private readonly context: BackendContext,
    private readonly extension: ExtensionConfig,
    options: ExtensionOptions = {},
  ) {
    this.run = options.run ?? processRunner();
    this.startupBackoff = options.startupBackoff ?? { minMs: 1000, maxMs: 30_000 };
    this.peers = new PeerCommands({
      add: extension.subnetAdd,
      remove: extension.subnetRemove,
      run: this.run,
      log: { info: context.log, warn: context.warn },
      backoff: options.peerBackoff ?? { minMs: 1000, maxMs: 60_000 },
      concurrency: options.concurrency ?? 4,
    });
  }

  async setUp(): Promise<BackendSetUp> {
    const { config, extIface } = this.context;
    let backendData: string | undefined;
    if (this.extension.preStartup) {
      backendData = await this.runStartup("preStartup", this.extension.preStartup, PRE_STARTUP_INPUT);
    } else this.context.log("no PreStartupCommand configured");
    const attrs: LeaseAttrs = {
      publicIP: config.ipv4 ? extIface.publicIP : undefined,
      publicIPv6: config.ipv6 ? extIface.publicIPv6 : undefined,
      backendType: "extension",
      // flannel publishes the output as a JSON string, and no BackendData without a PreStartupCommand.
      backendData,
      backendV6Data: undefined,
    };
    return { attrs, mtu: extIface.mtu };
  }

  async attachLease(): Promise<void> {}

  async start(lease: Lease): Promise<void> {
    if (this.extension.postStartup) {
      const input = postStartupInput(this.context.config, lease, lease.attrs);
      await this.runStartup("postStartup", this.extension.postStartup, input);
    } else this.context.log("no PostStartupCommand configured");
    if (!this.closed) this.peers.start();
  }

  desiredState(own: Lease, peers: Iterable<Lease>): DesiredPeers {
    const problems: PeerProblem[] = [];
    for (const peer of peers) {
      if (peer.key === own.key || isExtensionPeer(own, peer)) continue;
      problems.push({
        key: peer.key,
        reason: `its BackendType is ${JSON.stringify(peer.attrs.backendType ?? "")}, not "extension"; its commands are not run`,
      });
    }
    return { state: {}, problems };
  }

  peersChanged(change: PeerChange): void {
    this.peers.update([...change.peers.values()].filter((peer) => isExtensionPeer(change.own, peer)));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.abort.abort();
    await this.peers.close();
  }

  /** For tests: resolves when every peer's commands have run (or are waiting to retry). */
  settled(): Promise<void> {
    return this.peers.settled();
  }

  /** Runs a startup command until it succeeds, logging each distinct failure with its output once. */
  private runStartup(
    name: "preStartup" | "postStartup",
    command: CommandLine,
    input: CommandInput,
  ): Promise<string> {
    const key = COMMAND_KEYS[name];
    return retry(
      async () => {
        const outcome = await this.run(command, input, this.abort.signal);
        if (!outcome.ok) throw new CommandFailed(`${outcome.failure}${describeOutput(outcome)}`);
        // Cut output would publish a BackendData the peers' commands cannot use.
        if (outcome.truncated && name === "preStartup")
          throw new CommandFailed(
            "its output is longer than weft keeps; print less (BackendData is stored with the lease)",
          );
        this.context.log(`ran ${key}${describeOutput(outcome)}`);
        return outcome.output;
      },
      {
        backoff: this.startupBackoff,
        onFailure: logEachDistinct(this.context.warn, `${key} failed`, describeError),
        stopped: () => this.closed,
      },
    );
  }
}
