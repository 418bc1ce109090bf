/**
 * What each extension command gets: its environment variables and its stdin. Pure.
 * flannel's variables: NETWORK, SUBNET, IPV6SUBNET, PUBLIC_IP and PUBLIC_IPV6 for PostStartupCommand
 * (about this host); SUBNET, IPV6SUBNET, PUBLIC_IP and PUBLIC_IPV6 for SubnetAdd/RemoveCommand (about the
 * peer; flannel's docs list all four, its code sets only SUBNET and PUBLIC_IP). An address or subnet
 * the lease lacks is empty, where flannel prints Go zero values ("::/0", "<nil>").
 */
import type { NetworkConfig } from "../../config/network-config.js";
import { formatCIDR, type IPNetwork } from "../../ip/ip-network.js";
import type { Lease, LeaseAttrs } from "../../lease/lease.js";
import { describeValue } from "../../text/untrusted-text.js";

export type CommandVariables = Readonly<Record<string, string>>;

export interface CommandInput {
  readonly variables: CommandVariables;
  /** Written to the command's stdin, then closed. */
  readonly stdin: string;
}

const cidr = (net: IPNetwork | undefined): string => (net ? formatCIDR(net) : "");

/** PreStartupCommand runs before any lease exists: no variables of its own, and an empty line on stdin. */
export const PRE_STARTUP_INPUT: CommandInput = { variables: {}, stdin: "\n" };

export function postStartupInput(config: NetworkConfig, lease: Lease, attrs: LeaseAttrs): CommandInput {
  return {
    variables: {
      NETWORK: cidr(config.ipv4?.network),
      SUBNET: cidr(lease.subnet),
      IPV6SUBNET: cidr(lease.ipv6Subnet),
      PUBLIC_IP: attrs.publicIP ?? "",
      PUBLIC_IPV6: attrs.publicIPv6 ?? "",
    },
    stdin: "\n",
  };
}

/**
 * A peer's input for SubnetAdd/RemoveCommand: its variables, and its BackendData (the output of its
 * PreStartupCommand, a JSON string) and a newline on stdin. BackendData that is not a string cannot be
 * passed on, as in flannel: the peer is skipped with the reason.
 */
export function peerInput(peer: Lease): CommandInput | { readonly problem: string } {
  const data = peer.attrs.backendData;
  if (data !== undefined && data !== null && typeof data !== "string") {
    return {
      problem: `its BackendData is ${describeValue(data)}, not the string an extension PreStartupCommand writes`,
    };
  }
  return {
    variables: {
      SUBNET: cidr(peer.subnet),
      IPV6SUBNET: cidr(peer.ipv6Subnet),
      PUBLIC_IP: peer.attrs.publicIP ?? "",
      PUBLIC_IPV6: peer.attrs.publicIPv6 ?? "",
    },
    stdin: `${data ?? ""}\n`,
  };
}

/** Peers whose commands this backend runs: other hosts on the extension backend, as flannel filters. */
export function isExtensionPeer(own: Lease, peer: Lease): boolean {
  return peer.key !== own.key && peer.attrs.backendType === "extension";
}
