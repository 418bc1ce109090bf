/** Writes kubeconfig files (YAML, as kubectl writes them) for the test API server's users. */
import { writeFileSync } from "node:fs";

export interface KubeconfigUser {
  readonly token?: string;
  readonly clientCertificate?: string;
  readonly clientKey?: string;
}

export function kubeconfigText(server: string, caFile: string, user: KubeconfigUser): string {
  const userLines = user.token
    ? [`    token: ${user.token}`]
    : [`    client-certificate: ${user.clientCertificate}`, `    client-key: ${user.clientKey}`];
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- cluster:",
    `    certificate-authority: ${caFile}`,
    `    server: ${server}`,
    "  name: weft-test",
    "contexts:",
    "- context:",
    "    cluster: weft-test",
    "    user: weft-test-user",
    "  name: weft-test",
    "current-context: weft-test",
    "preferences: {}",
    "users:",
    "- name: weft-test-user",
    "  user:",
    ...userLines,
    "",
  ].join("\n");
}

export function writeKubeconfig(path: string, server: string, caFile: string, user: KubeconfigUser): string {
  writeFileSync(path, kubeconfigText(server, caFile, user), { mode: 0o600 });
  return path;
}
