/** The choice of the external interface and its addresses for IPv4, IPv6 and dual-stack configs. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { findExternalInterface, type InterfaceChoice } from "../../src/daemon/external-interface.js";
import type { Address, Link, Route, RtNetlink } from "../../src/netlink/index.js";
import { UserError } from "../../src/user-error.js";

/** What netlink reports on a host: links, addresses and default routes (data only; the logic is real). */
function host(options: { addresses: [string, string, number][]; defaults?: [4 | 6, string][] }): RtNetlink {
  const names = ["lo", "eth0", "eth1"];
  const links = names.map((name, i) => ({ index: i + 1, name, mtu: 1500 }) as Link);
  const indexOf = (name: string) => names.indexOf(name) + 1;
  const addresses = options.addresses.map(
    ([dev, address, prefixlen]) =>
      ({
        family: address.includes(":") ? 6 : 4,
        index: indexOf(dev),
        address,
        prefixlen,
        scope: 0,
      }) as Address,
  );
  const routes = (options.defaults ?? []).map(
    ([family, dev]) => ({ family, dst: family === 4 ? "0.0.0.0/0" : "::/0", oif: indexOf(dev) }) as Route,
  );
  return {
    linkList: async () => links,
    addrList: async () => addresses,
    routeList: async (family: 4 | 6) => routes.filter((r) => r.family === family),
    routeGet: async () => {
      throw new Error("no route");
    },
  } as unknown as RtNetlink;
}

const choice = (overrides: Partial<InterfaceChoice>): InterfaceChoice => ({
  iface: [],
  ifaceRegex: [],
  ifaceCanReach: "",
  publicIP: "",
  publicIPv6: "",
  ipv4: true,
  ipv6: false,
  ...overrides,
});

async function userError(promise: Promise<unknown>): Promise<UserError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof UserError, `a UserError, not ${error}`);
    return error;
  }
  assert.fail("expected a UserError");
}

const dualHost = host({
  addresses: [
    ["eth0", "172.31.0.1", 16],
    ["eth0", "fd31::1", 64],
    ["eth1", "10.0.0.1", 24],
  ],
  defaults: [
    [4, "eth0"],
    [6, "eth0"],
  ],
});

describe("external interface for IPv6", () => {
  it("dual-stack: both addresses of the interface, public addresses default to them", async () => {
    const ext = await findExternalInterface(dualHost, choice({ iface: ["eth0"], ipv6: true }));
    assert.equal(ext.ipv4, "172.31.0.1");
    assert.equal(ext.ipv6, "fd31::1");
    assert.equal(ext.publicIP, "172.31.0.1");
    assert.equal(ext.publicIPv6, "fd31::1");
  });

  it("--public-ipv6 is the address peers use; the device keeps the interface's", async () => {
    const ext = await findExternalInterface(
      dualHost,
      choice({ iface: ["eth0"], ipv6: true, publicIPv6: "FD31:0::0099" }),
    );
    assert.equal(ext.ipv6, "fd31::1");
    assert.equal(ext.publicIPv6, "fd31::99");
  });

  it("--iface given an IPv6 address picks its interface and that address", async () => {
    const ext = await findExternalInterface(
      dualHost,
      choice({ iface: ["fd31::1"], ipv4: false, ipv6: true }),
    );
    assert.equal(ext.name, "eth0");
    assert.equal(ext.ipv6, "fd31::1");
  });

  it("IPv6-only without --iface: the interface of the default IPv6 route", async () => {
    const v6Default = host({
      addresses: [
        ["eth0", "172.31.0.1", 16],
        ["eth1", "fd31::1", 64],
      ],
      defaults: [
        [4, "eth0"],
        [6, "eth1"],
      ],
    });
    const ext = await findExternalInterface(v6Default, choice({ ipv4: false, ipv6: true }));
    assert.equal(ext.name, "eth1");
    assert.equal(ext.publicIPv6, "fd31::1");
    assert.equal(ext.publicIP, undefined);
  });

  it("IPv6 on an interface without an IPv6 address: one error naming the interface, the flag and the fix", async () => {
    const error = await userError(findExternalInterface(dualHost, choice({ iface: ["eth1"], ipv6: true })));
    assert.equal(
      error.message,
      "the network config enables IPv6 (EnableIPv6), but interface eth1 (chosen by --iface eth1) has no global IPv6 address",
    );
    assert.equal(
      error.hint,
      'give eth1 an IPv6 address, pick an interface that has one with --iface, or set "EnableIPv6": false',
    );
  });

  it("--public-ipv6 does not stand in for the interface's IPv6 address (as in flanneld)", async () => {
    const error = await userError(
      findExternalInterface(dualHost, choice({ iface: ["eth1"], ipv6: true, publicIPv6: "fd31::9" })),
    );
    assert.match(
      error.message,
      /interface eth1 .* has no global IPv6 address \(--public-ipv6 fd31::9 does not replace it\)$/,
    );
  });

  it("the interface picked by the default route names that in the error", async () => {
    const v4Only = host({ addresses: [["eth0", "172.31.0.1", 16]], defaults: [[4, "eth0"]] });
    const error = await userError(findExternalInterface(v4Only, choice({ ipv6: true })));
    assert.match(error.message, /interface eth0 \(chosen by the default route\) has no global IPv6 address/);
  });

  it("IPv6-only without a default IPv6 route asks for --iface", async () => {
    const v4Only = host({ addresses: [["eth0", "172.31.0.1", 16]], defaults: [[4, "eth0"]] });
    const error = await userError(findExternalInterface(v4Only, choice({ ipv4: false, ipv6: true })));
    assert.equal(
      error.message,
      "no default IPv6 route to pick the external interface from (the network config is IPv6-only: EnableIPv4 false)",
    );
    assert.match(error.hint ?? "", /--iface/);
  });

  it("an IPv4 address given to --public-ipv6 is refused by name", async () => {
    const error = await userError(
      findExternalInterface(dualHost, choice({ iface: ["eth0"], ipv6: true, publicIPv6: "172.31.0.9" })),
    );
    assert.equal(error.message, "--public-ipv6 172.31.0.9 is not an IPv6 address");
  });
});
