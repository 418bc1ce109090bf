/**
 * The flannel CNI plugin every test runs: what the package ships (its `flannel` bin, the executable
 * dist/cni/flannel that `npm run build:bin` compiles), so the runtime under test is the production one.
 * WEFT_CNI_PLUGIN=<path> tests another build, e.g. the Node bundle dist/cni/flannel.cjs.
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { repoRoot } from "./reference.js";

function shippedPlugin(): string {
  const override = process.env["WEFT_CNI_PLUGIN"];
  if (override) return resolve(override);
  const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
    bin?: Record<string, string>;
  };
  const bin = pkg.bin?.["flannel"];
  if (!bin) throw new Error("package.json has no `flannel` bin");
  return join(repoRoot, bin);
}

export const pluginPath = shippedPlugin();

/** Whether `path` is a JavaScript build (run by this test's own runtime) rather than an executable. */
export function isScriptPlugin(path: string): boolean {
  return /\.[cm]?js$/.test(path);
}

/** The argv that runs `path` as a runtime would: the executable itself, a script through node (or bun). */
export function pluginArgv(path = pluginPath): string[] {
  return isScriptPlugin(path) ? [process.execPath, path] : [path];
}
