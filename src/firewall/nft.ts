/**
 * EnableNFTables: keeps flanneld's tables flannel-ipv4 / flannel-ipv6 through the nft command. A check
 * reads one table as JSON and compares it with the model; a repair replaces the whole table in one
 * transaction, so a packet never sees half a rule set.
 */
import type { IPFamily } from "../ip/ip-address.js";
import type { Firewall, WantedRules } from "./firewall.js";
import {
  deleteTablesScript,
  FULLY_RANDOM_PROBE,
  NFT_FAMILIES,
  NFT_TABLES,
  type NftTable,
  parseNftTable,
  presentTables,
  replaceTableScript,
  sameTable,
  wantedTable,
} from "./nft-rules.js";
import { CommandFailed, isNotInstalled, runCommand } from "./run-command.js";

const nft = (args: string[], input?: string) => runCommand("nft", args, "nftables", input);

/** The table as the kernel has it; undefined when it does not exist. */
export async function readNftTable(family: IPFamily): Promise<NftTable | undefined> {
  const [fam, name] = [NFT_FAMILIES[family], NFT_TABLES[family]];
  let json: string;
  try {
    json = await nft(["-j", "list", "table", fam, name]);
  } catch (err) {
    if (err instanceof CommandFailed && /No such file or directory/.test(err.stderr)) return undefined;
    throw err;
  }
  return parseNftTable(json, fam, name);
}

let fullyRandom: boolean | undefined;

/** Without kernel support for fully-random, flannel masquerades plainly; so does weft. Asked once. */
async function withKernelSupport(want: WantedRules): Promise<WantedRules> {
  if (!want.randomFully) return want;
  if (fullyRandom === undefined) {
    try {
      await nft(["-c", "-f", "-"], FULLY_RANDOM_PROBE);
      fullyRandom = true;
    } catch (err) {
      if (!(err instanceof CommandFailed)) throw err;
      fullyRandom = false;
    }
  }
  return fullyRandom ? want : { ...want, randomFully: false };
}

export const nftablesFirewall: Firewall = {
  mode: "nftables",
  families() {
    return [4, 6];
  },
  async ensure(family: IPFamily, want: WantedRules) {
    const table = wantedTable(family, await withKernelSupport(want));
    if (sameTable(table, await readNftTable(family))) return 0;
    await nft(["-f", "-"], replaceTableScript(table));
    return 1;
  },
  async removeAll() {
    let listed: string;
    try {
      listed = await nft(["-j", "list", "tables"]);
    } catch (err) {
      // Without a working nft (not installed, no nf_tables) nothing can have written flannel's tables.
      if (isNotInstalled(err) || err instanceof CommandFailed) return;
      throw err;
    }
    const present = presentTables(listed);
    if (present.length > 0) await nft(["-f", "-"], deleteTablesScript(present));
  },
};
