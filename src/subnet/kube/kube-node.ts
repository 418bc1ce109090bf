/**
 * The few fields of a Node that weft keeps: name, resourceVersion, pod CIDRs and the annotations under our
 * prefix. Keeping only these (not whole Node objects with images and conditions) is what keeps weftd's
 * memory flat with thousands of nodes.
 */
export interface KubeNode {
  readonly name: string;
  readonly resourceVersion: string;
  /** spec.podCIDRs, or [spec.podCIDR] from an API that only fills that. */
  readonly podCIDRs: readonly string[];
  /** Only the annotations whose name starts with our prefix. */
  readonly annotations: Readonly<Record<string, string>>;
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

/** Reads a Node object from the API; undefined when it has no name (not a Node). */
export function toKubeNode(object: unknown, annotationPrefix: string): KubeNode | undefined {
  const metadata = record(record(object).metadata);
  const spec = record(record(object).spec);
  if (typeof metadata.name !== "string" || metadata.name === "") return undefined;
  const annotations: Record<string, string> = {};
  for (const [key, value] of Object.entries(record(metadata.annotations))) {
    if (key.startsWith(annotationPrefix) && typeof value === "string") annotations[key] = value;
  }
  let podCIDRs = Array.isArray(spec.podCIDRs)
    ? spec.podCIDRs.filter((c): c is string => typeof c === "string")
    : [];
  if (podCIDRs.length === 0 && typeof spec.podCIDR === "string" && spec.podCIDR !== "")
    podCIDRs = [spec.podCIDR];
  return {
    name: metadata.name,
    resourceVersion: typeof metadata.resourceVersion === "string" ? metadata.resourceVersion : "",
    podCIDRs,
    annotations,
  };
}
