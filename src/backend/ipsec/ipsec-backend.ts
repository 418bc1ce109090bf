/**
 * The ipsec backend: strongSwan's charon (weftd's child) keys one IKE SA per peer host and one CHILD SA
 * per subnet pair; the kernel (or charon's kernel-libipsec) carries ESP. Lease: PublicIP and
 * BackendType "ipsec", no BackendData, as flanneld writes it.
 */
import { ConfigError } from "../../config/network-config.js";
import type { Lease } from "../../lease/lease.js";
import type { AnyStateKind } from "../../reconcile/state-kind.js";
import { checkSuccess } from "../../vici/vici-client.js";
import type { Backend, BackendContext, BackendRegistration, BackendSetUp, DesiredPeers } from "../backend.js";
import { CharonProcess, DEFAULT_VICI_SOCKET, findCharon } from "./charon-process.js";
import { type IpsecConfig, ipsecMtu, parseIpsecConfig } from "./ipsec-config.js";
import { ipsecConnKind } from "./ipsec-conn-kind.js";
import { ipsecDesiredState } from "./ipsec-desired.js";
import { loadSharedMessage } from "./ipsec-vici.js";

export const ipsecRegistration: BackendRegistration = {
  type: "ipsec",
  configure: (config) => {
    const settings = parseIpsecConfig(config.backend);
    // As in flannel: IPv4 only.
    if (!config.ipv4)
      throw new ConfigError("the ipsec backend carries IPv4 only: set Network and leave EnableIPv4 on");
    return (context) => new IpsecBackend(context, settings, process.env);
  },
};

export class IpsecBackend implements Backend {
  readonly type = "ipsec";
  readonly kinds: readonly AnyStateKind[];
  readonly ownedDevices: string[] = [];
  readonly routeDevices: string[] = [];
  readonly charon: CharonProcess;

  constructor(
    private readonly context: BackendContext,
    private readonly settings: IpsecConfig,
    env: NodeJS.ProcessEnv,
  ) {
    const publicIP = context.extIface.publicIP;
    this.charon = new CharonProcess({
      path: findCharon(env),
      socket: env.WEFT_CHARON_VICI || DEFAULT_VICI_SOCKET,
      log: context.log,
      warn: context.warn,
      // Our own address's PSK before any connection (flanneld loads it first too), then the
      // connections a restarted charon lost.
      onReady: async (client) => {
        if (publicIP)
          checkSuccess(
            "load-shared",
            await client.request("load-shared", loadSharedMessage(settings.psk, publicIP)),
          );
        await conns.reload(client, context.warn);
      },
    });
    const conns = ipsecConnKind(() => this.charon.vici(), settings.psk);
    this.kinds = [conns];
  }

  async setUp(): Promise<BackendSetUp> {
    const ext = this.context.extIface;
    this.context.log(`ipsec: UDPEncap=${this.settings.udpEncap} ESPProposal=${this.settings.espProposal}`);
    if (this.context.config.ipv6)
      this.context.warn("the ipsec backend carries IPv4 only; IPv6Network is leased but not routed");
    return {
      attrs: {
        publicIP: ext.publicIP,
        publicIPv6: undefined,
        backendType: "ipsec",
        backendData: undefined,
        backendV6Data: undefined,
      },
      mtu: ipsecMtu(ext.mtu, this.settings.udpEncap),
    };
  }

  async attachLease(): Promise<void> {}

  async start(): Promise<void> {
    this.charon.start();
    await this.charon.vici();
  }

  desiredState(own: Lease, peers: Iterable<Lease>): DesiredPeers {
    return ipsecDesiredState(own, peers, this.settings);
  }

  async close(): Promise<void> {
    await this.charon.close();
  }
}
