/**
 * The two native addons (build/Release, built by node-gyp). `bun build --compile` embeds a .node file in
 * the executable only when it is required by a literal path, and Node's ES modules have no `require`,
 * so each loader names its path literally for both (paths from dist/src/runtime/).
 */
import { createRequire } from "node:module";

export function loadNetlinkNative(): unknown {
  return typeof require === "function"
    ? require("../../../build/Release/weft_netlink.node")
    : createRequire(import.meta.url)("../../../build/Release/weft_netlink.node");
}

export function loadTunNative(): unknown {
  return typeof require === "function"
    ? require("../../../build/Release/weft_tun.node")
    : createRequire(import.meta.url)("../../../build/Release/weft_tun.node");
}
