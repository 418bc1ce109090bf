/** Errors of the EC2 API and the metadata service, and which of them a retry can fix. */
import { UserError } from "../../user-error.js";

/** An error the EC2 API answered with (its Code, e.g. "UnauthorizedOperation"). */
export class Ec2ApiError extends Error {
  constructor(
    readonly action: string,
    readonly code: string,
    readonly status: number,
    message: string,
    readonly requestId: string | undefined,
  ) {
    super(`EC2 ${action} failed: ${code}: ${message}${requestId ? ` (request ${requestId})` : ""}`);
    this.name = "Ec2ApiError";
  }
}

/** A call the credentials may not make: fixed by changing a policy, which takes effect without a restart. */
export class Ec2PermissionError extends UserError {}

/** Codes AWS documents as throttling or a passing fault of the service: retried with backoff. */
const TRANSIENT_CODES = new Set([
  "RequestLimitExceeded",
  "Throttling",
  "ThrottlingException",
  "InternalError",
  "InternalFailure",
  "ServiceUnavailable",
  "Unavailable",
  "RequestExpired", // a clock step; the next attempt signs with the new time
  "IncorrectState",
]);

export function isTransient(err: unknown): boolean {
  if (err instanceof Ec2ApiError) return err.status >= 500 || TRANSIENT_CODES.has(err.code);
  if (err instanceof UserError) return false;
  // Connection refused/reset, timeouts, DNS: the network, not the request.
  return true;
}

/** The IAM permission each call needs, for the error that says which is missing. */
const PERMISSION: Readonly<Record<string, string>> = {
  CreateRoute: "ec2:CreateRoute",
  ReplaceRoute: "ec2:ReplaceRoute",
  DeleteRoute: "ec2:DeleteRoute",
  DescribeRouteTables: "ec2:DescribeRouteTables",
  DescribeInstances: "ec2:DescribeInstances",
  ModifyInstanceAttribute: "ec2:ModifyInstanceAttribute",
};

/**
 * An operator's problem (a missing permission, a full route table, a wrong ID) as ONE clear error
 * naming the call and what to do; anything else unchanged.
 */
export function explainEc2Error(err: unknown): unknown {
  if (!(err instanceof Ec2ApiError)) return err;
  const permission = PERMISSION[err.action] ?? `ec2:${err.action}`;
  switch (err.code) {
    case "UnauthorizedOperation":
    case "AuthFailure":
    case "AccessDenied":
      return new Ec2PermissionError(
        `EC2 ${err.action} was refused (${err.code}): the credentials weftd uses lack the IAM permission ${permission}`,
        `allow ${permission} (with ec2:CreateRoute, ec2:ReplaceRoute, ec2:DeleteRoute, ec2:DescribeRouteTables, ec2:DescribeInstances, ec2:ModifyInstanceAttribute) in the instance role or user policy`,
      );
    case "RouteLimitExceeded":
      return new UserError(
        `EC2 ${err.action} failed: the route table is full (RouteLimitExceeded; AWS allows 50 routes per table by default)`,
        "ask AWS for a higher routes-per-route-table quota, use fewer, larger subnets (SubnetLen), or another backend such as vxlan",
      );
    case "InvalidRouteTableID.NotFound":
    case "InvalidRouteTableID.Malformed":
      return new UserError(
        `EC2 ${err.action} failed: ${err.message || err.code}`,
        "check Backend.RouteTableID in the network config (it must name route tables of this instance's VPC and region)",
      );
    case "InvalidInstanceID.NotFound":
    case "InvalidInstanceID.Malformed":
      return new UserError(
        `EC2 ${err.action} failed: ${err.message || err.code}`,
        "the instance from the metadata service is unknown to this region's EC2 endpoint: check AWS_REGION and AWS_ENDPOINT_URL_EC2",
      );
    default:
      return err;
  }
}
