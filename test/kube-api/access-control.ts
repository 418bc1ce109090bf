/**
 * Authentication (bearer tokens, client certificates signed by the server's CA) and RBAC-like authorization
 * with the real API's 401/403 Status messages. The "flannel" role grants exactly what the manifest's
 * ClusterRole grants: nodes get/list/watch and nodes/status patch.
 */
export interface PolicyRule {
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
}

export const ROLES: Readonly<Record<string, readonly PolicyRule[]>> = {
  admin: [{ apiGroups: ["*"], resources: ["*"], verbs: ["*"] }],
  flannel: [
    { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] },
    { apiGroups: [""], resources: ["nodes/status"], verbs: ["patch"] },
  ],
};

export interface User {
  readonly name: string;
  readonly role: string;
}

export interface Attributes {
  readonly verb: string;
  readonly group: string;
  readonly resource: string;
  readonly subresource: string;
  readonly namespace: string | undefined;
  readonly name: string | undefined;
}

function covers(list: readonly string[], value: string): boolean {
  return list.includes("*") || list.includes(value);
}

export function allowed(user: User, attrs: Attributes): boolean {
  const resource = attrs.subresource ? `${attrs.resource}/${attrs.subresource}` : attrs.resource;
  return (ROLES[user.role] ?? []).some(
    (rule) =>
      covers(rule.apiGroups, attrs.group) &&
      covers(rule.resources, resource) &&
      covers(rule.verbs, attrs.verb),
  );
}

/** The message kube-apiserver's forbidden handler writes. */
export function forbiddenMessage(user: User, attrs: Attributes): string {
  const resource = attrs.subresource ? `${attrs.resource}/${attrs.subresource}` : attrs.resource;
  const subject = attrs.name ? `${attrs.resource} "${attrs.name}"` : attrs.resource;
  const scope = attrs.namespace ? `in the namespace "${attrs.namespace}"` : "at the cluster scope";
  return `${subject} is forbidden: User "${user.name}" cannot ${attrs.verb} resource "${resource}" in API group "${attrs.group}" ${scope}`;
}
