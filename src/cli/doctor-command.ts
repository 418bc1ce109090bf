/**
 * `weft doctor`: checks this host against what weftd would want now. The wanted state comes from the
 * daemon's own pieces (the store's leases, the external-interface choice, the backend's configure,
 * desiredState and expected devices, the lease scope filter, the ownership scope, the rule model); the
 * actual state from the kinds' readActual, iptables-save, /proc/sys and ethtool. It changes nothing.
 */
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { release } from "node:os";
import type { Backend, ExternalInterface } from "../backend/backend.js";
import { configureBackend } from "../backend/registry.js";
import { chooseExternalInterface, interfaceChoice } from "../daemon/external-interface.js";
import type { Flags } from "../daemon/flags.js";
import { readHostNetworks } from "../daemon/host-networks.js";
import { ownershipScope } from "../daemon/ownership-scope.js";
import { PeerLeaseFilter } from "../daemon/peer-lease-filter.js";
import { trafficOptions, wantedRules } from "../daemon/traffic-rules-sync.js";
import { repairInput } from "../firewall/rule-diff.js";
import { wantedChains } from "../firewall/traffic-rules.js";
import type { Lease } from "../lease/lease.js";
import { RtNetlink } from "../netlink/index.js";
import { createKernelKinds } from "../reconcile/kinds/kernel-kinds.js";
import { entriesOf } from "../reconcile/state-kind.js";
import { describeError } from "../user-error.js";
import {
  type Check,
  checkChecksumOffload,
  checkForwarding,
  checkKind,
  checkMtuRoom,
  checkRpFilter,
  checkSubnetEnv,
  formatChecks,
} from "./doctor-report.js";
import { type LeaseListing, readLeases } from "./lease-source.js";
import { formatExpiry } from "./leases-command.js";

function runTool(command: string, args: readonly string[]): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: 15_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if ((err as NodeJS.ErrnoException | null)?.code === "ENOENT") resolve(undefined);
      else if (err) reject(new Error(`${command} ${args.join(" ")}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

async function readOptional(path: string): Promise<string | undefined> {
  return readFile(path, "utf8").catch(() => undefined);
}

/** flanneld finds its own lease by the public address in it; so does doctor. */
function ownLeases(listing: LeaseListing, ext: ExternalInterface): Lease[] {
  return listing.leases.flatMap((l) => {
    const attrs = l.lease?.attrs;
    if (!l.lease || !attrs) return [];
    const mine = ext.publicIP ? attrs.publicIP === ext.publicIP : attrs.publicIPv6 === ext.publicIPv6;
    return mine ? [l.lease] : [];
  });
}

export async function runDoctor(flags: Flags, env: NodeJS.ProcessEnv): Promise<Check[]> {
  const checks: Check[] = [];
  const host: HostFacts = { ipv6: false, devices: [] };
  await datapathChecks(flags, env, (check) => checks.push(check), host);
  checks.push(...(await sysctlChecks(host)));
  return checks;
}

/** What the sysctl checks need from the datapath checks: the families and the devices in play. */
interface HostFacts {
  ipv6: boolean;
  devices: string[];
}

/** Forwarding and rp_filter, read from /proc/sys (per network namespace); run whatever else failed. */
async function sysctlChecks(host: HostFacts): Promise<Check[]> {
  const checks = [checkForwarding(4, await readOptional("/proc/sys/net/ipv4/ip_forward"))];
  if (host.ipv6)
    checks.push(checkForwarding(6, await readOptional("/proc/sys/net/ipv6/conf/all/forwarding")));
  const rp = new Map<string, string | undefined>();
  for (const dev of ["all", ...host.devices]) {
    rp.set(dev, (await readOptional(`/proc/sys/net/ipv4/conf/${dev}/rp_filter`))?.trim());
  }
  checks.push(checkRpFilter(rp));
  return checks;
}

/** Stops at the first check the rest depend on (store, interface, lease, config). */
async function datapathChecks(
  flags: Flags,
  env: NodeJS.ProcessEnv,
  add: (check: Check) => void,
  host: HostFacts,
): Promise<void> {
  let listing: LeaseListing;
  try {
    listing = await readLeases(flags, env);
    add({
      name: "store",
      status: "ok",
      detail: `${listing.store}: ${listing.leases.length} lease(s), backend ${listing.config.backendType}`,
    });
  } catch (err) {
    add({
      name: "store",
      status: "fail",
      detail: `cannot read the leases: ${describeError(err)}`,
      fix: "check the store flags (the same as weftd's)",
    });
    return;
  }
  const { config } = listing;
  host.ipv6 = config.ipv6 !== undefined;
  const netlink = await RtNetlink.open();
  try {
    let ext: ExternalInterface;
    try {
      const chosen = await chooseExternalInterface(netlink, interfaceChoice(flags, config));
      ext = chosen.iface;
      host.devices.push(ext.name);
      const pub = [ext.publicIP, ext.publicIPv6].filter(Boolean).join(", ");
      const fromFlag =
        flags.string("public-ip") || flags.string("public-ipv6") ? " (from --public-ip)" : " (its address)";
      add({
        name: "interface",
        status: "ok",
        detail: `${ext.name} chosen by ${chosen.chosenBy}; local ${[ext.ipv4, ext.ipv6].filter(Boolean).join(", ")}; public IP ${pub}${fromFlag}; MTU ${ext.mtu}`,
      });
    } catch (err) {
      add({
        name: "interface",
        status: "fail",
        detail: describeError(err),
        fix: "name the interface with --iface (as weftd is started)",
      });
      return;
    }

    const mine = ownLeases(listing, ext);
    const own = mine[0];
    if (!own) {
      add({
        name: "lease",
        status: "fail",
        detail: `no lease in ${listing.store} carries this host's public IP ${ext.publicIP ?? ext.publicIPv6}`,
        fix: "start weftd; if peers reach this host at another address, give weftd (and doctor) --public-ip or --iface",
      });
      return;
    }
    const listed = listing.leases.find((l) => l.lease === own)!;
    add({
      name: "lease",
      status: mine.length > 1 ? "warn" : "ok",
      detail: `${own.key}${own.reservation ? " (reservation)" : listed.expiresInSeconds !== undefined ? ` (expires ${formatExpiry(listed.expiresInSeconds)})` : ""}${mine.length > 1 ? `; ${mine.length} leases carry this address: ${mine.map((l) => l.key).join(", ")}` : ""}`,
      ...(mine.length > 1 ? { fix: "delete the leases this host no longer uses" } : {}),
    });

    let backend: Backend;
    const kernel = createKernelKinds(netlink);
    try {
      backend = configureBackend(config).create({
        config,
        extIface: ext,
        netlink,
        kernel,
        log: () => undefined,
        warn: () => undefined,
        stored: {
          backendType: own.attrs.backendType,
          v4: own.attrs.backendData,
          v6: own.attrs.backendV6Data,
        },
      });
    } catch (err) {
      add({
        name: "config",
        status: "fail",
        detail: describeError(err),
        fix: "fix the network config; weftd waits for a valid one",
      });
      return;
    }
    const devices = backend.expectedDevices?.(own) ?? [];
    host.devices.push(...devices.map((d) => d.name));

    add(
      checkSubnetEnv(flags.string("subnet-file"), await readOptional(flags.string("subnet-file")), {
        network: config.ipv4?.network,
        subnet: own.subnet,
        ipv6Network: config.ipv6?.network,
        ipv6Subnet: own.ipv6Subnet,
        mtu: devices[0]?.mtu ?? ext.mtu,
        ipMasq: flags.bool("ip-masq"),
      }),
    );

    for (const device of devices) {
      const name = `device ${device.name}`;
      const link = await netlink.linkFind(device.name);
      if (!link) {
        add({
          name,
          status: "fail",
          detail: `${device.name} does not exist`,
          fix: "start weftd: it creates the device again, with the MAC the lease publishes",
        });
        continue;
      }
      const wrong = device.differences(link);
      const addresses = (await netlink.addrList(0, link.index)).map((a) => `${a.address}/${a.prefixlen}`);
      const missing = device.addresses.filter((a) => !addresses.includes(a));
      if (missing.length > 0)
        wrong.push(`lacks address ${missing.join(", ")} (has ${addresses.join(", ") || "none"})`);
      const v = link.vxlan;
      add(
        wrong.length > 0
          ? {
              name,
              status: "fail",
              detail: `${device.name}: ${wrong.join("; ")}`,
              fix: "restart weftd, which replaces an incompatible device and sets MTU and address",
            }
          : {
              name,
              status: "ok",
              detail: `${link.kind}${v ? ` VNI ${v.vni} port ${v.port ?? 8472} local ${v.local}` : ""}, MTU ${link.mtu}, ${device.addresses.join(", ")}, up`,
            },
      );
      if (device.publishedMac) {
        const same = link.mac?.toLowerCase() === device.publishedMac;
        add(
          same
            ? {
                name: `vtep-mac ${device.name}`,
                status: "ok",
                detail: `the lease publishes ${device.publishedMac}, as the device has`,
              }
            : {
                name: `vtep-mac ${device.name}`,
                status: "fail",
                detail: `the lease publishes VtepMAC ${device.publishedMac} but ${device.name} has ${link.mac}: peers send this host's traffic to a MAC nobody has`,
                fix: "restart weftd: it re-creates the device with the published MAC",
              },
        );
      }
      add(checkMtuRoom(device.name, link.mtu, device.overhead, ext.name, ext.mtu));
      add(
        checkChecksumOffload(
          device.name,
          release(),
          await runTool("ethtool", ["-k", device.name]).catch(() => undefined),
        ),
      );
    }

    // The peers weftd would route: the same scope filter and desired state.
    const refusals: string[] = [];
    const filter = new PeerLeaseFilter({
      config,
      kubeMode: flags.bool("kube-subnet-mgr"),
      readHostNetworks: () => readHostNetworks(netlink, ext, backend.ownedDevices),
      warn: (m) => refusals.push(m),
    });
    await filter.refresh();
    const leases = new Map(listing.leases.flatMap((l) => (l.lease ? [[l.key, l.lease] as const] : [])));
    const peers = filter.peers(leases, own);
    const desired = backend.desiredState(own, peers);
    filter.report(desired.problems);
    const unreadable = listing.leases
      .filter((l) => l.problem)
      .map((l) => `lease ${l.key} cannot be read: ${l.problem}`);
    add({
      name: "peers",
      status: refusals.length + unreadable.length > 0 ? "warn" : "ok",
      detail: `${peers.length} peer lease(s) in scope${[...unreadable, ...refusals].map((m) => `; ${m}`).join("")}`,
      ...(refusals.length + unreadable.length > 0
        ? { fix: "fix or delete the leases named (weftd does not route them)" }
        : {}),
    });
    const scope = ownershipScope(config, own, backend);
    await kernel.refresh();
    for (const kind of backend.kinds) {
      try {
        const actual = (await kind.readActual(scope)).filter((e) => kind.owns(e, scope));
        add(checkKind(kind, entriesOf(desired.state, kind), actual));
      } catch (err) {
        add({
          name: kind.name,
          status: "fail",
          detail: `cannot read the ${kind.plural}: ${describeError(err)}`,
        });
      }
    }

    const wantRules = wantedRules(config, own, trafficOptions(flags));
    const chains = new Map(
      ([4, 6] as const)
        .map((family) => [family, wantedChains(family, wantRules)] as const)
        .filter(([, wanted]) => wanted.length > 0),
    );
    if (chains.size === 0)
      add({
        name: "traffic-rules",
        status: "ok",
        detail: "none wanted (--ip-masq and --iptables-forward-rules are off)",
      });
    for (const [family, wanted] of chains) {
      const save = family === 4 ? "iptables-save" : "ip6tables-save";
      for (const want of wanted) {
        const name = `iptables ${want.chain}`;
        try {
          const saved = await runTool(save, ["-t", want.table]);
          if (saved === undefined) {
            add({
              name,
              status: "fail",
              detail: `${save} is not installed`,
              fix: "install the iptables package",
            });
            continue;
          }
          add(
            repairInput(saved, want) === undefined
              ? {
                  name,
                  status: "ok",
                  detail: `IPv${family} ${want.table} ${want.chain}: ${want.rules.length} rule(s) and the jump from ${want.parent}, as weftd wants`,
                }
              : {
                  name,
                  status: "fail",
                  detail: `IPv${family} ${want.table} chain ${want.chain} (or its jump from ${want.parent}) is not as weftd wants: ${want.rules.length} rule(s) expected`,
                  fix: "start weftd, which restores it within --iptables-resync seconds; if it keeps vanishing, find what flushes it (firewalld, a script)",
                },
          );
        } catch (err) {
          add({ name, status: "fail", detail: describeError(err) });
        }
      }
    }
  } finally {
    netlink.close();
  }
}

export async function doctorCommand(
  flags: Flags,
  env: NodeJS.ProcessEnv,
  output: "table" | "json",
  write: (text: string) => void,
): Promise<number> {
  const checks = await runDoctor(flags, env);
  const ok = !checks.some((c) => c.status === "fail");
  if (output === "json") write(`${JSON.stringify({ ok, checks }, null, 2)}\n`);
  else write(formatChecks(checks));
  return ok ? 0 : 1;
}
