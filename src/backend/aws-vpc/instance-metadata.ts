/**
 * The EC2 instance metadata service (IMDS): IMDSv2 first (a session token from PUT /latest/api/token,
 * sent as X-aws-ec2-metadata-token), IMDSv1 (plain GETs) if the token call is not answered with a
 * token. AWS_EC2_METADATA_SERVICE_ENDPOINT points it elsewhere, as the AWS SDKs and CLI honour.
 */

import { type HttpAnswer, type HttpCallOptions, httpCall } from "../../http/http-call.js";
import { UserError } from "../../user-error.js";

export const DEFAULT_IMDS_ENDPOINT = "http://169.254.169.254";
const TOKEN_TTL_SECONDS = 21600;

export type HttpCaller = (url: URL, options: HttpCallOptions) => Promise<HttpAnswer>;

export class InstanceMetadata {
  private token: { value: string; until: number } | undefined;
  private v1 = false;

  constructor(
    private readonly endpoint: string = DEFAULT_IMDS_ENDPOINT,
    private readonly call: HttpCaller = httpCall,
    private readonly timeoutMs = 2000,
  ) {
    this.endpoint = endpoint.replace(/\/+$/, "");
  }

  private async sessionToken(): Promise<string | undefined> {
    if (this.v1) return undefined;
    if (this.token && this.token.until > Date.now()) return this.token.value;
    const response = await this.call(new URL(`${this.endpoint}/latest/api/token`), {
      method: "PUT",
      headers: { "X-aws-ec2-metadata-token-ttl-seconds": String(TOKEN_TTL_SECONDS) },
      timeoutMs: this.timeoutMs,
    });
    // 403: IMDSv2 disabled; 404/405: a v1-only service. 5xx is passing: let the caller retry.
    if (response.status >= 500) throw new Error(`instance metadata token: HTTP ${response.status}`);
    if (response.status !== 200) {
      this.v1 = true;
      return undefined;
    }
    const value = response.body.trim();
    this.token = { value, until: Date.now() + (TOKEN_TTL_SECONDS - 60) * 1000 };
    return value;
  }

  /** GET /latest/<path>; undefined for 404 (the item does not exist). */
  async get(path: string): Promise<string | undefined> {
    const token = await this.sessionToken();
    const response = await this.call(new URL(`${this.endpoint}/latest/${path}`), {
      headers: token ? { "X-aws-ec2-metadata-token": token } : {},
      timeoutMs: this.timeoutMs,
    });
    if (response.status === 401 && token) {
      // The token expired early (the service restarted): fetch a new one next time.
      this.token = undefined;
      throw new Error(`instance metadata ${path}: HTTP 401 (session token refused)`);
    }
    if (response.status === 404) return undefined;
    if (response.status !== 200) throw new Error(`instance metadata ${path}: HTTP ${response.status}`);
    return response.body.trim();
  }

  async require(path: string): Promise<string> {
    const value = await this.get(path);
    if (!value) {
      throw new UserError(
        `the instance metadata service at ${this.endpoint} has no ${path}`,
        "weftd with the aws-vpc backend must run on an EC2 instance (or set AWS_EC2_METADATA_SERVICE_ENDPOINT)",
      );
    }
    return value;
  }
}

/** What the backend needs to know about the instance it runs on. */
export interface InstanceIdentity {
  readonly instanceId: string;
  readonly availabilityZone: string;
  readonly region: string;
  readonly subnetId: string | undefined;
  readonly vpcId: string | undefined;
}

/** The region of an availability zone: "eu-west-1b" -> "eu-west-1" (and "us-east-1-bos-1a" local zones). */
export function regionOfZone(zone: string): string {
  const local = /^([a-z]{2}(?:-gov)?-[a-z]+-\d+)-/.exec(zone);
  if (local) return local[1]!;
  return zone.replace(/[a-z]$/, "");
}

export async function readIdentity(
  imds: InstanceMetadata,
  env: NodeJS.ProcessEnv,
): Promise<InstanceIdentity> {
  const instanceId = await imds.require("meta-data/instance-id");
  const availabilityZone = await imds.require("meta-data/placement/availability-zone");
  const mac = await imds.get("meta-data/mac");
  const subnetId = mac ? await imds.get(`meta-data/network/interfaces/macs/${mac}/subnet-id`) : undefined;
  const vpcId = mac ? await imds.get(`meta-data/network/interfaces/macs/${mac}/vpc-id`) : undefined;
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || regionOfZone(availabilityZone);
  return { instanceId, availabilityZone, region, subnetId, vpcId };
}
