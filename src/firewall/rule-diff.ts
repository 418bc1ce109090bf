/**
 * Compares the rules we want with what iptables-save shows and writes the iptables-restore input that
 * repairs the difference (nothing when they match). Pure, so it is tested on text.
 */
import { normalRule, sameRule } from "./iptables-rule-form.js";
import { type ChainRules, jumpRule } from "./traffic-rules.js";

/** The "-A CHAIN spec" lines of one table in iptables-save output, by chain. */
export function rulesByChain(saveOutput: string, table: string): Map<string, string[]> {
  const chains = new Map<string, string[]>();
  let inTable = false;
  for (const line of saveOutput.split("\n")) {
    if (line.startsWith("*")) inTable = line.slice(1).trim() === table;
    else if (inTable && line.startsWith(":")) {
      const name = line.slice(1).split(" ")[0]!;
      if (!chains.has(name)) chains.set(name, []);
    } else if (inTable && line.startsWith("-A ")) {
      const rest = line.slice(3);
      const space = rest.indexOf(" ");
      const chain = rest.slice(0, space);
      const list = chains.get(chain) ?? [];
      list.push(rest.slice(space + 1));
      chains.set(chain, list);
    }
  }
  return chains;
}

/**
 * The iptables-restore --noflush input that makes `want` true, or undefined if it already is.
 * Re-declaring our chain flushes it, so rules of an old subnet go too; stray rules with our comment in
 * the parent chain (older flanneld put masquerade rules there) are deleted.
 */
export function repairInput(saveOutput: string, want: ChainRules): string | undefined {
  const chains = rulesByChain(saveOutput, want.table);
  const ours = chains.get(want.chain);
  const parent = chains.get(want.parent) ?? [];
  const jump = jumpRule(want);
  // Compared in normal form: another iptables version may print the same rule another way.
  const marker = normalRule(`--comment "${want.comment}"`);
  const isJump = (spec: string) => sameRule(spec, jump);
  const strays = parent.filter((spec) => !isJump(spec) && normalRule(spec).split(" ; ").includes(marker));
  const jumps = parent.filter(isJump).length;
  const chainOk =
    ours !== undefined &&
    ours.length === want.rules.length &&
    ours.every((r, i) => sameRule(r, want.rules[i]!));
  if (chainOk && strays.length === 0 && jumps === 1) return undefined;

  const lines = [`*${want.table}`, `:${want.chain} - [0:0]`];
  for (const spec of strays) lines.push(`-D ${want.parent} ${spec}`);
  for (const spec of parent.filter(isJump).slice(1)) lines.push(`-D ${want.parent} ${spec}`);
  if (jumps === 0) lines.push(`-A ${want.parent} ${jump}`);
  for (const rule of want.rules) lines.push(`-A ${want.chain} ${rule}`);
  lines.push("COMMIT", "");
  return lines.join("\n");
}

/**
 * The iptables-restore --noflush input that deletes `chain` of `table` and every rule jumping to it, or
 * undefined when neither exists (a host that never ran in iptables mode is left untouched).
 */
export function removalInput(saveOutput: string, table: string, chain: string): string | undefined {
  const chains = rulesByChain(saveOutput, table);
  const jumpsTo = (spec: string) => {
    const words = spec.split(" ");
    return words.some((w, i) => (w === "-j" || w === "-g") && words[i + 1] === chain);
  };
  const lines = [`*${table}`];
  for (const [name, specs] of chains) {
    if (name === chain) continue;
    for (const spec of specs) if (jumpsTo(spec)) lines.push(`-D ${name} ${spec}`);
  }
  if (chains.has(chain)) lines.push(`-F ${chain}`, `-X ${chain}`);
  if (lines.length === 1) return undefined;
  lines.push("COMMIT", "");
  return lines.join("\n");
}
