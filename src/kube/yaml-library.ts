/**
 * The YAML library kubeconfig files are read with (npm "yaml"). The build bundles it into this one file
 * (npm run build:yaml), so weftd ships without node_modules; src/kube/kubeconfig.ts imports it only when
 * --kubeconfig-file is given, so no other start pays for loading it.
 */
export { LineCounter, parseDocument } from "yaml";
