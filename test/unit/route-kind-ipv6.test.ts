/** The route kind's put when IPv6 refuses to replace a route whose own gateway check it blocks. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { errnoNumber } from "../../src/netlink/errors.js";
import { NetlinkError, type RouteSpec, type RtNetlink } from "../../src/netlink/index.js";
import { LinkNames } from "../../src/reconcile/kinds/link-names.js";
import { type RouteEntry, routeKind } from "../../src/reconcile/kinds/route-kind.js";

/** A netlink that fails the first route replace with `errno` and records every route call. */
async function kindWithFirstReplaceFailing(code: string) {
  const calls: string[] = [];
  let failNext = true;
  const netlink = {
    linkList: async () => [{ index: 7, name: "flannel-v6.1" }],
    routeReplace: async (spec: RouteSpec) => {
      calls.push(`replace ${spec.dst} via ${spec.gateway} oif ${spec.oif} onlink ${spec.onlink}`);
      if (failNext) {
        failNext = false;
        throw new NetlinkError(
          errnoNumber(code),
          "route replace",
          "Nexthop has invalid gateway or device mismatch",
        );
      }
    },
    routeDel: async (spec: RouteSpec) => {
      calls.push(`del ${spec.dst} metric ${spec.priority} oif ${spec.oif} via ${spec.gateway}`);
    },
  } as unknown as RtNetlink;
  const links = new LinkNames(netlink);
  await links.refresh();
  return { kind: routeKind(netlink, links), calls };
}

const vxlanV6: RouteEntry = {
  dst: "fd44:0:0:58::/64",
  gateway: "fd44:0:0:58::",
  dev: "flannel-v6.1",
  onlink: true,
};

describe("route kind: an IPv6 onlink route replacing a route that sends its gateway elsewhere", () => {
  it("removes the route at that destination (the one the replace overwrites), then writes ours", async () => {
    const { kind, calls } = await kindWithFirstReplaceFailing("EINVAL");
    await kind.put(vxlanV6);
    assert.deepEqual(calls, [
      "replace fd44:0:0:58::/64 via fd44:0:0:58:: oif 7 onlink true",
      "del fd44:0:0:58::/64 metric 1024 oif undefined via undefined",
      "replace fd44:0:0:58::/64 via fd44:0:0:58:: oif 7 onlink true",
    ]);
  });

  it("leaves every other failure to the reconciler (IPv4, not onlink, another errno)", async () => {
    for (const [entry, code] of [
      [{ ...vxlanV6, dst: "10.244.5.0/24", gateway: "10.244.5.0" }, "EINVAL"],
      [{ ...vxlanV6, onlink: false }, "EINVAL"],
      [vxlanV6, "ENETUNREACH"],
    ] as const) {
      const { kind, calls } = await kindWithFirstReplaceFailing(code);
      await assert.rejects(
        kind.put(entry),
        (err: unknown) => err instanceof NetlinkError && err.code === code,
      );
      assert.equal(calls.length, 1, `${entry.dst} ${code}: ${calls}`);
    }
  });
});
