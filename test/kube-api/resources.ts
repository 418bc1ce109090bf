/** The resource types this test API server serves, with what discovery says about them. */
import {
  GENERIC_SCHEMA,
  type MergeSchema,
  NODE_SCHEMA,
  POD_SCHEMA,
  TEMPLATE_SCHEMA,
} from "./strategic-merge-patch.js";

export interface ResourceType {
  /** "" for the core group. */
  readonly group: string;
  readonly version: string;
  readonly kind: string;
  /** The plural path segment, e.g. "nodes". */
  readonly plural: string;
  readonly singular: string;
  readonly namespaced: boolean;
  readonly shortNames: readonly string[];
  /** Has a /status subresource (status writes go there; the main resource ignores status). */
  readonly hasStatus: boolean;
  readonly mergeSchema: MergeSchema;
}

const VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

function type(
  group: string,
  kind: string,
  plural: string,
  namespaced: boolean,
  shortNames: string[],
  hasStatus: boolean,
  mergeSchema: MergeSchema = GENERIC_SCHEMA,
): ResourceType {
  return {
    group,
    version: "v1",
    kind,
    plural,
    singular: kind.toLowerCase(),
    namespaced,
    shortNames,
    hasStatus,
    mergeSchema,
  };
}

export const RESOURCE_TYPES: readonly ResourceType[] = [
  type("", "Namespace", "namespaces", false, ["ns"], true),
  type("", "Node", "nodes", false, ["no"], true, NODE_SCHEMA),
  type("", "Pod", "pods", true, ["po"], true, POD_SCHEMA),
  type("", "ServiceAccount", "serviceaccounts", true, ["sa"], false),
  type("", "ConfigMap", "configmaps", true, ["cm"], false),
  type("apps", "DaemonSet", "daemonsets", true, ["ds"], true, TEMPLATE_SCHEMA),
  type("rbac.authorization.k8s.io", "ClusterRole", "clusterroles", false, [], false),
  type("rbac.authorization.k8s.io", "ClusterRoleBinding", "clusterrolebindings", false, [], false),
];

export function apiVersionOf(t: ResourceType): string {
  return t.group === "" ? t.version : `${t.group}/${t.version}`;
}

export function findType(group: string, version: string, plural: string): ResourceType | undefined {
  return RESOURCE_TYPES.find((t) => t.group === group && t.version === version && t.plural === plural);
}

/** An APIResourceList, as GET /api/v1 or /apis/<group>/<version> returns it. */
export function resourceList(group: string, version: string): object | undefined {
  const types = RESOURCE_TYPES.filter((t) => t.group === group && t.version === version);
  if (types.length === 0) return undefined;
  const resources = types.flatMap((t) => {
    const main = {
      name: t.plural,
      singularName: t.singular,
      namespaced: t.namespaced,
      kind: t.kind,
      verbs: VERBS,
      ...(t.shortNames.length > 0 ? { shortNames: t.shortNames } : {}),
    };
    const status = {
      name: `${t.plural}/status`,
      singularName: "",
      namespaced: t.namespaced,
      kind: t.kind,
      verbs: ["get", "patch", "update"],
    };
    return t.hasStatus ? [main, status] : [main];
  });
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion: group === "" ? version : `${group}/${version}`,
    resources,
  };
}

/** The APIGroupList at /apis: every non-core group. */
export function groupList(): object {
  const names = [...new Set(RESOURCE_TYPES.filter((t) => t.group !== "").map((t) => t.group))];
  return {
    kind: "APIGroupList",
    apiVersion: "v1",
    groups: names.map((name) => {
      const v = { groupVersion: `${name}/v1`, version: "v1" };
      return { name, versions: [v], preferredVersion: v };
    }),
  };
}
