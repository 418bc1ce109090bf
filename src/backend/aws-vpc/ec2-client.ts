/**
 * The EC2 Query API calls the aws-vpc backend makes: SigV4-signed form POSTs to the region's endpoint
 * (or AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL). Throttling, 5xx and connection errors are retried a few
 * times with the shared backoff; what is left is thrown (the reconciler retries its run), operators'
 * problems as one clear UserError.
 */

import { type HttpAnswer, httpCall } from "../../http/http-call.js";
import { retry } from "../../retry/backoff.js";
import { describeError } from "../../user-error.js";
import { Ec2ApiError, explainEc2Error, isTransient } from "./aws-errors.js";
import type { AwsCredentials } from "./aws-sigv4.js";
import { signRequest } from "./aws-sigv4.js";
import {
  type Ec2Filter,
  type Ec2Params,
  filterParams,
  listParams,
  queryBody,
  routeParams,
} from "./ec2-query.js";
import {
  type Ec2Instance,
  type Ec2RouteTable,
  parseEc2Error,
  parseInstances,
  parseReturn,
  parseRouteTables,
} from "./ec2-xml.js";

export interface Ec2ClientOptions {
  readonly region: string;
  readonly endpoint: string;
  readonly credentials: () => Promise<AwsCredentials>;
  readonly log?: (message: string) => void;
  /** Attempts per call for transient errors (default 4). */
  readonly attempts?: number;
  readonly backoff?: { minMs: number; maxMs: number };
  readonly timeoutMs?: number;
}

export function ec2Endpoint(region: string, env: NodeJS.ProcessEnv): string {
  // The China regions live under their own domain.
  const domain = region.startsWith("cn-") ? "amazonaws.com.cn" : "amazonaws.com";
  return env.AWS_ENDPOINT_URL_EC2 || env.AWS_ENDPOINT_URL || `https://ec2.${region}.${domain}`;
}

export class Ec2Client {
  private readonly url: URL;

  constructor(private readonly options: Ec2ClientOptions) {
    this.url = new URL(options.endpoint);
  }

  get endpoint(): string {
    return this.url.toString();
  }

  /** One call, retried while it fails transiently; the response body on success. */
  async call(action: string, params: Ec2Params): Promise<string> {
    let lastLogged = "";
    try {
      return await retry(() => this.once(action, params), {
        backoff: this.options.backoff ?? { minMs: 200, maxMs: 5000 },
        attempts: this.options.attempts ?? 4,
        isFatal: (err) => !isTransient(err),
        onFailure: (err, delay) => {
          const text = describeError(err);
          if (text !== lastLogged) this.options.log?.(`EC2 ${action}: ${text}; retrying in ${delay} ms`);
          lastLogged = text;
        },
      });
    } catch (err) {
      throw explainEc2Error(err);
    }
  }

  private async once(action: string, params: Ec2Params): Promise<string> {
    const body = queryBody(action, params);
    const url = this.url;
    const path = url.pathname || "/";
    const headers = await signRequest(
      {
        method: "POST",
        protocol: url.protocol,
        hostname: url.hostname,
        port: url.port ? Number(url.port) : undefined,
        path,
        headers: {
          host: url.host,
          "content-type": "application/x-www-form-urlencoded; charset=utf-8",
        },
        body,
      },
      await this.options.credentials(),
      this.options.region,
      "ec2",
    );
    let answer: HttpAnswer;
    try {
      answer = await httpCall(new URL(path, url), {
        method: "POST",
        headers,
        body,
        timeoutMs: this.options.timeoutMs ?? 10_000,
      });
    } catch (err) {
      const code = (err as { code?: string }).code;
      throw new Error(`EC2 ${action} at ${url.host}: ${code ?? describeError(err)}`);
    }
    const text = answer.body;
    if (answer.status >= 200 && answer.status < 300) return text;
    const response = { status: answer.status };
    const detail = parseEc2Error(text);
    throw new Ec2ApiError(
      action,
      detail?.code ?? `HTTP${response.status}`,
      response.status,
      detail?.message ?? text.slice(0, 200),
      detail?.requestId,
    );
  }

  async describeRouteTables(
    ids: readonly string[],
    filters: readonly Ec2Filter[] = [],
  ): Promise<Ec2RouteTable[]> {
    return parseRouteTables(
      await this.call("DescribeRouteTables", {
        ...listParams("RouteTableId", ids),
        ...filterParams(filters),
      }),
    );
  }

  async describeInstance(instanceId: string): Promise<Ec2Instance | undefined> {
    const found = parseInstances(
      await this.call("DescribeInstances", listParams("InstanceId", [instanceId])),
    );
    return found.find((i) => i.instanceId === instanceId);
  }

  async createRoute(table: string, destination: string, instanceId: string): Promise<void> {
    if (!parseReturn(await this.call("CreateRoute", routeParams(table, destination, instanceId)))) {
      throw new Error(`EC2 CreateRoute ${destination} in ${table} returned false`);
    }
  }

  async replaceRoute(table: string, destination: string, instanceId: string): Promise<void> {
    await this.call("ReplaceRoute", routeParams(table, destination, instanceId));
  }

  async deleteRoute(table: string, destination: string): Promise<void> {
    await this.call("DeleteRoute", routeParams(table, destination));
  }

  /** Turns off the source/destination check, so the instance may forward pods' packets. */
  async disableSourceDestCheck(instanceId: string): Promise<void> {
    await this.call("ModifyInstanceAttribute", { InstanceId: instanceId, "SourceDestCheck.Value": "false" });
  }
}
