/**
 * charon's connections as a kind of managed state: one entry per peer (IKE connection with its CHILD
 * SA). put = load the peer's PSK, load the connection and initiate it (both hosts do: the one that
 * loads second succeeds, charon reuses an IKE SA that is up and uniqueids drops a duplicate);
 * remove = terminate the IKE SA and unload the connection. The actual entries are the ones charon lists
 * (get-conns) among those weft loaded, so a restarted charon, which has none, is refilled by the next
 * full run. No events: the reconciler's timer and retries repair.
 */
import type { KindShape, StateKind } from "../../reconcile/state-kind.js";
import { checkSuccess, type ViciClient } from "../../vici/vici-client.js";
import { IPSEC_CONN_KIND, type IpsecConnEntry } from "./ipsec-desired.js";
import {
  initiateMessage,
  loadConnMessage,
  loadSharedMessage,
  terminateMessage,
  unloadConnMessage,
} from "./ipsec-vici.js";

export const ipsecConnShape: KindShape<IpsecConnEntry> = {
  name: IPSEC_CONN_KIND,
  plural: "ipsec connections",
  key: (e) => e.name,
  same: (a, b) =>
    a.name === b.name && a.child === b.child && a.udpEncap === b.udpEncap && a.espProposal === b.espProposal,
  describe: (e) => `ipsec connection ${e.name}`,
};

/** The running charon's VICI connection; throws while charon is not up. */
export type CharonClient = () => Promise<ViciClient>;

export interface IpsecConnKind extends StateKind<IpsecConnEntry> {
  /**
   * Loads again every connection weft had loaded, into a charon just (re)started: the SAs come back at
   * once instead of at the next full run. One that fails is logged and left to the reconciler.
   */
  reload(client: ViciClient, warn: (message: string) => void): Promise<void>;
}

async function load(client: ViciClient, psk: string, entry: IpsecConnEntry): Promise<void> {
  checkSuccess("load-shared", await client.request("load-shared", loadSharedMessage(psk, entry.remoteAddr)));
  checkSuccess("load-conn", await client.request("load-conn", loadConnMessage(entry)));
  checkSuccess("initiate", await client.request("initiate", initiateMessage(entry)));
}

export function ipsecConnKind(charon: CharonClient, psk: string): IpsecConnKind {
  const loaded = new Map<string, IpsecConnEntry>();
  return {
    ...ipsecConnShape,
    layer: 1,
    owns() {
      return true;
    },
    async readActual() {
      const client = await charon();
      const { conns } = await client.request("get-conns");
      const names = new Set(Array.isArray(conns) ? (conns as readonly string[]) : []);
      // `loaded` stays as it is: reload() needs it after a restart, whichever comes first.
      return [...loaded.values()].filter((entry) => names.has(entry.name));
    },
    async put(entry) {
      await load(await charon(), psk, entry);
      loaded.set(entry.name, entry);
    },
    async remove(entry) {
      const client = await charon();
      // No IKE SA (never up, already gone) is fine: the connection is unloaded either way.
      await client.request("terminate", terminateMessage(entry));
      const answer = await client.request("unload-conn", unloadConnMessage(entry));
      loaded.delete(entry.name);
      if (answer.success !== "yes" && !String(answer.errmsg ?? "").includes("not found")) {
        checkSuccess("unload-conn", answer);
      }
    },
    async reload(client, warn) {
      for (const entry of loaded.values()) {
        await load(client, psk, entry).catch((error: Error) => warn(`${entry.name}: ${error.message}`));
      }
    },
  };
}
