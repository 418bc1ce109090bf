/**
 * Signing AWS requests with Signature Version 4 through @smithy/signature-v4 (the AWS SDK's own signer),
 * imported only when the aws-vpc backend runs, so no other backend pays for it. SHA-256 and HMAC come
 * from node:crypto.
 */
import { createHash, createHmac, type Hash, type Hmac } from "node:crypto";

export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string | undefined;
  /** When temporary credentials (an instance role's) stop working. */
  readonly expiration?: Date | undefined;
}

export interface SignableRequest {
  readonly method: string;
  /** "https:" or "http:". */
  readonly protocol: string;
  readonly hostname: string;
  readonly port?: number | undefined;
  readonly path: string;
  readonly query?: Readonly<Record<string, string>>;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string | undefined;
}

/** node:crypto in the shape of the signer's Checksum (update, digest, reset). */
class NodeSha256 {
  private hash: Hash | Hmac;

  constructor(private readonly secret?: string | Uint8Array | ArrayBuffer | ArrayBufferView) {
    this.hash = this.fresh();
  }

  private fresh(): Hash | Hmac {
    if (this.secret === undefined) return createHash("sha256");
    const key =
      typeof this.secret === "string"
        ? this.secret
        : ArrayBuffer.isView(this.secret)
          ? new Uint8Array(this.secret.buffer, this.secret.byteOffset, this.secret.byteLength)
          : new Uint8Array(this.secret);
    return createHmac("sha256", key);
  }

  update(data: string | Uint8Array): void {
    this.hash.update(data);
  }

  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }

  reset(): void {
    this.hash = this.fresh();
  }
}

/** The request with Authorization, X-Amz-Date (and X-Amz-Security-Token) headers added. */
export async function signRequest(
  request: SignableRequest,
  credentials: AwsCredentials,
  region: string,
  service: string,
  signingDate: Date = new Date(),
): Promise<Record<string, string>> {
  const { SignatureV4 } = await import("@smithy/signature-v4");
  const signer = new SignatureV4({
    credentials: {
      accessKeyId: credentials.accessKeyId,
      secretAccessKey: credentials.secretAccessKey,
      ...(credentials.sessionToken ? { sessionToken: credentials.sessionToken } : {}),
    },
    region,
    service,
    sha256: NodeSha256,
    // The Query API takes the body hash inside the signature; no x-amz-content-sha256 header.
    applyChecksum: false,
  });
  const signed = await signer.sign(
    {
      method: request.method,
      protocol: request.protocol,
      hostname: request.hostname,
      ...(request.port !== undefined ? { port: request.port } : {}),
      path: request.path,
      query: { ...request.query },
      headers: { ...request.headers },
      body: request.body,
    },
    { signingDate },
  );
  return { ...(signed.headers as Record<string, string>) };
}
