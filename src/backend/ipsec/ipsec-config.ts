/**
 * The ipsec backend's keys in Backend{...}, as flannel reads them: PSK (required, at least 96
 * characters), UDPEncap (false), ESPProposal (aes128gcm16-sha256-prfsha256-ecp256). The proposal is
 * checked word by word against strongSwan's algorithm keywords, so a typo is a config error naming the
 * key instead of a connection charon refuses later for every peer.
 */
import { ConfigError } from "../../config/network-config.js";
import { BackendKeys } from "../backend-keys.js";

export const DEFAULT_ESP_PROPOSAL = "aes128gcm16-sha256-prfsha256-ecp256";
export const MIN_PSK_LENGTH = 96;

export interface IpsecConfig {
  readonly psk: string;
  readonly udpEncap: boolean;
  readonly espProposal: string;
}

// strongSwan's proposal keywords for ESP (docs: IKEv2 cipher suites), without the key-size variants
// spelled out below.
const FIXED_WORDS = new Set([
  "3des",
  "cast128",
  "blowfish128",
  "blowfish192",
  "blowfish256",
  "null",
  "chacha20poly1305",
  "md5",
  "md5_128",
  "sha1",
  "sha1_160",
  "sha256",
  "sha256_96",
  "sha2_256",
  "sha384",
  "sha2_384",
  "sha512",
  "sha2_512",
  "aesxcbc",
  "aescmac",
  "aes128gmac",
  "aes192gmac",
  "aes256gmac",
  "prfmd5",
  "prfsha1",
  "prfsha256",
  "prfsha384",
  "prfsha512",
  "prfaesxcbc",
  "prfaescmac",
  "modp768",
  "modp1024",
  "modp1536",
  "modp2048",
  "modp3072",
  "modp4096",
  "modp6144",
  "modp8192",
  "modp1024s160",
  "modp2048s224",
  "modp2048s256",
  "ecp192",
  "ecp224",
  "ecp256",
  "ecp384",
  "ecp521",
  "ecp224bp",
  "ecp256bp",
  "ecp384bp",
  "ecp512bp",
  "curve25519",
  "x25519",
  "curve448",
  "x448",
  "esn",
  "noesn",
  "none",
]);
// aes128, aes256ctr, aes128gcm16, aes192ccm12, camellia256ctr, aes256gcm128 ...
const SIZED_WORD = /^(aes|camellia)(128|192|256)(ctr|gcm(8|12|16|64|96|128)|ccm(8|12|16|64|96|128))?$/;

/** The first word of `proposal` strongSwan would not know, or undefined when all are known. */
export function unknownProposalWord(proposal: string): string | undefined {
  const words = proposal.split("-");
  return words.find((w) => !(FIXED_WORDS.has(w) || SIZED_WORD.test(w)));
}

export function parseIpsecConfig(backend: Readonly<Record<string, unknown>>): IpsecConfig {
  const keys = new BackendKeys("ipsec", backend);
  const psk = keys.string("PSK");
  if (psk.length < MIN_PSK_LENGTH) {
    throw new ConfigError(
      `Backend.PSK of the ipsec backend must be at least ${MIN_PSK_LENGTH} characters (flannel's rule), not ${psk.length === 0 ? "missing" : `${psk.length} characters`}: generate one, e.g. with \`openssl rand -hex 48\``,
    );
  }
  const espProposal = keys.string("ESPProposal") || DEFAULT_ESP_PROPOSAL;
  const unknown = unknownProposalWord(espProposal);
  if (unknown !== undefined) {
    throw new ConfigError(
      `Backend.ESPProposal of the ipsec backend is not a strongSwan ESP proposal: ${JSON.stringify(unknown)} in ${JSON.stringify(espProposal)} is no algorithm keyword (the default is ${DEFAULT_ESP_PROPOSAL})`,
    );
  }
  return { psk, udpEncap: keys.bool("UDPEncap", false), espProposal };
}

/**
 * flannel's MTU: the interface's minus 77 bytes of ESP in tunnel mode (new IP header, SPI, sequence, IV,
 * pad, trailer, ICV), minus 8 more with UDP encapsulation.
 */
export function ipsecMtu(extMtu: number, udpEncap: boolean): number {
  return extMtu - 77 - (udpEncap ? 8 : 0);
}
