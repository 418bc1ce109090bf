/**
 * Which interface carries traffic to other hosts, chosen as flanneld does: --iface (a name or an
 * address, first match wins), then --iface-regex, then --iface-can-reach, else the interface of the
 * default route.
 */

import type { ExternalInterface } from "../backend/backend.js";
import type { NetworkConfig } from "../config/network-config.js";
import { formatIP, type IPFamily, parseIP } from "../ip/ip-address.js";
import { type IPNetwork, makeNetwork } from "../ip/ip-network.js";
import { RT_SCOPE_UNIVERSE } from "../netlink/constants.js";
import type { Address, Link, RtNetlink } from "../netlink/index.js";
import { UserError } from "../user-error.js";
import type { Flags } from "./flags.js";

export interface InterfaceChoice {
  readonly iface: readonly string[];
  readonly ifaceRegex: readonly string[];
  readonly ifaceCanReach: string;
  readonly publicIP: string;
  readonly publicIPv6: string;
  readonly ipv4: boolean;
  readonly ipv6: boolean;
}

function canonical(text: string): string {
  const ip = parseIP(text);
  return ip ? formatIP(ip) : text;
}

/** The choice weftd's flags and the config make. */
export function interfaceChoice(
  flags: Pick<Flags, "list" | "string">,
  config: Pick<NetworkConfig, "enableIPv4" | "enableIPv6">,
): InterfaceChoice {
  return {
    iface: flags.list("iface"),
    ifaceRegex: flags.list("iface-regex"),
    ifaceCanReach: flags.string("iface-can-reach"),
    publicIP: flags.string("public-ip"),
    publicIPv6: flags.string("public-ipv6"),
    ipv4: config.enableIPv4,
    ipv6: config.enableIPv6,
  };
}

export async function findExternalInterface(
  netlink: RtNetlink,
  choice: InterfaceChoice,
): Promise<ExternalInterface> {
  return (await chooseExternalInterface(netlink, choice)).iface;
}

/** The interface and how it was chosen ("--iface eth0", "the default route"), for `weft doctor`. */
export async function chooseExternalInterface(
  netlink: RtNetlink,
  choice: InterfaceChoice,
): Promise<{ iface: ExternalInterface; chosenBy: string }> {
  const links = await netlink.linkList();
  const addresses = (await netlink.addrList()).filter((a) => a.scope === RT_SCOPE_UNIVERSE);
  const addressesOf = (link: Link) => addresses.filter((a) => a.index === link.index);
  const linkWithAddress = (ip: string) => {
    const wanted = canonical(ip);
    const found = addresses.find((a) => canonical(a.address) === wanted);
    return found ? links.find((l) => l.index === found.index) : undefined;
  };

  let link: Link | undefined;
  let pinnedAddress: string | undefined;
  let how = "";
  for (const candidate of choice.iface) {
    if (parseIP(candidate)) {
      link = linkWithAddress(candidate);
      pinnedAddress = link ? canonical(candidate) : undefined;
    } else link = links.find((l) => l.name === candidate);
    if (link) {
      how = `--iface ${candidate}`;
      break;
    }
  }
  if (!link) {
    for (const pattern of choice.ifaceRegex) {
      let regex: RegExp;
      try {
        regex = new RegExp(pattern);
      } catch {
        throw new UserError(`--iface-regex ${JSON.stringify(pattern)} is not a valid regular expression`);
      }
      link =
        links.find((l) => regex.test(l.name)) ??
        links.find((l) => addressesOf(l).some((a) => regex.test(canonical(a.address))));
      if (link) {
        how = `--iface-regex ${pattern}`;
        break;
      }
    }
  }
  if (!link && choice.ifaceCanReach) {
    const route = await netlink.routeGet(choice.ifaceCanReach).catch(() => undefined);
    link = route?.oif === undefined ? undefined : links.find((l) => l.index === route.oif);
    how = `--iface-can-reach ${choice.ifaceCanReach}`;
  }
  if (!link && (choice.iface.length > 0 || choice.ifaceRegex.length > 0 || choice.ifaceCanReach)) {
    throw new UserError(
      `no interface matches ${[...choice.iface.map((i) => `--iface ${i}`), ...choice.ifaceRegex.map((r) => `--iface-regex ${r}`), ...(choice.ifaceCanReach ? [`--iface-can-reach ${choice.ifaceCanReach}`] : [])].join(", ")}`,
      "check the names with `ip link` and `ip addr`",
    );
  }
  if (!link) {
    const family: IPFamily = choice.ipv4 ? 4 : 6;
    const defaults = (await netlink.routeList(family)).filter(
      (r) => r.dst.endsWith("/0") && r.oif !== undefined,
    );
    link = links.find((l) => l.index === defaults[0]?.oif);
    how = "the default route";
    if (!link) {
      throw new UserError(
        `no default IPv${family} route to pick the external interface from` +
          (choice.ipv4 ? "" : " (the network config is IPv6-only: EnableIPv4 false)"),
        "name it with --iface (e.g. --iface=eth0)",
      );
    }
  }

  const own = addressesOf(link);
  const firstOf = (family: IPFamily) => own.find((a) => (parseIP(a.address)?.family ?? 0) === family);
  const v4 = pinnedAddress && parseIP(pinnedAddress)?.family === 4 ? pinnedAddress : firstOf(4)?.address;
  const v6 = pinnedAddress && parseIP(pinnedAddress)?.family === 6 ? pinnedAddress : firstOf(6)?.address;
  if (choice.ipv4 && !v4 && !choice.publicIP) {
    throw new UserError(
      `interface ${link.name} (chosen by ${how}) has no IPv4 address`,
      "give it one or pick another with --iface",
    );
  }
  // As flanneld: IPv6 needs an address on the interface itself (the vxlan device's source, host-gw's
  // link); --public-ipv6 only changes the address peers are told.
  if (choice.ipv6 && !v6) {
    throw new UserError(
      `the network config enables IPv6 (EnableIPv6), but interface ${link.name} (chosen by ${how}) has no global IPv6 address` +
        (choice.publicIPv6 ? ` (--public-ipv6 ${choice.publicIPv6} does not replace it)` : ""),
      `give ${link.name} an IPv6 address, pick an interface that has one with --iface, or set "EnableIPv6": false`,
    );
  }
  for (const [flag, value, family] of [
    ["--public-ip", choice.publicIP, 4],
    ["--public-ipv6", choice.publicIPv6, 6],
  ] as const) {
    if (value && parseIP(value)?.family !== family)
      throw new UserError(`${flag} ${value} is not an IPv${family} address`);
  }
  const connected: IPNetwork[] = own.flatMap((a: Address) => {
    const ip = parseIP(a.address);
    return ip ? [makeNetwork(ip, a.prefixlen)] : [];
  });
  const iface: ExternalInterface = {
    name: link.name,
    index: link.index,
    mtu: link.mtu,
    ipv4: v4 === undefined ? undefined : canonical(v4),
    ipv6: v6 === undefined ? undefined : canonical(v6),
    publicIP: choice.publicIP ? canonical(choice.publicIP) : v4 === undefined ? undefined : canonical(v4),
    publicIPv6: choice.publicIPv6
      ? canonical(choice.publicIPv6)
      : v6 === undefined
        ? undefined
        : canonical(v6),
    connected,
  };
  return { iface, chosenBy: how };
}
