/** weft's version: defined at build time in the Bun executables, read from package.json when run from dist/. */
import { readFileSync } from "node:fs";

declare const WEFT_VERSION: string | undefined;

export function weftVersion(): string {
  if (typeof WEFT_VERSION === "string") return WEFT_VERSION;
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}
