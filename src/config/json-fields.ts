/**
 * Go's encoding/json matches object keys to struct fields case-insensitively, and flannel users rely on
 * that ("network", "subnetLen"...). When two keys fold to the same field, the later one wins, as in Go.
 */
export class JsonFields {
  private readonly byLowerName = new Map<string, unknown>();

  constructor(object: Record<string, unknown>) {
    for (const [key, value] of Object.entries(object)) this.byLowerName.set(key.toLowerCase(), value);
  }

  /** The value of `name`, or undefined when absent or null (Go leaves the field at its zero value). */
  get(name: string): unknown {
    return this.byLowerName.get(name.toLowerCase()) ?? undefined;
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
