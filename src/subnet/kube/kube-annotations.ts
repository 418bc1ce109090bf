/**
 * flannel's node annotation names under --kube-annotation-prefix (default flannel.alpha.coreos.com):
 * "<prefix>/backend-data" and so on. The prefix rules are flannel's: at most one "/", "/" appended when
 * there is none, "-" appended when it ends in neither "/" nor "-", and the result must look like
 * "fqdn/[name-]".
 */
import { describeValue } from "../../text/untrusted-text.js";
import { UserError } from "../../user-error.js";

export interface AnnotationNames {
  /** The common start of every name, e.g. "flannel.alpha.coreos.com/". */
  readonly prefix: string;
  readonly kubeSubnetManager: string;
  readonly backendData: string;
  readonly backendV6Data: string;
  readonly backendType: string;
  readonly publicIP: string;
  readonly publicIPv6: string;
  /** Set by the operator: the public IP this node should announce (like --public-ip). */
  readonly nodePublicIP: string;
  readonly nodePublicIPv6: string;
  /** Set by the operator: announced in public-ip instead of the address weft found. */
  readonly publicIPOverwrite: string;
  readonly publicIPv6Overwrite: string;
}

const PREFIX_FORM = /(?:[a-z0-9_-]+\.)+[a-z0-9_-]+\/(?:[a-z0-9_-]+-)?$/;
/**
 * An annotation key's prefix is a DNS subdomain (253) and its name at most 63, which our names must fit:
 * longer values cannot work, and PREFIX_FORM, unanchored as flannel's, takes quadratic time on them
 * (a 1 MB value ran for minutes).
 */
const PREFIX_MAX = 253 + 1 + 63;

export function annotationNames(flagValue: string): AnnotationNames {
  if (flagValue.length > PREFIX_MAX) {
    throw new UserError(
      `--kube-annotation-prefix ${describeValue(flagValue)} is too long: an annotation prefix has at most 253 characters`,
      "use a form like flannel.alpha.coreos.com",
    );
  }
  let prefix = flagValue;
  const slashes = prefix.split("/").length - 1;
  if (slashes > 1) {
    throw new UserError(
      `--kube-annotation-prefix ${describeValue(flagValue)} has more than one "/"`,
      "use a form like flannel.alpha.coreos.com",
    );
  }
  if (slashes === 0) prefix += "/";
  if (!prefix.endsWith("/") && !prefix.endsWith("-")) prefix += "-";
  if (!PREFIX_FORM.test(prefix)) {
    throw new UserError(
      `--kube-annotation-prefix ${describeValue(flagValue)} is not in the form fqdn/[0-9a-z-_]*`,
      "use a form like flannel.alpha.coreos.com or example.com/weft",
    );
  }
  return {
    prefix,
    kubeSubnetManager: `${prefix}kube-subnet-manager`,
    backendData: `${prefix}backend-data`,
    backendV6Data: `${prefix}backend-v6-data`,
    backendType: `${prefix}backend-type`,
    publicIP: `${prefix}public-ip`,
    publicIPv6: `${prefix}public-ipv6`,
    nodePublicIP: `${prefix}node-public-ip`,
    nodePublicIPv6: `${prefix}node-public-ipv6`,
    publicIPOverwrite: `${prefix}public-ip-overwrite`,
    publicIPv6Overwrite: `${prefix}public-ipv6-overwrite`,
  };
}
