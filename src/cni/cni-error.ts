/**
 * CNI errors: the JSON a plugin prints on stdout before exiting non-zero (SPEC "Error").
 * The codes and the 4-space indentation are those of the Go library upstream flannel is built on.
 */
import { boundText } from "../text/untrusted-text.js";
import { goJson } from "./go-json.js";

export const ErrorCode = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnvironment: 4,
  ioFailure: 5,
  decodingFailure: 6,
  invalidNetworkConfig: 7,
  invalidNetns: 8,
  tryAgainLater: 11,
  pluginNotAvailable: 50,
  internal: 999,
} as const;

export class CniError extends Error {
  readonly code: number;
  readonly details: string;

  constructor(code: number, msg: string, details = "") {
    super(msg);
    this.name = "CniError";
    this.code = code;
    this.details = details;
  }
}

/** Any thrown value as a CNI error; plain errors become code 999 like upstream's ErrInternal. */
export function asCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof Error) return new CniError(ErrorCode.internal, err.message);
  return new CniError(ErrorCode.internal, String(err));
}

/**
 * How much of msg and of details a runtime gets. Runtimes log both (decoded); every value in them came
 * from a config, an environment or a delegate, so they are bounded and their control characters escaped
 * here, whatever built them: the plugin's last line of defence, as the daemon's logger is weftd's.
 */
export const CNI_TEXT_MAX = 900;

/** The error exactly as upstream prints it: fields in struct order, details omitted when empty. */
export function formatCniError(err: CniError): string {
  const fields = new Map<string, unknown>([
    ["code", err.code],
    ["msg", boundText(err.message, CNI_TEXT_MAX)],
  ]);
  if (err.details !== "") fields.set("details", boundText(err.details, CNI_TEXT_MAX));
  return goJson(fields, "    ");
}
