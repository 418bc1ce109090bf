/** Reading a backend's own keys from the config's Backend object, with errors that name the key. */

import { JsonFields } from "../config/json-fields.js";
import { ConfigError } from "../config/network-config.js";
import { describeValue } from "../text/untrusted-text.js";

export class BackendKeys {
  private readonly fields: JsonFields;

  constructor(
    private readonly type: string,
    backend: Readonly<Record<string, unknown>>,
  ) {
    this.fields = new JsonFields({ ...backend });
  }

  int(key: string, fallback: number, min: number, max: number): number {
    const value = this.fields.get(key);
    if (value === undefined) return fallback;
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      throw new ConfigError(
        `Backend.${key} of the ${this.type} backend must be a whole number from ${min} to ${max}, not ${JSON.stringify(value)}`,
      );
    }
    return value;
  }

  bool(key: string, fallback: boolean): boolean {
    const value = this.fields.get(key);
    if (value === undefined) return fallback;
    if (typeof value !== "boolean") {
      throw new ConfigError(
        `Backend.${key} of the ${this.type} backend must be true or false, not ${JSON.stringify(value)}`,
      );
    }
    return value;
  }

  /** A string key; absent or null is "" (Go's zero value). */
  string(key: string): string {
    const value = this.fields.get(key);
    if (value === undefined) return "";
    if (typeof value !== "string") {
      throw new ConfigError(
        `Backend.${key} of the ${this.type} backend must be a string, not ${describeValue(value)}`,
      );
    }
    return value;
  }
}
