/**
 * A stand-in for the parts of Amazon EC2 weft's aws-vpc backend uses, faithful to the real service
 * rather than to weft: the EC2 Query API (form POSTs or GET query strings, Version 2016-11-15, SigV4
 * checked against the signer's own computation, XML in the doc/2016-11-15 namespace with a requestId,
 * errors as <Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response> with
 * EC2's codes and statuses) and the instance metadata service (IMDSv2 tokens, optional v1), which
 * tells each caller about the instance whose private address it calls from. test/unit/ec2-standin-cli
 * checks it with the real AWS CLI.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { signRequest } from "../../src/backend/aws-vpc/aws-sigv4.js";
import { parseQueryBody } from "../../src/backend/aws-vpc/ec2-query.js";

export const EC2_XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/";
/** AWS's default quota of routes per route table (the local route included). */
export const ROUTES_PER_TABLE = 50;

export interface StandinInstance {
  readonly instanceId: string;
  readonly privateIp: string;
  readonly subnetId: string;
  readonly vpcId: string;
  readonly availabilityZone: string;
  readonly mac: string;
  /** An instance role for IMDS credentials (its keys must be in `credentials`). */
  readonly role?: { name: string; accessKeyId: string };
  sourceDestCheck: boolean;
}

export interface StandinRoute {
  readonly destination: string;
  instanceId: string | undefined;
  gatewayId: string | undefined;
  readonly origin: "CreateRouteTable" | "CreateRoute";
}

export interface StandinRouteTable {
  readonly routeTableId: string;
  readonly vpcId: string;
  readonly main: boolean;
  readonly subnetIds: string[];
  readonly routes: StandinRoute[];
}

export interface StandinOptions {
  readonly host?: string;
  readonly port?: number;
  /** Access key -> secret key. */
  readonly credentials: ReadonlyMap<string, string>;
  readonly instances: StandinInstance[];
  readonly tables: StandinRouteTable[];
  /** Actions refused with UnauthorizedOperation (an IAM policy without them). */
  readonly denied?: Set<string>;
  /** IMDSv2 only (HttpTokens=required): GETs without a token get 401. */
  readonly imdsTokensRequired?: boolean;
  /** An IMDSv1-only service (as before IMDSv2): PUT /latest/api/token is 403. */
  readonly imdsV1Only?: boolean;
  /** Answer the next N API calls with RequestLimitExceeded (throttling), for retry tests. */
  throttleNext?: number;
  readonly routeLimit?: number;
  /** After every change of a table's routes (the lab mirrors them into the fabric namespace's kernel). */
  readonly onRoutesChanged?: (table: StandinRouteTable) => void;
  /** Caller address -> instance, when not the instance's privateIp (e.g. all calls from 127.0.0.1). */
  readonly instanceByAddress?: (address: string) => StandinInstance | undefined;
}

export class Ec2Error extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const escapeXml = (s: string): string =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!,
  );

const el = (name: string, value: string | undefined): string =>
  value === undefined ? "" : `<${name}>${escapeXml(value)}</${name}>`;

function ipv4ToInt(ip: string): number | undefined {
  const p = ip.split(".").map(Number);
  if (p.length !== 4 || p.some((n) => !Number.isInteger(n) || n < 0 || n > 255)) return undefined;
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

function validCidr(cidr: string): boolean {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(cidr);
  if (!m) return false;
  const ip = ipv4ToInt(m[1]!);
  const len = Number(m[2]);
  if (ip === undefined || len > 32) return false;
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
  return (ip & mask) >>> 0 === ip; // EC2 refuses host bits set
}

/** Indexed parameters Prefix.1, Prefix.2 ... in order. */
function indexed(params: Record<string, string>, prefix: string): string[] {
  const out: string[] = [];
  for (let i = 1; params[`${prefix}.${i}`] !== undefined; i++) out.push(params[`${prefix}.${i}`]!);
  return out;
}

function filters(params: Record<string, string>): { name: string; values: string[] }[] {
  const out: { name: string; values: string[] }[] = [];
  for (let i = 1; params[`Filter.${i}.Name`] !== undefined; i++) {
    out.push({ name: params[`Filter.${i}.Name`]!, values: indexed(params, `Filter.${i}.Value`) });
  }
  return out;
}

export class Ec2Standin {
  private server: Server | undefined;
  private readonly tokens = new Map<string, number>();
  /** Every API call, for tests: action and parameters. */
  readonly calls: { action: string; params: Record<string, string>; from: string }[] = [];

  constructor(readonly options: StandinOptions) {}

  async listen(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    const host = this.options.host ?? "127.0.0.1";
    await new Promise<void>((resolve) => this.server!.listen(this.options.port ?? 0, host, resolve));
    return `http://${host}:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  table(id: string): StandinRouteTable | undefined {
    return this.options.tables.find((t) => t.routeTableId === id);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    const url = new URL(req.url ?? "/", "http://standin");
    try {
      if (url.pathname.startsWith("/latest/")) return this.metadata(req, res, url.pathname);
      await this.api(req, res, url, body);
    } catch (err) {
      if (!res.headersSent) {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end(String(err));
      }
    }
  }

  // ---- instance metadata service ----

  private caller(req: IncomingMessage): StandinInstance | undefined {
    const address = (req.socket.remoteAddress ?? "").replace(/^::ffff:/, "");
    return (
      this.options.instanceByAddress?.(address) ?? this.options.instances.find((i) => i.privateIp === address)
    );
  }

  private metadata(req: IncomingMessage, res: ServerResponse, path: string) {
    const text = (status: number, body: string) => {
      res.writeHead(status, { "content-type": "text/plain" });
      res.end(body);
    };
    if (path === "/latest/api/token") {
      if (req.method !== "PUT") return text(405, "");
      if (this.options.imdsV1Only) return text(403, "");
      const ttl = Number(req.headers["x-aws-ec2-metadata-token-ttl-seconds"]);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21600) return text(400, "");
      const token = randomBytes(32).toString("base64");
      this.tokens.set(token, Date.now() + ttl * 1000);
      res.writeHead(200, {
        "content-type": "text/plain",
        "x-aws-ec2-metadata-token-ttl-seconds": String(ttl),
      });
      res.end(token);
      return;
    }
    if (req.method !== "GET") return text(405, "");
    const token = req.headers["x-aws-ec2-metadata-token"];
    if (typeof token === "string") {
      if ((this.tokens.get(token) ?? 0) < Date.now()) return text(401, "");
    } else if (this.options.imdsTokensRequired) {
      return text(401, "");
    }
    const instance = this.caller(req);
    if (!instance) return text(404, "");
    const macs = `/latest/meta-data/network/interfaces/macs/${instance.mac}/`;
    const items: Record<string, string> = {
      "/latest/meta-data/instance-id": instance.instanceId,
      "/latest/meta-data/local-ipv4": instance.privateIp,
      "/latest/meta-data/mac": instance.mac,
      "/latest/meta-data/placement/availability-zone": instance.availabilityZone,
      [`${macs}subnet-id`]: instance.subnetId,
      [`${macs}vpc-id`]: instance.vpcId,
      [`${macs}local-ipv4s`]: instance.privateIp,
    };
    if (instance.role) {
      const secret = this.options.credentials.get(instance.role.accessKeyId) ?? "";
      items["/latest/meta-data/iam/security-credentials/"] = instance.role.name;
      items[`/latest/meta-data/iam/security-credentials/${instance.role.name}`] = JSON.stringify({
        Code: "Success",
        LastUpdated: new Date().toISOString(),
        Type: "AWS-HMAC",
        AccessKeyId: instance.role.accessKeyId,
        SecretAccessKey: secret,
        Token: "standin-session-token",
        Expiration: new Date(Date.now() + 6 * 3600_000).toISOString(),
      });
    }
    const value = items[path];
    return value === undefined ? text(404, "") : text(200, value);
  }

  // ---- EC2 Query API ----

  private async api(req: IncomingMessage, res: ServerResponse, url: URL, body: string): Promise<void> {
    const requestId = randomUUID();
    const params: Record<string, string> =
      req.method === "POST" ? parseQueryBody(body) : Object.fromEntries(url.searchParams.entries());
    const action = params.Action ?? "";
    try {
      await this.authenticate(req, url, body);
      if (!action) throw new Ec2Error(400, "MissingAction", "The request must contain the parameter Action");
      this.calls.push({ action, params, from: (req.socket.remoteAddress ?? "").replace(/^::ffff:/, "") });
      if (this.options.throttleNext && this.options.throttleNext > 0) {
        this.options.throttleNext--;
        throw new Ec2Error(503, "RequestLimitExceeded", "Request limit exceeded.");
      }
      if (this.options.denied?.has(action)) {
        throw new Ec2Error(
          403,
          "UnauthorizedOperation",
          "You are not authorized to perform this operation. User is not authorized to perform: ec2:" +
            action,
        );
      }
      const inner = this.dispatch(action, params);
      res.writeHead(200, { "content-type": "text/xml;charset=UTF-8", "x-amzn-requestid": requestId });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${EC2_XMLNS}">\n    <requestId>${requestId}</requestId>\n${inner}\n</${action}Response>`,
      );
    } catch (err) {
      const e =
        err instanceof Ec2Error ? err : new Ec2Error(500, "InternalError", "An internal error has occurred");
      res.writeHead(e.status, { "content-type": "text/xml;charset=UTF-8", "x-amzn-requestid": requestId });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${escapeXml(e.code)}</Code><Message>${escapeXml(e.message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`,
      );
    }
  }

  /** SigV4 as EC2 checks it: a known key, this service, and the signature recomputed from the request. */
  private async authenticate(req: IncomingMessage, url: URL, body: string): Promise<void> {
    const auth = req.headers.authorization ?? "";
    const m =
      /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(
        auth,
      );
    if (!m)
      throw new Ec2Error(401, "AuthFailure", "AWS was not able to validate the provided access credentials");
    const [, accessKeyId, , region, service, signedHeaders, signature] = m;
    const secret = this.options.credentials.get(accessKeyId!);
    if (secret === undefined) {
      throw new Ec2Error(401, "AuthFailure", "AWS was not able to validate the provided access credentials");
    }
    if (service !== "ec2")
      throw new Ec2Error(401, "AuthFailure", `Credential should be scoped to correct service: 'ec2'.`);
    const amzDate = String(req.headers["x-amz-date"] ?? "");
    const d = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
    if (!d) throw new Ec2Error(400, "MissingParameter", "The request must contain the parameter X-Amz-Date");
    const signingDate = new Date(Date.UTC(+d[1]!, +d[2]! - 1, +d[3]!, +d[4]!, +d[5]!, +d[6]!));
    if (Math.abs(Date.now() - signingDate.getTime()) > 15 * 60_000) {
      throw new Ec2Error(400, "RequestExpired", "Request has expired.");
    }
    const headers: Record<string, string> = {};
    for (const name of signedHeaders!.split(";")) {
      if (name === "x-amz-date") continue;
      const v = req.headers[name];
      headers[name] = Array.isArray(v) ? v.join(",") : String(v ?? "");
    }
    const sessionToken = req.headers["x-amz-security-token"];
    const expected = await signRequest(
      {
        method: req.method ?? "POST",
        protocol: "http:",
        hostname: url.hostname,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams.entries()),
        headers,
        body: req.method === "POST" ? body : undefined,
      },
      {
        accessKeyId: accessKeyId!,
        secretAccessKey: secret,
        sessionToken: typeof sessionToken === "string" ? sessionToken : undefined,
      },
      region!,
      service!,
      signingDate,
    );
    const got = /Signature=([0-9a-f]{64})/.exec(expected.authorization ?? "")?.[1];
    if (got !== signature) {
      throw new Ec2Error(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided.",
      );
    }
  }

  private dispatch(action: string, p: Record<string, string>): string {
    switch (action) {
      case "DescribeRouteTables":
        return this.describeRouteTables(p);
      case "DescribeInstances":
        return this.describeInstances(p);
      case "CreateRoute":
        return this.createRoute(p, false);
      case "ReplaceRoute":
        return this.createRoute(p, true);
      case "DeleteRoute":
        return this.deleteRoute(p);
      case "ModifyInstanceAttribute":
        return this.modifyInstanceAttribute(p);
      default:
        throw new Ec2Error(400, "InvalidAction", `The action ${action} is not valid for this web service.`);
    }
  }

  private required(p: Record<string, string>, name: string): string {
    const v = p[name];
    if (!v) throw new Ec2Error(400, "MissingParameter", `The request must contain the parameter ${name}`);
    return v;
  }

  private tableFor(p: Record<string, string>): StandinRouteTable {
    const id = this.required(p, "RouteTableId");
    const table = this.table(id);
    if (!table)
      throw new Ec2Error(400, "InvalidRouteTableID.NotFound", `The routeTable ID '${id}' does not exist`);
    return table;
  }

  private describeRouteTables(p: Record<string, string>): string {
    const ids = indexed(p, "RouteTableId");
    for (const id of ids) {
      if (!this.table(id)) {
        throw new Ec2Error(400, "InvalidRouteTableID.NotFound", `The routeTable ID '${id}' does not exist`);
      }
    }
    let tables = this.options.tables.filter((t) => ids.length === 0 || ids.includes(t.routeTableId));
    for (const f of filters(p)) {
      const match = (t: StandinRouteTable): boolean => {
        switch (f.name) {
          case "route-table-id":
            return f.values.includes(t.routeTableId);
          case "vpc-id":
            return f.values.includes(t.vpcId);
          case "association.main":
            return f.values.includes(String(t.main));
          case "association.subnet-id":
            return t.subnetIds.some((s) => f.values.includes(s));
          case "route.destination-cidr-block":
            return t.routes.some((r) => f.values.includes(r.destination));
          case "route.instance-id":
            return t.routes.some((r) => r.instanceId !== undefined && f.values.includes(r.instanceId));
          default:
            throw new Ec2Error(400, "InvalidParameterValue", `The filter '${f.name}' is invalid`);
        }
      };
      tables = tables.filter(match);
    }
    const items = tables.map((t) => {
      const routes = t.routes
        .map((r) => {
          const instance = r.instanceId
            ? this.options.instances.find((i) => i.instanceId === r.instanceId)
            : undefined;
          return `<item>${el("destinationCidrBlock", r.destination)}${el("gatewayId", r.gatewayId)}${el("instanceId", r.instanceId)}${r.instanceId ? el("instanceOwnerId", "123456789012") : ""}${instance ? el("networkInterfaceId", `eni-${instance.instanceId.slice(2)}`) : ""}${el("state", r.gatewayId || instance ? "active" : "blackhole")}${el("origin", r.origin)}</item>`;
        })
        .join("");
      const assoc = [
        ...(t.main
          ? [
              `<item><routeTableAssociationId>rtbassoc-${t.routeTableId.slice(4)}m</routeTableAssociationId>${el("routeTableId", t.routeTableId)}<main>true</main><associationState><state>associated</state></associationState></item>`,
            ]
          : []),
        ...t.subnetIds.map(
          (s, i) =>
            `<item><routeTableAssociationId>rtbassoc-${t.routeTableId.slice(4)}${i}</routeTableAssociationId>${el("routeTableId", t.routeTableId)}${el("subnetId", s)}<main>false</main><associationState><state>associated</state></associationState></item>`,
        ),
      ].join("");
      return `<item>${el("routeTableId", t.routeTableId)}${el("vpcId", t.vpcId)}${el("ownerId", "123456789012")}<routeSet>${routes}</routeSet><associationSet>${assoc}</associationSet><propagatingVgwSet/><tagSet/></item>`;
    });
    return `    <routeTableSet>${items.join("")}</routeTableSet>`;
  }

  private describeInstances(p: Record<string, string>): string {
    const ids = indexed(p, "InstanceId");
    for (const id of ids) {
      if (!this.options.instances.some((i) => i.instanceId === id)) {
        throw new Ec2Error(400, "InvalidInstanceID.NotFound", `The instance ID '${id}' does not exist`);
      }
    }
    if (filters(p).length > 0)
      throw new Ec2Error(400, "InvalidParameterValue", "filters are not supported here");
    const items = this.options.instances
      .filter((i) => ids.length === 0 || ids.includes(i.instanceId))
      .map(
        (i) =>
          `<item><reservationId>r-${i.instanceId.slice(2)}</reservationId><ownerId>123456789012</ownerId><groupSet/><instancesSet><item>${el("instanceId", i.instanceId)}<imageId>ami-0abcdef1234567890</imageId><instanceState><code>16</code><name>running</name></instanceState>${el("privateIpAddress", i.privateIp)}<instanceType>t3.micro</instanceType><placement>${el("availabilityZone", i.availabilityZone)}<tenancy>default</tenancy></placement>${el("subnetId", i.subnetId)}${el("vpcId", i.vpcId)}${el("sourceDestCheck", String(i.sourceDestCheck))}<networkInterfaceSet><item>${el("networkInterfaceId", `eni-${i.instanceId.slice(2)}`)}${el("subnetId", i.subnetId)}${el("vpcId", i.vpcId)}${el("macAddress", i.mac)}${el("privateIpAddress", i.privateIp)}${el("sourceDestCheck", String(i.sourceDestCheck))}</item></networkInterfaceSet></item></instancesSet></item>`,
      );
    return `    <reservationSet>${items.join("")}</reservationSet>`;
  }

  private createRoute(p: Record<string, string>, replace: boolean): string {
    const table = this.tableFor(p);
    const destination = this.required(p, "DestinationCidrBlock");
    if (!validCidr(destination)) {
      throw new Ec2Error(
        400,
        "InvalidParameterValue",
        `Value (${destination}) for parameter destinationCidrBlock is invalid. This is not a valid CIDR block.`,
      );
    }
    const instanceId = p.InstanceId;
    const gatewayId = p.GatewayId;
    if (!instanceId && !gatewayId) {
      throw new Ec2Error(
        400,
        "MissingParameter",
        "The request must contain exactly one of gatewayId, natGatewayId, networkInterfaceId, vpcPeeringConnectionId, egressOnlyInternetGatewayId, transitGatewayId, localGatewayId, carrierGatewayId, instanceId",
      );
    }
    if (instanceId && !this.options.instances.some((i) => i.instanceId === instanceId)) {
      throw new Ec2Error(400, "InvalidInstanceID.NotFound", `The instance ID '${instanceId}' does not exist`);
    }
    const existing = table.routes.find((r) => r.destination === destination);
    if (replace) {
      if (!existing) {
        throw new Ec2Error(
          400,
          "InvalidRoute.NotFound",
          `There is no route defined for '${destination}' in the route table. Use CreateRoute instead.`,
        );
      }
      if (existing.origin === "CreateRouteTable") {
        throw new Ec2Error(
          400,
          "InvalidParameterValue",
          `Cannot replace local route ${destination} in route table ${table.routeTableId}`,
        );
      }
      existing.instanceId = instanceId;
      existing.gatewayId = gatewayId;
    } else {
      if (existing) {
        throw new Ec2Error(
          400,
          "RouteAlreadyExists",
          `The route identified by ${destination} already exists.`,
        );
      }
      if (table.routes.length >= (this.options.routeLimit ?? ROUTES_PER_TABLE)) {
        throw new Ec2Error(
          400,
          "RouteLimitExceeded",
          `The maximum number of routes has been reached for route table ${table.routeTableId}.`,
        );
      }
      table.routes.push({ destination, instanceId, gatewayId, origin: "CreateRoute" });
    }
    this.options.onRoutesChanged?.(table);
    return "    <return>true</return>";
  }

  private deleteRoute(p: Record<string, string>): string {
    const table = this.tableFor(p);
    const destination = this.required(p, "DestinationCidrBlock");
    const i = table.routes.findIndex((r) => r.destination === destination);
    if (i < 0) {
      throw new Ec2Error(
        400,
        "InvalidRoute.NotFound",
        `No route with destination-cidr-block ${destination} in route table ${table.routeTableId}`,
      );
    }
    if (table.routes[i]!.origin === "CreateRouteTable") {
      throw new Ec2Error(
        400,
        "InvalidParameterValue",
        `cannot remove local route ${destination} in route table ${table.routeTableId}`,
      );
    }
    table.routes.splice(i, 1);
    this.options.onRoutesChanged?.(table);
    return "    <return>true</return>";
  }

  private modifyInstanceAttribute(p: Record<string, string>): string {
    const id = this.required(p, "InstanceId");
    const instance = this.options.instances.find((i) => i.instanceId === id);
    if (!instance)
      throw new Ec2Error(400, "InvalidInstanceID.NotFound", `The instance ID '${id}' does not exist`);
    const value = p["SourceDestCheck.Value"];
    if (value === undefined)
      throw new Ec2Error(400, "InvalidParameterCombination", "No attributes specified.");
    instance.sourceDestCheck = value === "true";
    return "    <return>true</return>";
  }
}
