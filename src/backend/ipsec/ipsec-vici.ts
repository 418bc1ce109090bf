/**
 * The VICI messages weft sends charon (pure), with flannel's IKE and CHILD SA parameters: IKEv2,
 * proposal aes256-sha256-modp4096, keyingtries 0 (retry for ever), PSK both ways; the child in tunnel
 * mode with the configured ESP proposal, rekey 1 h, dpd restart, close trap. Unlike flanneld, which puts
 * XFRM policies in itself (install_policy = no), weft lets charon install the policies for each child
 * (it removes them with the child), so the policy and the SA always come and go together.
 */
import type { ViciSection } from "../../vici/vici-message.js";
import type { IpsecConnEntry } from "./ipsec-desired.js";

export const IKE_PROPOSAL = "aes256-sha256-modp4096";

/** The PSK for one host's address; `id` makes a reload replace the key instead of adding another. */
export function loadSharedMessage(psk: string, owner: string): ViciSection {
  return { id: `weft-psk-${owner}`, type: "IKE", data: psk, owners: [owner] };
}

export function loadConnMessage(conn: IpsecConnEntry): ViciSection {
  return {
    [conn.name]: {
      local_addrs: [conn.localAddr],
      remote_addrs: [conn.remoteAddr],
      proposals: [IKE_PROPOSAL],
      version: "2",
      keyingtries: "0",
      encap: conn.udpEncap ? "yes" : "no",
      local: { auth: "psk" },
      remote: { auth: "psk" },
      children: {
        [conn.child]: {
          local_ts: [conn.localTs],
          remote_ts: [conn.remoteTs],
          esp_proposals: [conn.espProposal],
          // weft sends initiate itself after load-conn, so it learns whether charon took it.
          start_action: "none",
          close_action: "trap",
          dpd_action: "restart",
          mode: "tunnel",
          rekey_time: "1h",
        },
      },
    },
  };
}

/** Returns at once (timeout -1); charon keeps trying (keyingtries 0). */
export function initiateMessage(conn: IpsecConnEntry): ViciSection {
  return { child: conn.child, ike: conn.name, timeout: "-1" };
}

export function terminateMessage(conn: IpsecConnEntry): ViciSection {
  return { ike: conn.name, timeout: "-1" };
}

export function unloadConnMessage(conn: IpsecConnEntry): ViciSection {
  return { name: conn.name };
}

/** One IKE SA from a list-sa event: its connection name, state and children's states. */
export interface ListedIkeSa {
  readonly name: string;
  readonly state: string;
  /** CHILD SAs; `encap`: ESP in UDP (forced by UDPEncap, or NAT found). */
  readonly children: readonly { readonly name: string; readonly state: string; readonly encap: boolean }[];
}

export function readListSaEvent(event: ViciSection): ListedIkeSa[] {
  const found: ListedIkeSa[] = [];
  for (const [name, value] of Object.entries(event)) {
    if (typeof value !== "object" || Array.isArray(value)) continue;
    const sa = value as ViciSection;
    const children: { name: string; state: string; encap: boolean }[] = [];
    const childSas = sa["child-sas"];
    if (childSas && typeof childSas === "object" && !Array.isArray(childSas)) {
      for (const child of Object.values(childSas as ViciSection)) {
        if (typeof child !== "object" || Array.isArray(child)) continue;
        const c = child as ViciSection;
        children.push({ name: String(c.name ?? ""), state: String(c.state ?? ""), encap: c.encap === "yes" });
      }
    }
    found.push({ name, state: String(sa.state ?? ""), children });
  }
  return found;
}
