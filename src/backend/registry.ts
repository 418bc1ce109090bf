/** Backends by the name used in the config's Backend.Type. Add a backend here. */
import type { RtNetlink } from "../netlink/index.js";
import { describeValue } from "../text/untrusted-text.js";
import { UserError } from "../user-error.js";
import type { Backend, BackendContext } from "./backend.js";
import { HostGwBackend } from "./host-gw/host-gw-backend.js";
import { VxlanBackend } from "./vxlan/vxlan-backend.js";

type BackendFactory = (context: BackendContext, netlink: RtNetlink) => Backend;

const BACKENDS = new Map<string, BackendFactory>([
  ["vxlan", (context, netlink) => new VxlanBackend(context, netlink)],
  ["host-gw", (context) => new HostGwBackend(context)],
]);

/** flannel's other backends: recognised, so the error can say they are not built yet. */
const NOT_YET = [
  "udp",
  "wireguard",
  "ipip",
  "ipsec",
  "alloc",
  "extension",
  "gce",
  "aws-vpc",
  "ali-vpc",
  "tencent-vpc",
];

export function createBackend(type: string, context: BackendContext, netlink: RtNetlink): Backend {
  const factory = BACKENDS.get(type.toLowerCase());
  if (factory) return factory(context, netlink);
  const known = [...BACKENDS.keys()].join(", ");
  if (NOT_YET.includes(type.toLowerCase())) {
    throw new UserError(
      `backend ${describeValue(type)} is not supported by weft yet`,
      `use one of: ${known}`,
    );
  }
  throw new UserError(`unknown backend type ${describeValue(type)} in Backend.Type`, `use one of: ${known}`);
}
