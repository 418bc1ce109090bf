/**
 * Builds the Kubernetes subnet manager from weftd's flags and environment: the API connection, our node's
 * name (NODE_NAME, or POD_NAME/POD_NAMESPACE through the pod's spec.nodeName), the annotation names.
 * Loaded by the daemon only in kube mode.
 */
import { retryApi } from "../../kube/api-retry.js";
import { KubeClient } from "../../kube/kube-client.js";
import { resolveConnection } from "../../kube/kube-connection.js";
import { UserError } from "../../user-error.js";
import type { StoreContext } from "../registry.js";
import { annotationNames } from "./kube-annotations.js";
import { KubeSubnetManager } from "./kube-subnet-manager.js";

export interface KubeModeOptions {
  readonly apiUrl: string;
  readonly kubeconfigFile: string;
  readonly annotationPrefix: string;
  readonly netConfigPath: string;
  readonly setNodeNetworkUnavailable: boolean;
  readonly env: NodeJS.ProcessEnv;
  readonly log: (message: string) => void;
}

/** The registry's entry point: kube mode's flags. */
export function openKubeStore({ flags, env, log }: StoreContext): Promise<KubeSubnetManager> {
  return openKubeSubnetManager({
    apiUrl: flags.string("kube-api-url"),
    kubeconfigFile: flags.string("kubeconfig-file"),
    annotationPrefix: flags.string("kube-annotation-prefix"),
    netConfigPath: flags.string("net-config-path"),
    setNodeNetworkUnavailable: flags.bool("set-node-network-unavailable"),
    env,
    log,
  });
}

export async function openKubeSubnetManager(options: KubeModeOptions): Promise<KubeSubnetManager> {
  const names = annotationNames(options.annotationPrefix);
  const connection = await resolveConnection({
    apiUrl: options.apiUrl,
    kubeconfigFile: options.kubeconfigFile,
    env: options.env,
  });
  const client = new KubeClient(connection);
  try {
    const nodeName = await findNodeName(client, options.env, options.log);
    options.log(
      `using the Kubernetes API at ${connection.server} (${connection.source}) for node ${nodeName}`,
    );
    return new KubeSubnetManager(client, {
      nodeName,
      netConfigPath: options.netConfigPath,
      names,
      setNodeNetworkUnavailable: options.setNodeNetworkUnavailable,
      log: options.log,
    });
  } catch (err) {
    client.close();
    throw err;
  }
}

async function findNodeName(
  client: KubeClient,
  env: NodeJS.ProcessEnv,
  log: (message: string) => void,
): Promise<string> {
  if (env.NODE_NAME) return env.NODE_NAME;
  const pod = env.POD_NAME;
  const namespace = env.POD_NAMESPACE;
  if (!pod || !namespace) {
    throw new UserError(
      "cannot tell which node this is: NODE_NAME is not set, nor POD_NAME and POD_NAMESPACE",
      "set NODE_NAME from spec.nodeName in the DaemonSet (see deploy/kube-weft.yml)",
    );
  }
  const found = await retryApi<{ spec?: { nodeName?: string } }>(
    () =>
      client.request(
        "GET",
        `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}`,
      ),
    {
      what: `read pod ${namespace}/${pod} to find our node (or set NODE_NAME)`,
      log,
      notFoundHint: "POD_NAME and POD_NAMESPACE must name this pod; or set NODE_NAME from spec.nodeName",
    },
  );
  const nodeName = found.spec?.nodeName;
  if (!nodeName)
    throw new UserError(
      `pod ${namespace}/${pod} has no spec.nodeName`,
      "set NODE_NAME from spec.nodeName in the DaemonSet",
    );
  return nodeName;
}
