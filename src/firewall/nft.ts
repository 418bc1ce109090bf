/**
 * EnableNFTables: keeps flanneld's tables flannel-ipv4 / flannel-ipv6 through the nft command. A check
 * reads one table as JSON and compares it with the model; a repair replaces the whole table in one
 * transaction, so a packet never sees half a rule set.
 */
import type { IPFamily } from "../ip/ip-address.js";
import type { Firewall, WantedRules } from "./firewall.js";
import {
  deleteTablesScript,
  NFT_FAMILIES,
  NFT_TABLES,
  type NftTable,
  parseNftTable,
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

export const nftablesFirewall: Firewall = {
  mode: "nftables",
  families() {
    return [4, 6];
  },
  async ensure(family: IPFamily, want: WantedRules) {
    const table = wantedTable(family, want);
    if (sameTable(table, await readNftTable(family))) return 0;
    await nft(["-f", "-"], replaceTableScript(table));
    return 1;
  },
  async removeAll() {
    try {
      await nft(["-f", "-"], deleteTablesScript([4, 6]));
    } catch (err) {
      // Without nft nothing can have written flannel's tables.
      if (!isNotInstalled(err)) throw err;
    }
  },
};
