/** The vxlan devices' MTU per family, from the interface's MTU or Backend.MTU (flannel HEAD's meaning). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { vxlanDeviceMtu } from "../../src/backend/vxlan/vxlan-config.js";
import { ConfigError } from "../../src/config/network-config.js";

const eth0 = { name: "eth0", mtu: 1500 };

describe("vxlan device MTU", () => {
  it("is the interface's MTU minus 50 over IPv4 and 70 over IPv6 (flanneld v0.20.2's 1450 and 1430)", () => {
    assert.equal(vxlanDeviceMtu(4, 0, eth0), 1450);
    assert.equal(vxlanDeviceMtu(6, 0, eth0), 1430);
    assert.equal(vxlanDeviceMtu(6, 0, { name: "jumbo", mtu: 9000 }), 8930);
  });

  it("takes Backend.MTU as the outgoing packets' MTU, as flannel HEAD does, so outer packets fit it", () => {
    assert.equal(vxlanDeviceMtu(4, 1400, eth0), 1350);
    assert.equal(vxlanDeviceMtu(6, 1400, eth0), 1330);
  });

  it("refuses an MTU that leaves IPv6 too little (the kernel turns IPv6 off below 1280), naming its source", () => {
    assert.throws(
      () => vxlanDeviceMtu(6, 1300, eth0),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message ===
          "invalid network config: Backend.MTU 1300 leaves the IPv6 vxlan device 1230 bytes, below the 1280 IPv6 needs; use an MTU of at least 1350",
    );
    assert.throws(
      () => vxlanDeviceMtu(4, 0, { name: "eth9", mtu: 100 }),
      /the MTU 100 of eth9 leaves the IPv4 vxlan device 50 bytes, below the 68 IPv4 needs/,
    );
    assert.equal(vxlanDeviceMtu(4, 1300, eth0), 1250, "IPv4 is fine with it");
  });
});
