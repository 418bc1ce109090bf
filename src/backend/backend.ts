/**
 * A backend decides how packets reach peers' subnets, as flannel's pkg/backend does. Its lifecycle
 * follows flannel's RegisterNetwork + Network.Run:
 *   setUp (devices, lease attributes) -> lease acquired -> attachLease -> start (own loops) -> ...
 *   every lease table change: desiredState (pure) for the reconciler, then peersChanged (the hook)
 *   ... -> close on shutdown.
 * Peers' kernel state is never written by the backend: it declares the kinds of state it owns and
 * computes the desired entries; the reconciler converges them. Effects that are not state a kind can
 * read back or remember go through the peersChanged hook.
 */
import type { NetworkConfig } from "../config/network-config.js";
import type { IPNetwork } from "../ip/ip-network.js";
import type { Lease, LeaseAttrs } from "../lease/lease.js";
import type { Link, RtNetlink } from "../netlink/index.js";
import type { KernelKinds } from "../reconcile/kinds/kernel-kinds.js";
import type { AnyStateKind, DesiredState } from "../reconcile/state-kind.js";
import type { LeasePublishRules, StoredBackendData } from "../subnet/subnet-manager.js";

/** The host's interface to the other hosts (flanneld's "external interface"). */
export interface ExternalInterface {
  readonly name: string;
  readonly index: number;
  readonly mtu: number;
  /** Addresses on the interface, used as the local VTEP address. */
  readonly ipv4: string | undefined;
  readonly ipv6: string | undefined;
  /** Addresses peers use to reach us (--public-ip, else the interface's). */
  readonly publicIP: string | undefined;
  readonly publicIPv6: string | undefined;
  /** Networks directly attached to the interface: a peer inside one is on our L2. */
  readonly connected: readonly IPNetwork[];
}

export interface PeerProblem {
  readonly key: string;
  readonly reason: string;
}

export interface DesiredPeers {
  /** Entries by kind name; only kinds in Backend.kinds. */
  readonly state: DesiredState;
  /** Peers that could not be programmed, with why (logged once by the daemon). */
  readonly problems: readonly PeerProblem[];
}

/** What changed in the lease table since the last call (pure diff, src/backend/peer-change.ts). */
export interface PeerChange {
  readonly own: Lease;
  /** New peers, and peers whose lease changed (the new value). */
  readonly added: readonly Lease[];
  /** Peers gone, with the values they last had. */
  readonly removed: readonly Lease[];
  /** Every peer now (our own lease excluded). */
  readonly peers: ReadonlyMap<string, Lease>;
}

export interface BackendSetUp {
  /** What to publish in our lease. */
  readonly attrs: LeaseAttrs;
  /** The MTU pods get (subnet.env FLANNEL_MTU). */
  readonly mtu: number;
}

export interface Backend {
  readonly type: string;
  /** The kinds of managed state this backend owns; the reconciler converges exactly these. */
  readonly kinds: readonly AnyStateKind[];
  /** Creates or adopts devices, runs pre-start commands; returns what to publish in our lease and the MTU. */
  setUp(): Promise<BackendSetUp>;
  /**
   * Finishes devices once the lease is known (e.g. the vxlan device's address). Idempotent: it runs
   * again when an owned device disappears and when our lease is acquired again.
   */
  attachLease(lease: Lease): Promise<void>;
  /**
   * Optional, flannel's Network.Run: starts the backend's own loops (a packet forwarder, a child
   * process) after the first attachLease. Resolves once they run. A loop that fails later logs and
   * restarts itself with src/retry/backoff.ts; it never ends weftd.
   */
  start?(lease: Lease): Promise<void>;
  /** The entries wanted for these peers, by kind. Pure. */
  desiredState(own: Lease, peers: Iterable<Lease>): DesiredPeers;
  /**
   * Optional peers hook, after every lease table change, for effects that are not converged state
   * (commands per peer, an API call). Called in order; must not throw or block: it queues its work and
   * retries failures itself, one peer's failure never holding up another.
   */
  peersChanged?(change: PeerChange): void;
  /** Optional: the backend's own /metrics lines in the Prometheus text format (e.g. udp's forwarder counters). */
  metricLines?(): readonly string[];
  /**
   * Optional, on shutdown: stops loops and child processes. Leaves devices and kernel state in place
   * where the datapath survives the process, so a restart loses no packet.
   */
  close?(): Promise<void>;
  /**
   * Optional: the devices setUp and attachLease keep for this lease, as they would make them, so
   * `weft doctor` compares the kernel's with what the daemon wants instead of guessing. Pure.
   */
  expectedDevices?(own: Lease): readonly ExpectedDevice[];
  /** Devices only this backend uses: every entry on them is ours; their loss triggers attachLease. */
  readonly ownedDevices: readonly string[];
  /** Devices our peer routes go through; stale routes to pod subnets on these are removed. */
  readonly routeDevices: readonly string[];
}

/** A device as the backend wants it (see Backend.expectedDevices). */
export interface ExpectedDevice {
  readonly name: string;
  /** Bytes the encapsulation adds: the external interface's MTU must exceed the device's by this. */
  readonly overhead: number;
  readonly mtu: number;
  /** Addresses the device carries, as "10.244.5.0/32". */
  readonly addresses: readonly string[];
  /** The MAC our lease publishes for it, which peers' FDB and neighbour entries use. */
  readonly publishedMac: string | undefined;
  /** What differs between the kernel's link and the wanted device (type, VNI, port...); empty: none. */
  differences(link: Link): string[];
}

export interface BackendContext {
  readonly config: NetworkConfig;
  readonly extIface: ExternalInterface;
  readonly netlink: RtNetlink;
  /** The shared rtnetlink kinds (route, neigh, fdb) a kernel backend lists in its `kinds`. */
  readonly kernel: KernelKinds;
  readonly log: (message: string) => void;
  readonly warn: (message: string) => void;
  /** What this host published in an earlier run, if the store keeps it (kube mode), to reuse e.g. MACs. */
  readonly stored?: StoredBackendData | undefined;
}

/** Makes the backend once its config is known good. */
export type BackendFactory = (context: BackendContext) => Backend;

/** One entry of the backend registry (src/backend/registry.ts). */
export interface BackendRegistration {
  /** Backend.Type in the network config, lower case: "vxlan", "host-gw", "udp", ... */
  readonly type: string;
  /**
   * Pure: reads and checks the backend's own keys of Backend{...}, throwing ConfigError that names the
   * key, so weftd waits for a fixed config before anything is set up.
   */
  configure(config: NetworkConfig): BackendFactory;
  /** Which lease fields a store that publishes per field (kube annotations) writes; flannel's default if absent. */
  readonly leaseRules?: LeasePublishRules;
}
