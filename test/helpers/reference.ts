/**
 * The one way tests reach the flannel reference observations: the repo's own copy in test/fixtures/reference/
 * (a plain clone must pass its tests), read into sections by their "### " headings.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repo root, from dist/test/helpers/ (compiled) or test/helpers/ (source). */
export const repoRoot = resolve(
  dirname(fileURLToPath(import.meta.url)),
  import.meta.url.includes("/dist/") ? "../../.." : "../..",
);

export const referenceDir = resolve(repoRoot, "test/fixtures/reference");

/** A folder or file inside the reference, e.g. referencePath("flannel-cni-v1.9.1"). */
export function referencePath(...parts: string[]): string {
  return resolve(referenceDir, ...parts);
}

export function referenceFiles(folder: string): string[] {
  return readdirSync(resolve(referenceDir, folder))
    .filter((f) => f.endsWith(".txt"))
    .sort();
}

/** Sections of one reference file: heading (without "### ") -> body text (lines joined with \n). */
export function readReference(folder: string, file: string): Map<string, string> {
  const text = readFileSync(resolve(referenceDir, folder, file), "utf8");
  const sections = new Map<string, string>();
  let heading: string | undefined;
  let body: string[] = [];
  const flush = () => {
    if (heading !== undefined) sections.set(heading, body.join("\n"));
  };
  for (const line of text.split("\n")) {
    if (line.startsWith("### ")) {
      flush();
      heading = line.slice(4).trim();
      body = [];
    } else body.push(line);
  }
  flush();
  for (const [key, value] of sections) sections.set(key, value.replace(/\n+$/, ""));
  return sections;
}

/** The section whose heading starts with `prefix` (headings carry details in parentheses). */
export function section(sections: Map<string, string>, prefix: string): string {
  for (const [heading, body] of sections) if (heading.startsWith(prefix)) return body;
  throw new Error(`reference has no section starting with "${prefix}"`);
}

/** etcd keys and values: alternating lines key, value. */
export function etcdPairs(body: string): Array<{ key: string; value: string }> {
  const lines = body.split("\n").filter((l) => l !== "");
  const pairs: Array<{ key: string; value: string }> = [];
  for (let i = 0; i + 1 < lines.length; i += 2) pairs.push({ key: lines[i]!, value: lines[i + 1]! });
  return pairs;
}
